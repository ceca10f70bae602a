"""Every EMOTE_* variable is read in one place, once, and a bad value is a clear error."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts import settings
from contracts.paths import REPO
from contracts.settings import Settings, SettingsError


def test_defaults() -> None:
    s = Settings.from_env({})
    home = Path.home() / ".cache" / "emote"
    assert s.cache_dir == home and s.trt_cache == home / "trt"
    assert (s.ort_threads, s.ort_opt, s.trt_precision, s.render_batch) == (1, "all", "fp32", 1)
    assert s.render_workers == (os.cpu_count() or 1) + 1


def test_values_are_parsed() -> None:
    s = Settings.from_env(
        {
            "EMOTE_CACHE_DIR": "~/elsewhere",
            "EMOTE_ORT_THREADS": "2",
            "EMOTE_ORT_OPT": "basic",
            "EMOTE_TRT_CACHE": "/tmp/trt",
            "EMOTE_TRT_PRECISION": "fp16",
            "EMOTE_RENDER_WORKERS": "3",
            "EMOTE_RENDER_BATCH": " 2 ",
            "EMOTE_TOKEN": "0123456789abcdef-x",
        }
    )
    assert s.token == "0123456789abcdef-x" and Settings.from_env({}).token is None
    assert s.cache_dir == Path.home() / "elsewhere" and s.trt_cache == Path("/tmp/trt")
    assert (s.ort_threads, s.ort_opt, s.trt_precision) == (2, "basic", "fp16")
    assert (s.render_workers, s.render_batch) == (3, 2)
    assert Settings.from_env({"EMOTE_CACHE_DIR": ""}).cache_dir == Settings.from_env({}).cache_dir


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EMOTE_ORT_THREADS", "0"),
        ("EMOTE_ORT_THREADS", "two"),
        ("EMOTE_RENDER_WORKERS", "-1"),
        ("EMOTE_RENDER_BATCH", "1.5"),
        ("EMOTE_ORT_OPT", "fast"),
        ("EMOTE_TRT_PRECISION", "int8"),
        ("EMOTE_TOKEN", "short"),
        ("EMOTE_TOKEN", "has a space in it somewhere"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_the_process_reads_them_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings.current.cache_clear()
    try:
        monkeypatch.setenv("EMOTE_CACHE_DIR", str(tmp_path / "a"))
        first = settings.current()
        monkeypatch.setenv("EMOTE_CACHE_DIR", str(tmp_path / "b"))
        assert settings.current() is first and first.cache_dir == tmp_path / "a"
    finally:
        settings.current.cache_clear()


def test_no_other_module_reads_an_emote_variable() -> None:
    readers = []
    for package in (
        "contracts",
        "engines",
        "export",
        "stream_server",
        "measure",
        "training",
        "emote",
    ):
        for path in sorted((REPO / package).rglob("*.py")):
            if path == REPO / "contracts" / "settings.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                value = node.value if isinstance(node, ast.Constant) else None
                if isinstance(value, str) and value.startswith("EMOTE_"):
                    readers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not readers, readers


def test_a_bad_value_is_one_line_from_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "EMOTE_ORT_THREADS": "lots", "EMOTE_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "emote", "prepare", str(REPO / "assets/portraits/mona_lisa.jpg")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "emote: error: EMOTE_ORT_THREADS must be a positive whole number, got 'lots'"
    )
