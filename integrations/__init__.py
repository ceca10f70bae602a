"""Adapters that plug the avatar into what users already run (issue 17): the LiveKit Agents
avatar worker (``livekit_avatar``). Each drives the transport-neutral push core
(``engines.avatar_frames``); their libraries live in .venv-integrations
(requirements/integrations.txt), not in .venv."""
