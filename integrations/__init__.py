"""Adapters that plug the avatar into what users already run (issue 17): the LiveKit Agents
avatar worker (``livekit_avatar``) and the Pipecat video service (``pipecat_avatar``). Both
drive the transport-neutral push core (``engines.avatar_frames``) built by ``avatar_setup``;
their libraries live in .venv-integrations (requirements/integrations.txt), not in .venv."""
