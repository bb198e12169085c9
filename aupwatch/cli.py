"""The ``aupwatch`` command line: the only place that configures logging and reads config."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from aupwatch.errors import AupwatchError
from aupwatch.streams.config import AppConfig, load_config
from aupwatch.streams.replay import replay as replay_mod


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file (default: built-in defaults, or $AUPWATCH_CONFIG)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level on stderr",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="aupwatch",
        description="Acceptable Use Policy monitor for marketplace API applications.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rp = sub.add_parser(
        "replay",
        help="run the detectors over historical log files (no Kafka needed)",
        description="Replays JSON Lines log files (.jsonl, .jsonl.gz or - for stdin) through "
        "every detector in event-time order and writes the alerts as JSON Lines.",
    )
    _common(rp)
    rp.add_argument("files", nargs="+", metavar="FILE", help="input files, read in order")
    rp.add_argument(
        "--alerts", metavar="FILE", default="-", help="where alerts go (default: stdout)"
    )
    rp.add_argument(
        "--dead-letters",
        metavar="FILE",
        help="where rejected records go, with reason and line number (default: counted only)",
    )
    rp.add_argument(
        "--upserts",
        action="store_true",
        help="write every alert version as it is emitted (like the alerts topic) "
        "instead of the final version of each alert at the end",
    )
    rp.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on this port while replaying",
    )
    rp.add_argument("--quiet", action="store_true", help="no summary on stderr")
    rp.set_defaults(func=cmd_replay)
    try:
        from aupwatch.streams.worker.commands import add_replay_options
    except ImportError:
        pass
    else:
        add_replay_options(rp)

    try:
        from aupwatch.streams.generator import command as generator
    except ImportError:  # the generator is optional for a stripped install
        generator = None  # type: ignore[assignment]
    if generator is not None:
        generator.register(sub)

    _register_stream_commands(sub)
    return parser


def _register_stream_commands(sub: Any) -> None:
    try:
        from aupwatch.streams.worker import commands as worker_cli
    except ImportError:
        return
    worker_cli.register(sub, _common)


def cmd_replay(args: argparse.Namespace, config: AppConfig) -> int:
    """Runs ``aupwatch replay``."""
    if getattr(args, "to_kafka", False):
        from aupwatch.streams.worker.commands import replay_to_kafka

        return replay_to_kafka(args, config)
    metrics = None
    server = None
    if args.metrics_port is not None:
        from prometheus_client import CollectorRegistry

        from aupwatch.streams.ops.metrics import Metrics

        metrics = Metrics(CollectorRegistry())
        server = metrics.serve(args.metrics_port)
    alerts_out = replay_mod.JsonLinesWriter(args.alerts)
    dead_out = replay_mod.JsonLinesWriter(args.dead_letters)
    on_alert = alerts_out.write if args.upserts else (lambda alert: None)
    rep = replay_mod.Replay(config, on_alert, dead_out.write, metrics)
    start = time.monotonic()
    try:
        for path in args.files:
            size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else None
            progress = replay_mod.Progress(size, path)
            rep.feed_file(path, progress)
            progress.done()
        final = rep.finish()
        if not args.upserts:
            for alert in sorted(final, key=lambda a: (a["ts"], a["alert_id"])):
                alerts_out.write(alert)
    finally:
        alerts_out.close()
        dead_out.close()
        if server is not None:
            server.shutdown()
            server.server_close()
    rep.summary.seconds = time.monotonic() - start
    if not args.quiet:
        print(rep.summary.render(), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aupwatch`` console script.

    Returns:
        0 on success, 2 on usage or config errors (one line on stderr, no traceback).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    # detector state is millions of long-lived small containers: default gc thresholds
    # rescan them over and over, which halves throughput on large inputs
    gc.freeze()
    gc.set_threshold(200_000, 50, 1000)
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(getattr(args, "config", None))
        return int(args.func(args, config))
    except AupwatchError as exc:
        print(f"aupwatch: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
