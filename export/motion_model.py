"""The learned motion model: audio + motion history + noise -> the next hop of motion frames.

A rectified flow (flow matching) in the space of motion frames normalised by the dataset's
per-field mean and standard deviation: z_t = (1 - t) z_0 + t eps, from noise at t = 1 to a
motion hop at t = 0. The teacher learns the velocity eps - z_0 and needs many ODE steps; the
student (same networks, plus an embedding of the target time s) learns the teacher's mean
velocity between t and s, so 1-4 steps follow the teacher's path (training/distill.py).

* ``AudioEncoder``: 1-D convolutions over the log-mel window, strided down to ~80 ms
  resolution, flattened (the position of a sound in the window matters: the frames being
  generated sit at a fixed place in it) and projected to ``width``.
* ``ConditionEncoder``: audio encoding + the normalised history frames + the speaking style
  (contracts/style.py) -> ``cond``. A learned "no audio" embedding replaces the audio part
  for classifier-free guidance training (the style stays: guidance sharpens the audio's
  effect, not the style's).
* ``MotionDenoiser``: an MLP over the flattened hop with adaptive LayerNorm blocks
  (scale and shift from ``cond`` + time embeddings, as in DiT).

Graph I/O is in motion units; the normalisation lives in buffers (contracts/motion_spec.py
documents the two graphs per model).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from contracts import motion_spec as spec


@dataclass(frozen=True)
class MotionModelConfig:
    width: int = 160
    audio_channels: tuple[int, ...] = (96, 128, 128, 128)
    blocks: int = 3
    time_features: int = 32
    flow_map: bool = False  # student: the velocity also depends on the target time s
    # Fixed by the contract (contracts/motion_spec.py); stored so a checkpoint says what it is.
    mel_frames: int = spec.MEL_FRAMES
    n_mels: int = spec.N_MELS
    hop_frames: int = spec.HOP_FRAMES
    history_frames: int = spec.HISTORY_FRAMES
    dim: int = spec.DIM
    style_dim: int = spec.STYLE_DIM

    @staticmethod
    def from_dict(values: dict) -> MotionModelConfig:
        values = dict(values)
        values["audio_channels"] = tuple(values["audio_channels"])
        return MotionModelConfig(**values)


class TimeEmbedding(nn.Module):
    """Flow time in [0, 1] -> ``width`` features (sinusoids, then a small MLP)."""

    def __init__(self, features: int, width: int, zero_output: bool = False) -> None:
        super().__init__()
        freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), features // 2)) * math.pi
        self.register_buffer("freqs", freqs)
        self.mlp = nn.Sequential(nn.Linear(features, width), nn.SiLU(), nn.Linear(width, width))
        if zero_output:  # starts as "no effect" (the student's target time, see distill)
            nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t * self.freqs  # (B, 1) * (F/2,) -> (B, F/2)
        return self.mlp(torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1))


class AudioEncoder(nn.Module):
    """Log-mel window (B, T, M) -> (B, width)."""

    def __init__(self, config: MotionModelConfig) -> None:
        super().__init__()
        c = (config.n_mels, *config.audio_channels)
        kernels = ((3, 1, 1), (4, 2, 1), (4, 2, 1), (3, 2, 1))  # kernel, stride, padding
        if len(config.audio_channels) != len(kernels):
            raise ValueError(f"audio_channels needs {len(kernels)} entries")
        layers: list[nn.Module] = []
        for (k, stride, pad), cin, cout in zip(kernels, c[:-1], c[1:], strict=True):
            layers += [nn.Conv1d(cin, cout, k, stride, pad), nn.SiLU()]
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            steps = self.convs(torch.zeros(1, config.n_mels, config.mel_frames)).shape[-1]
        self.project = nn.Linear(c[-1] * steps, config.width)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.convs(mel.transpose(1, 2))
        return self.project(h.flatten(1))


class ConditionEncoder(nn.Module):
    """Audio window + normalised history (B, K, DIM) + style (B, STYLE_DIM) -> conditioning
    (B, width)."""

    def __init__(self, config: MotionModelConfig) -> None:
        super().__init__()
        self.audio = AudioEncoder(config)
        self.history = nn.Linear(config.history_frames * config.dim, config.width)
        self.style = nn.Linear(config.style_dim, config.width)
        self.no_audio = nn.Parameter(torch.zeros(config.width))
        self.out = nn.Linear(config.width, config.width)

    def forward(
        self,
        mel: torch.Tensor,
        history_z: torch.Tensor,
        style: torch.Tensor,
        audio_keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        audio = self.audio(mel)
        if audio_keep is not None:  # (B, 1): 1 = hear the audio, 0 = the "no audio" embedding
            audio = audio * audio_keep + self.no_audio * (1.0 - audio_keep)
        h = audio + self.history(history_z.flatten(1)) + self.style(style)
        return self.out(nn.functional.silu(h))


class AdaBlock(nn.Module):
    """Residual MLP block whose LayerNorm scale and shift come from the conditioning."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.modulation = nn.Linear(width, 2 * width)
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, width)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        y = modulate(self.norm(h), self.modulation(c), self.width)
        return h + self.fc2(nn.functional.silu(self.fc1(y)))


