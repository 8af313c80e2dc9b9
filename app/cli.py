"""The `iris` command: serve the app, ask one question, list models."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from app import config
from app.chat import Conversation, GenParams, Turn
from app.errors import AppError
from app.store import human_size
from app.webguard import free_port, is_loopback, new_key

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="iris", description="Chat about images with a local vision model.")
    ap.add_argument("--models-dir", type=Path, default=None, help="folder holding the models")
    sub = ap.add_subparsers(dest="cmd")

    s = sub.add_parser("serve", help="start the web app")
    s.add_argument("--host", default=config.DEFAULT_HOST)
    s.add_argument("--port", type=int, default=None, help="default: 7860, or the next free one")
    s.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    s.add_argument("--key", default=None,
                   help="access key the browser must present (default: none on 127.0.0.1; a new random one, "
                        "printed once, when --host is another address; IRIS_KEY sets it too)")
    s.add_argument("--engine", metavar="URL", default=None,
                   help="also offer the models of this OpenAI-compatible server (vLLM, llama-server, Ollama, ...)")
    s.add_argument("--api-key", default=None, help="the --engine server's API key, if it needs one")
    s.add_argument("--allow-image-urls", action="store_true",
                   help="let /v1/chat/completions fetch http(s) image URLs (default: refused; nothing leaves "
                        "this machine)")
    s.add_argument("--in-process", action="store_true",
                   help="run the model inside the app's process (default: a separate process that may crash "
                        "without taking Iris down)")
    s.add_argument("--models-dir", type=Path, default=argparse.SUPPRESS)

    a = sub.add_parser("ask", help="ask one question and stream the answer")
    a.add_argument("question")
    a.add_argument("--lm", type=Path)
    a.add_argument("--mmproj", type=Path)
    a.add_argument("--model", help="name of an installed model (see 'iris models'), or of the --engine server's")
    a.add_argument("--engine", metavar="URL", default=None,
                   help="ask an OpenAI-compatible server (vLLM, llama-server, Ollama, another Iris) instead")
    a.add_argument("--api-key", default=None, help="the --engine server's API key, if it needs one")
    a.add_argument("--image", type=Path, action="append", default=[])
    a.add_argument("--video", type=Path, default=None,
                   help="a video (mp4, webm, mov, mkv, animated GIF) for a model that takes several images")
    a.add_argument("--frames", type=int, default=8, help="with --video: at most this many frames (default 8)")
    a.add_argument("--fps", type=float, default=1.0, help="with --video: frames per second to sample (default 1)")
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

    d = sub.add_parser("download", help="download a catalog model (resumes an unfinished one)")
    d.add_argument("name", help="a NAME from 'iris models --catalog'")
    d.add_argument("--quant", default=None, help="quantization (default: the first listed)")
    d.add_argument("--models-dir", type=Path, default=argparse.SUPPRESS)

    sub.add_parser("bench", help="benchmark Iris against the stock handler and llama-server (see iris bench -h)",
                   add_help=False)

    r = sub.add_parser("remove", help="delete an installed model or an unfinished download")
    r.add_argument("name")
    r.add_argument("--models-dir", type=Path, default=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of `iris` and `python -m app`."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["bench"]:
        from app.bench import main as bench_main

        return bench_main(raw[1:])
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        # Run as `iris ...` rather than by the launcher: the details go to the log file, the terminal
        # gets only what each command prints.
        from app.logfile import configure

        configure(console=False)
    cmd = args.cmd or "serve"
    if args.cmd is None:
        args = _parser().parse_args(["serve", *(argv if argv is not None else sys.argv[1:])])
    try:
        if cmd == "ask":
            return cmd_ask(args)
        if cmd == "models":
            return cmd_models(args)
        if cmd == "download":
            return cmd_download(args)
        if cmd == "remove":
            return cmd_remove(args)
        return cmd_serve(args)
    except AppError as exc:
        print(f"iris: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows)


def cmd_models(args: argparse.Namespace) -> int:
    from app.catalog import load_catalog
    from app.store import ModelStore

    recommended, specs = load_catalog()
    if args.catalog:
        from app.machine import detect

        kind = detect()
        rows = [["NAME", "QUANT", "DOWNLOAD", "MEMORY", "CTX", "IMG TOK", "IMGS", "LICENCE", "GOOD FOR"]]
        for s in specs:
            for q in s.quants:
                lic = s.license + (" [NON-COMMERCIAL]" if s.non_commercial else "")
                approx = "≈" if q.lm.size_approx or q.mmproj.size_approx else ""
                unverified = "" if q.lm.sha256 and q.mmproj.sha256 else " †"
                star = " *" if s.id == recommended.get(kind.key) and q is s.quants[0] else ""
                rows.append([s.id + star, q.name, approx + human_size(q.size) + unverified,
                             "≈" + human_size(s.memory_needed(q)), str(s.context_length),
                             str(s.image_tokens or "varies"), str(s.images_per_message), lic, s.good_for])
        print(_table(rows))
        print(f"\n* recommended for this machine ({kind.description}).\n"
              "† no SHA-256 pinned in the catalog: checked against the Hub's own hash when downloaded.\n"
              "≈ size or memory is an estimate.\n"
              "Download with: iris download NAME [--quant QUANT]")
        return 0
    store = ModelStore(args.models_dir)
    pairs, problems = store.scan()
    names = {s.id: s.name for s in specs}
    if not pairs:
        print(f"No models installed in {store.root}. See 'iris models --catalog'.")
    else:
        rows = [["NAME", "SIZE", "CATALOG ENTRY", "FILES"]]
        for p in pairs:
            entry = names.get(p.catalog_id or "", "(your own files)")
            rows.append([p.name, human_size(p.size), entry, f"{p.lm.name} + {p.mmproj.name}"])
        print(_table(rows))
    for part in store.partial_downloads():
        print(f"unfinished download: {part.name} ({human_size(part.size)} kept) - "
              f"'iris download' resumes it, 'iris remove {part.name}' deletes it")
    for pr in problems:
        print(f"unusable: {pr.path.name}: {pr.reason}", file=sys.stderr)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    import threading

    from app.catalog import find_spec, load_catalog
    from app.downloader import Downloader, Progress
    from app.errors import DownloadCancelled

    _, specs = load_catalog()
    spec = find_spec(args.name, specs)
    if spec.non_commercial:
        print(f"Note: {spec.name} is licensed for non-commercial use only ({spec.license}).", file=sys.stderr)
    tty = sys.stderr.isatty()
    last: dict[str, Any] = {"t": 0.0, "state": ""}

    def show(p: Progress) -> None:
        import time

        now = time.monotonic()
        if tty:
            sys.stderr.write("\r\033[K" + p.line())
            sys.stderr.flush()
        elif p.state != last["state"] or now - last["t"] >= 2.0 or p.state == "done":
            # Logs and pipes get a line every 2 s rather than a line per update.
            print(p.line(), file=sys.stderr, flush=True)
            last["t"] = now
        last["state"] = p.state

    downloader = Downloader(args.models_dir)
    cancel = threading.Event()
    try:
        folder = downloader.install(spec, args.quant, progress=show, cancel=cancel)
    except (KeyboardInterrupt, DownloadCancelled):
        if tty:
            sys.stderr.write("\n")
        print("iris: download paused; what was downloaded is kept. Run the same command to resume.",
              file=sys.stderr)
        return 130
    finally:
        if tty:
            sys.stderr.write("\n")
    print(f"Installed {folder.name} in {folder}. Chat with it: iris serve, or iris ask --model {folder.name} ...")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from app.store import ModelStore

    store = ModelStore(args.models_dir)
    freed = store.remove(args.name)
    print(f"Removed {args.name}; {human_size(freed)} freed.")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from app.images import prepare_image
    from app.services import build_services, frame_labels
    from app.video import stamp

    if bool(args.lm) != bool(args.mmproj):
        raise AppError("Give both --lm and --mmproj, or --model NAME.")
    if args.video and args.image:
        raise AppError("Give --video or --image, not both: a video goes in a message of its own.")
    images = [prepare_image(p) for p in args.image]  # refuse bad images before loading anything
    services = build_services(args.models_dir)
    services.load_options = {"n_ctx": args.n_ctx, "n_gpu_layers": args.gpu_layers}
    # This run's own video settings, not saved: the app's Settings stay as they are.
    services.settings = replace(services.settings, video_fps=args.fps, video_max_frames=args.frames,
                                max_tokens=args.max_tokens)
    labels: list[str] = []
    try:
        if args.video:
            services.video_frames(None, [args.video], [])  # a bad video is refused before a model loads
        if args.engine:
            names = services.add_server(args.engine, args.api_key or "", save=False)
            if not names:
                raise AppError(f"The server at {args.engine} offers no models.")
            wanted = [n for n in names if n.split(" @ ")[0] == args.model] if args.model else names[:1]
            if not wanted:
                raise AppError(f"The server has no model {args.model}; it offers "
                               f"{', '.join(n.split(' @ ')[0] for n in names)}.")
            services.load(wanted[0])
        elif args.lm:
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
        if args.video:
            clip = services.video_frames(None, [args.video], [])  # now fitted to the loaded model's context
            images, labels = list(clip.frames), frame_labels(clip.times)
            if args.stats:
                n = len(clip.frames)
                print(f"{n} frame{'s' if n != 1 else ''} of {clip.name} ({stamp(clip.duration)} long) at "
                      f"{', '.join(stamp(t) for t in clip.times)}; sampled in {clip.sample_s:.2f} s", file=sys.stderr)
        conv = Conversation(system=args.system, turns=[Turn("user", args.question, images, labels)])
        params = GenParams(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)
        reply = services.engine.stream_reply(conv, params)
        for delta in reply:
            sys.stdout.write(delta)
            sys.stdout.flush()
        sys.stdout.write("\n")
        if args.stats:
            print(reply.stats.summary(), file=sys.stderr)
        return 0
    finally:
        services.close()


def _say(msg: str) -> None:
    # Started without a console (pythonw, a desktop launcher) there is no stdout to write to.
    if sys.stdout is not None:
        print(msg, flush=True)


def _start_page(host: str, port: int) -> Any:
    """The start page on the app's port, or None when it cannot bind (the app then binds as before)."""
    from app.startpage import StartPage

    try:
        return StartPage(host, port)
    except OSError as exc:
        logger.warning("no start page on %s:%s (%s)", host, port, exc)
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    import signal
    import webbrowser

    from app.instance import SingleInstance
    from app.services import build_services

    instance = SingleInstance()
    if not instance.acquire():
        url = instance.running_url()
        if url is None:
            raise AppError("Another Iris is starting up or not answering. Wait a few seconds and try again; "
                           f"if it persists, stop the other Iris (its lock is in {config.runtime_dir()}).")
        _say(f"Iris is already running at {url}" + ("" if args.no_browser else "; opening it."))
        if not args.no_browser:
            webbrowser.open(url)
        return 0
    try:
        host = args.host
        key = args.key or os.environ.get("IRIS_KEY") or None
        if not is_loopback(host):
            # Other machines can reach this address: nobody gets in without the key.
            key = key or new_key()
            logger.warning("serving on %s: other machines on the network can reach Iris; an access key is "
                           "required", host)
        port = args.port or free_port(host, config.DEFAULT_PORT)
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
        # The key is shown once, here, and never written to the log.
        open_url = f"{url}?key={key}" if key else url
        if key and sys.stderr is not None:
            print(f"Iris needs its access key on {host}. Open {open_url} (the key is set as a cookie; "
                  "keep the address private).", file=sys.stderr)

        def terminate(*_: object) -> None:
            raise KeyboardInterrupt  # the same clean shutdown as Ctrl+C

        signal.signal(signal.SIGTERM, terminate)

        def ready(published: str, shown: str) -> None:
            instance.publish(published)
            _say(f"Iris is running at {shown}")

        # The port answers, and the browser opens, before Gradio's seconds-long import: a start page that
        # turns into the app by itself.
        start_page = _start_page(host, port)
        if start_page is not None:
            instance.publish(open_url)
        if not args.no_browser:
            webbrowser.open(open_url)
        from app.ui import launch

        services = build_services(getattr(args, "models_dir", None), with_history=True,
                                  worker=not args.in_process)
        if args.engine:
            services.add_server(args.engine, args.api_key or "")
        try:
            launch(services, host=host, port=port, key=key, on_ready=lambda: ready(open_url, url),
                   fetch_image_urls=args.allow_image_urls,
                   before_bind=start_page.close if start_page is not None else None)
        finally:
            services.close()
            if services.history is not None:
                services.history.close()
            _say("Iris stopped.")
    finally:
        instance.release()
    return 0
