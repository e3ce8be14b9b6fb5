"""Command line: ``python -m tools.devstack up`` starts services and prints env exports."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from .common import ServiceError
from .kafka import DEFAULT_KAFKA_LIBS
from .stack import ENV_NAMES, start_many


def _cmd_up(args: argparse.Namespace) -> int:
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="civicpulse-devstack-"))
    workdir.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    stop_event = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"# devstack: starting {', '.join(names)} in {workdir}", file=sys.stderr, flush=True)
    try:
        services = start_many(names, workdir, Path(args.libs))
    except ServiceError as e:
        print(f"# devstack: {e}", file=sys.stderr, flush=True)
        return 1
    for name, svc in services.items():
        print(
            f"# {name}: pid {svc.pid}, started in {svc.startup_seconds:.1f}s, log {svc.log_path}",
            file=sys.stderr,
        )
        print(f"export {ENV_NAMES[name]}={svc.url}")
    print(f"export CIVICPULSE_DEVSTACK_DIR={workdir}")
    sys.stdout.flush()
    sys.stderr.flush()
    rc = 0
    try:
        while not stop_event.wait(1.0):
            dead = [s for s in services.values() if not s.alive()]
            if dead:
                for s in dead:
                    print(
                        f"# devstack: {s.name} exited ({s.proc.returncode}):\n{s.log_tail()}",
                        file=sys.stderr,
                    )
                rc = 1
                break
    finally:
        for svc in services.values():
            svc.stop()
        print("# devstack: stopped", file=sys.stderr, flush=True)
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    from .. import devstack  # its package docstring is the --help text

    parser = argparse.ArgumentParser(
        prog="python -m tools.devstack",
        description=devstack.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start services, print env exports, wait for SIGTERM/SIGINT")
    up.add_argument("--dir", help="work directory (default: a new temp dir)")
    up.add_argument("--libs", default=str(DEFAULT_KAFKA_LIBS), help="Kafka jars directory")
    up.add_argument(
        "--only",
        default="mosquitto,postgres,kafka",
        help="comma-separated subset of mosquitto,postgres,kafka",
    )
    args = parser.parse_args(argv)
    if args.cmd == "up":
        return _cmd_up(args)
    return 2