def modulate(y: torch.Tensor, scale_shift: torch.Tensor, width: int) -> torch.Tensor:
    """adaLN: y * (1 + scale) + shift, from one (B, 2 width) projection (sliced at a
    constant, so the exported graph needs no shape arithmetic)."""
    return y * (1.0 + scale_shift[:, :width]) + scale_shift[:, width:]


class MotionDenoiser(nn.Module):
    """Normalised hop z (B, H, DIM) at time t (and target time s) -> velocity in z units."""

    def __init__(self, config: MotionModelConfig) -> None:
        super().__init__()
        width, size = config.width, config.hop_frames * config.dim
        self.width = width
        self.shape = (config.hop_frames, config.dim)
        self.time = TimeEmbedding(config.time_features, width)
        self.target_time = (
            TimeEmbedding(config.time_features, width, zero_output=True)
            if config.flow_map
            else None
        )
        self.inp = nn.Linear(size, width)
        self.blocks = nn.ModuleList(AdaBlock(width) for _ in range(config.blocks))
        self.out_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.out_modulation = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, size)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, cond: torch.Tensor, z: torch.Tensor, t: torch.Tensor, s: torch.Tensor
    ) -> torch.Tensor:
        c = cond + self.time(t)
        if self.target_time is not None:
            c = c + self.target_time(s)
        c = nn.functional.silu(c)
        h = self.inp(z.flatten(1))
        for block in self.blocks:
            h = block(h, c)
        h = modulate(self.out_norm(h), self.out_modulation(c), self.width)
        return self.out(h).reshape(z.shape[0], *self.shape)


class MotionModel(nn.Module):
    """Encoder + denoiser + the motion normalisation (buffers ``mean`` and ``std``)."""

    def __init__(self, config: MotionModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or MotionModelConfig()
        self.encoder = ConditionEncoder(self.config)
        self.denoiser = MotionDenoiser(self.config)
        self.register_buffer("mean", torch.zeros(self.config.dim))
        self.register_buffer("std", torch.ones(self.config.dim))

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def normalise(self, motion: torch.Tensor) -> torch.Tensor:
        return (motion - self.mean) / self.std

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean

    # --- latent space (training) ---------------------------------------------------------

    def condition(
        self,
        mel: torch.Tensor,
        history: torch.Tensor,
        style: torch.Tensor,
        audio_keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``history`` in motion units."""
        return self.encoder(mel, self.normalise(history), style, audio_keep)

    def velocity_z(
        self, cond: torch.Tensor, z: torch.Tensor, t: torch.Tensor, s: torch.Tensor
    ) -> torch.Tensor:
        return self.denoiser(cond, z, t, s)

    # --- motion units (the exported graphs) ----------------------------------------------

    def encode(
        self, mel: torch.Tensor, history: torch.Tensor, noise: torch.Tensor, style: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.condition(mel, history, style), self.denormalise(noise)

    def velocity(
        self, cond: torch.Tensor, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor
    ) -> torch.Tensor:
        return self.denoiser(cond, self.normalise(x), t, s) * self.std


class EncoderGraph(nn.Module):
    """The exported encoder: (mel, history, noise, style) -> (cond, x_init)."""

    def __init__(self, model: MotionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, mel, history, noise, style):
        return self.model.encode(mel, history, noise, style)


class DenoiserGraph(nn.Module):
    """The exported denoiser step: (cond, x, t, s) -> velocity."""

    def __init__(self, model: MotionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, cond, x, t, s):
        return self.model.velocity(cond, x, t, s)


@dataclass
class Checkpoint:
    """What training writes: the weights with their config and provenance."""

    model: MotionModel
    kind: str  # "teacher" | "student"
    info: dict = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "config": asdict(self.model.config),
            "state": self.model.state_dict(),
            "kind": self.kind,
            "info": self.info,
        }
        torch.save(payload, path)

    @staticmethod
    def load(path: Path) -> Checkpoint:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no motion checkpoint at {path}")
        payload = torch.load(path, map_location="cpu", weights_only=False)
        model = MotionModel(MotionModelConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state"])
        return Checkpoint(model.eval(), payload["kind"], payload.get("info", {}))


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
