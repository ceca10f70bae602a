"""A complete Pipecat voice bot that speaks through the emote face (docs/integrations/pipecat.md).

    .venv-integrations/bin/pip install "pipecat-ai[webrtc,deepgram,openai,cartesia,silero]==1.14.0"
    DEEPGRAM_API_KEY=... OPENAI_API_KEY=... CARTESIA_API_KEY=... \
        .venv-integrations/bin/python examples/pipecat_bot.py --transport webrtc

Pipecat's development runner serves its WebRTC client page; open it, allow the microphone,
and talk. The pipeline is Pipecat's standard interruptible bot with one more stage,
``EmoteVideoService``, between the TTS and the transport's output: it turns the TTS audio
into lip-synced 512x512 video at 25 fps and passes the audio on, frame by frame, in sync.

Not run on this project's machines: they have no microphone, no API keys for the STT, LLM
and TTS services, and no network beyond the package registries. The service itself is tested
in a real Pipecat pipeline (tests/test_pipecat_avatar.py).
"""

from __future__ import annotations

import os

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.services.cartesia.tts import CartesiaTTSService
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

from contracts.style import Style
from integrations.avatar_setup import AvatarSettings
from integrations.pipecat_avatar import EmoteVideoService

PORTRAIT = os.environ.get("EMOTE_PORTRAIT", "assets/portraits/mona_lisa.jpg")  # prepared in .venv

transport_params = {
    "webrtc": lambda: TransportParams(
        audio_in_enabled=True,
        audio_out_enabled=True,
        video_out_enabled=True,
        video_out_is_live=False,  # show the latest image; the avatar's ride with their audio
        video_out_width=512,
        video_out_height=512,
        video_out_framerate=25,
        vad_analyzer=SileroVADAnalyzer(),
    ),
}


async def run_bot(transport: BaseTransport, runner_args: RunnerArguments) -> None:
    stt = DeepgramSTTService(api_key=os.environ["DEEPGRAM_API_KEY"])
    llm = OpenAILLMService(api_key=os.environ["OPENAI_API_KEY"])
    tts = CartesiaTTSService(
        api_key=os.environ["CARTESIA_API_KEY"],
        voice_id="71a7ad14-091c-4e8e-a314-022ece01c121",
    )
    avatar = EmoteVideoService(AvatarSettings(portrait=PORTRAIT, style=Style.parse("happy:0.5")))
    context = LLMContext(
        [{"role": "system", "content": "You are a friendly presenter. Answer briefly."}]
    )
    aggregators = LLMContextAggregatorPair(context)
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            aggregators.user(),
            llm,
            tts,
            avatar,  # TTS audio -> lip-synced images + the same audio
            transport.output(),
            aggregators.assistant(),
        ]
    )
    worker = PipelineWorker(pipeline, params=PipelineParams(audio_out_sample_rate=24_000))

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport: BaseTransport, client: object) -> None:
        context.add_message({"role": "system", "content": "Introduce yourself."})
        await worker.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: BaseTransport, client: object) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


async def bot(runner_args: RunnerArguments) -> None:
    transport = await create_transport(runner_args, transport_params)
    await run_bot(transport, runner_args)


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
