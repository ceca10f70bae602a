"""``emote serve``: the live WebRTC avatar server (stream_server)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from contracts.paths import DEFAULT_PORTRAIT
from emote.errors import CliError
from emote.options import add_motion_arguments, cache_dir, make_generator


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from engines.motion_generators import DEFAULT_LIVE_MOTION

    serve = sub.add_parser("serve", parents=[common], help="the live WebRTC avatar server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--avatar", type=Path, default=DEFAULT_PORTRAIT, help="default portrait")
    serve.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        help="concurrent sessions (default: half the CPU cores, at least 1)",
    )
    serve.add_argument(
        "--margin-ms",
        type=float,
        default=None,
        help="compute margin added to each session's delay (default: 30 ms per session per "
        "CPU core at the sessions admitted, the smaller of --max-sessions and the measured "
        "capacity, e.g. 30 ms for 2 sessions on 2 cores, 60 ms for 4)",
    )
    serve.add_argument(
        "--render-slots",
        type=int,
        default=None,
        help="render processes shared by all sessions, earliest send time first "
        "(default: one per CPU core)",
    )
    serve.add_argument(
        "--cache-max-mb",
        type=float,
        default=2048.0,
        help="cap on the avatar cache (~49 MB an uploaded avatar); past it the least recently "
        "used uploads are deleted, never the default or one in a live session (default: 2048)",
    )
    serve.add_argument(
        "--capacity",
        default="auto",
        help="sessions this machine serves at 25 fps: 'auto' (default) measures it at start-up "
        "and while serving; a number fixes it; --max-sessions caps it further",
    )
    serve.add_argument(
        "--node-id",
        default=None,
        help="behind a load balancer: this node's name (a-z, 0-9), the prefix of its session "
        "ids, by which the balancer routes a session's requests here (docs/deploy.md)",
    )
    serve.add_argument(
        "--agent-port",
        type=int,
        default=None,
        help="answer HAProxy's agent check on this port with the free capacity (docs/deploy.md)",
    )
    serve.add_argument(
        "--token",
        default=None,
        help="the API's bearer token (default: EMOTE_TOKEN; on an address other than loopback "
        "one is generated and printed unless --insecure)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="serve an address other than loopback without an access token (not recommended)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="another web origin (scheme://host[:port]) whose pages may call the API; repeatable",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another name the server answers to (a reverse proxy's Host); '*' for any; repeatable",
    )
    serve.add_argument(
        "--publish-to",
        default=None,
        metavar="URL",
        help="publish sessions into this Janus VideoRoom server for fan-out: "
        "janus+http://HOST:8088/janus[?room=N] (docs/api.md)",
    )
    serve.add_argument(
        "--publish-on-request",
        action="store_true",
        help="with --publish-to: publish only sessions a client asks for "
        "(POST /api/sessions/{id}/publish), not every one",
    )
    serve.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="a STUN or TURN server for clients behind NAT (stun:HOST[:PORT], "
        "turn:HOST[:PORT][?transport=udp|tcp], turns:...); repeatable (docs/deploy.md)",
    )
    serve.add_argument(
        "--turn-secret",
        default=None,
        help="coturn's static-auth-secret: mint TURN credentials that expire after an hour "
        "(default: EMOTE_TURN_SECRET)",
    )
    serve.add_argument("--turn-username", default=None, help="a static TURN username")
    serve.add_argument("--turn-password", default=None, help="its password")
    serve.add_argument("--seed", type=int, default=0)
    add_motion_arguments(serve, DEFAULT_LIVE_MOTION)
    serve.set_defaults(func=cmd_serve)


def register_balancer(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    config = sub.add_parser(
        "balancer-config",
        parents=[common],
        help="an HAProxy configuration for nodes of `emote serve --node-id --agent-port`",
    )
    config.add_argument("--bind", default="0.0.0.0:8080", help="where HAProxy listens")
    config.add_argument(
        "--node",
        action="append",
        required=True,
        metavar="NAME=HOST:PORT/AGENT_PORT",
        help="a node (repeat): its --node-id, address, port and --agent-port",
    )
    config.add_argument("--check-ms", type=int, default=500, help="health and agent interval")
    config.set_defaults(func=cmd_balancer_config)


def cmd_balancer_config(args: argparse.Namespace) -> int:
    from stream_server.balancer_agent import Node, haproxy_config

    try:
        nodes = [Node.parse(text) for text in args.node]
        print(haproxy_config(nodes, args.bind, args.check_ms), end="")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from contracts.settings import current
    from engines.blas_threads import single_threaded_blas
    from engines.heap import keep_freed_memory
    from stream_server import http_errors
    from stream_server.access import AccessPolicy, exposure
    from stream_server.app import ServerConfig, create_app
    from stream_server.loopback import is_loopback, use_loopback_only

    if not Path(args.avatar).is_file():
        raise CliError(f"avatar image not found: {args.avatar}")
    make_generator(args)  # a missing or broken motion model fails here, not per session
    if not args.cache_max_mb > 0:
        raise CliError("--cache-max-mb must be above 0")
    config = ServerConfig(
        default_avatar=Path(args.avatar),
        cache_dir=cache_dir(args),
        seed=args.seed,
        motion=args.motion,
        steps=args.steps,
        motion_models=args.motion_models,
        style=args.style,
        cache_max_mb=args.cache_max_mb,
    )
    if args.max_sessions is not None:
        if args.max_sessions < 1:
            raise CliError("--max-sessions must be at least 1")
        config.max_sessions = args.max_sessions
    if args.margin_ms is not None:
        if not 0.0 <= args.margin_ms <= 1000.0:
            raise CliError("--margin-ms must be between 0 and 1000")
        config.margin_ms = args.margin_ms
    if args.render_slots is not None:
        if args.render_slots < 1:
            raise CliError("--render-slots must be at least 1")
        config.render_slots = args.render_slots
    if args.capacity != "auto":
        if not args.capacity.isdigit() or int(args.capacity) < 1:
            raise CliError("--capacity must be 'auto' or a whole number of at least 1")
        config.capacity = int(args.capacity)
    if args.node_id is not None:
        from stream_server.balancer_agent import NODE_ID

        if not NODE_ID.match(args.node_id):
            raise CliError("--node-id must be 1-16 characters of a-z and 0-9")
        config.node_id = args.node_id
    if args.agent_port is not None:
        if not 1 <= args.agent_port <= 65535 or args.agent_port == args.port:
            raise CliError("--agent-port must be a free port other than --port")
        config.agent = (args.host, args.agent_port)
    if args.publish_to is not None:
        from stream_server.janus_api import JanusTarget

        try:
            config.publish_to = JanusTarget.parse(args.publish_to)
        except ValueError as exc:
            raise CliError(f"--publish-to: {exc}") from None
    elif args.publish_on_request:
        raise CliError("--publish-on-request needs --publish-to")
    config.publish_on_request = args.publish_on_request
    from stream_server.ice_servers import IceServers

    try:
        config.ice = IceServers(
            tuple(args.ice_server),
            args.turn_secret or current().turn_secret,
            args.turn_username,
            args.turn_password,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    token = args.token or current().token
    if token is not None and (len(token) < 16 or " " in token or not token.isprintable()):
        raise CliError("--token must be at least 16 printable characters without spaces")
    exposed = exposure(args.host, token, args.insecure)
    config.access = AccessPolicy.for_bind(
        args.host, exposed.token, args.allow_host, args.allow_origin
    )
    use_loopback_only(is_loopback(args.host))
    keep_freed_memory()  # the render processes set it for themselves
    single_threaded_blas()  # a spinning BLAS thread cost a core (engines.blas_threads)
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("aioice").setLevel(logging.WARNING)
    print(
        f"emote: serving on http://{args.host}:{args.port} (max {config.max_sessions} sessions)",
        file=sys.stderr,
    )
    if exposed.generated:
        print(
            f"emote: API access token (send 'Authorization: Bearer …'): {exposed.token}",
            file=sys.stderr,
        )
    if exposed.warning:
        logging.getLogger("emote").warning(exposed.warning)
    http_errors.run(create_app(config), args.host, args.port)
    return 0
