"""The `iris` command: serve the app, ask one question, list models."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path

from app import config
from app.chat import Conversation, GenParams, Turn
from app.errors import AppError
from app.store import human_size

logger = logging.getLogger(__name__)


def free_port(host: str, start: int, tries: int = 50) -> int:
    """The first port from start on which nothing listens."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise AppError(f"No free port between {start} and {start + tries - 1}. Pass --port.")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    return host in ("localhost", "::1") or host.startswith("127.")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="iris", description="Chat about images with a local vision model.")
    ap.add_argument("--models-dir", type=Path, default=None, help="folder holding the models")
    sub = ap.add_subparsers(dest="cmd")

    s = sub.add_parser("serve", help="start the web app")
    s.add_argument("--host", default=config.DEFAULT_HOST)
    s.add_argument("--port", type=int, default=None, help="default: 7860, or the next free one")
    s.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    s.add_argument("--models-dir", type=Path, default=argparse.SUPPRESS)

    a = sub.add_parser("ask", help="ask one question and stream the answer")
    a.add_argument("question")
    a.add_argument("--lm", type=Path)
    a.add_argument("--mmproj", type=Path)
    a.add_argument("--model", help="name of an installed model (see 'iris models')")
    a.add_argument("--image", type=Path, action="append", default=[])
    a.add_argument("--system", default="")
    a.add_argument("--stats", action="store_true", help="print the reply's stats to stderr")
    a.add_argument("--max-tokens", type=int, default=512)
    a.add_argument("--temperature", type=float, default=0.2)
    a.add_argument("--seed", type=int, default=None)
    a.add_argument("--n-ctx", type=int, default=None)
    a.add_argument("--gpu-layers", type=int, default=None, help="default: automatic")
    a.add_argument("--chat-format", default=None, help="override the automatic choice")
    a.add_argument("--models-dir", type=Path, default=argparse.SUPPRESS)

    m = sub.add_parser("models", help="list installed models")
    m.add_argument("--catalog", action="store_true", help="list every catalog entry instead")
    m.add_argument("--models-dir", type=Path, default=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of `iris` and `python -m app`."""
    args = _parser().parse_args(argv)
    cmd = args.cmd or "serve"
    if args.cmd is None:
        args = _parser().parse_args(["serve", *(argv if argv is not None else sys.argv[1:])])
    try:
        if cmd == "ask":
            return cmd_ask(args)
        if cmd == "models":
            return cmd_models(args)
        return cmd_serve(args)
    except AppError as exc:
        print(f"iris: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130


def cmd_models(args: argparse.Namespace) -> int:
    from app.store import ModelStore

    if args.catalog:
        from app.catalog import load_catalog

        _, specs = load_catalog()
        print("NAME\tQUANTS\tSIZE\tLICENCE\tGOOD FOR")
        for s in specs:
            quants = ",".join(q.name for q in s.quants)
            size = human_size(min(q.size for q in s.quants))
            lic = s.license + (" [NON-COMMERCIAL]" if s.non_commercial else "")
            print(f"{s.id}\t{quants}\t{size}\t{lic}\t{s.good_for}")
        return 0
    store = ModelStore(args.models_dir)
    pairs, problems = store.scan()
    if not pairs:
        print(f"No models installed in {store.root}.")
    for p in pairs:
        print(f"{p.name}\t{human_size(p.size)}\t{p.lm.name} + {p.mmproj.name}")
    for pr in problems:
        print(f"unusable: {pr.path.name}: {pr.reason}", file=sys.stderr)
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from app.images import prepare_image
    from app.services import build_services

    if bool(args.lm) != bool(args.mmproj):
        raise AppError("Give both --lm and --mmproj, or --model NAME.")
    images = [prepare_image(p) for p in args.image]  # refuse bad images before loading anything
    services = build_services(args.models_dir)
    services.load_options = {"n_ctx": args.n_ctx, "n_gpu_layers": args.gpu_layers}
    try:
        if args.lm:
            services.load_files(args.lm, args.mmproj, args.chat_format)
        else:
            name = args.model
            if not name:
                pairs = services.store.pairs()
                if not pairs:
                    raise AppError(
                        f"No model given and none installed in {services.store.root}. "
                        "Pass --lm and --mmproj, or --model NAME."
                    )
                name = pairs[0].name
            services.load(name)
        conv = Conversation(system=args.system, turns=[Turn("user", args.question, images)])
        params = GenParams(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)
        for delta in services.engine.stream_reply(conv, params):
            sys.stdout.write(delta)
            sys.stdout.flush()
        sys.stdout.write("\n")
        stats = services.engine.last_stats
        if args.stats and stats is not None:
            print(stats.summary(), file=sys.stderr)
        return 0
    finally:
        services.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from app.services import build_services
    from app.ui import launch

    host = args.host
    if not is_loopback(host):
        logger.warning("serving on %s: other machines on the network can reach Iris", host)
        print(f"Warning: serving on {host}; anyone who can reach this address can use Iris "
              "and see its conversations.", file=sys.stderr)
    port = args.port or free_port(host, config.DEFAULT_PORT)
    services = build_services(getattr(args, "models_dir", None))
    try:
        launch(services, host=host, port=port, open_browser=not args.no_browser)
    finally:
        services.close()
    return 0
