"""The ``aupwatch replay`` command: its options and both of its paths.

Without ``--to-kafka`` the files run through the detectors in this process and the alerts
are written as JSON Lines (a table when they would go to a terminal); with it the records
go to the input topic for the workers (:mod:`aupwatch.streams.replay.to_kafka`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from aupwatch.streams.config import AppConfig
from aupwatch.streams.replay import table, to_kafka
from aupwatch.streams.replay.replay import JsonLinesWriter, Progress, Replay


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Adds ``replay`` to the command line.

    Args:
        sub: The subparsers of the ``aupwatch`` parser.
        common: Adds the options every subcommand has (--config, --log-level).
    """
    rp = sub.add_parser(
        "replay",
        help="run the detectors over historical log files (no Kafka needed)",
        description="Replays JSON Lines log files (.jsonl, .jsonl.gz or - for stdin) through "
        "every detector in event-time order and writes the alerts as JSON Lines.",
    )
    common(rp)
    rp.add_argument("files", nargs="+", metavar="FILE", help="input files, read in order")
    rp.add_argument(
        "--alerts",
        metavar="FILE",
        default="-",
        help="where alerts go as JSON Lines (default: stdout; a terminal gets a table instead)",
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
        "instead of the final version of each alert at the end (always JSON Lines)",
    )
    rp.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on this port while replaying",
    )
    rp.add_argument(
        "--suppressed",
        metavar="FILE",
        help="where alerts excepted by [[exceptions]] go, each with the note that matched "
        "(default: counted only)",
    )
    rp.add_argument("--quiet", action="store_true", help="no summary on stderr")
    to_kafka.add_options(rp)
    rp.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace, config: AppConfig) -> int:
    """Runs ``aupwatch replay``.

    Returns:
        The exit code.

    Raises:
        UsageError: Unreadable input, unwritable output, or options that do not apply.
    """
    if args.to_kafka:
        return to_kafka.send(args, config)
    to_kafka.refuse_without_to_kafka(args)
    with without_cycle_collector():  # _run's state is freed when it returns, before it is back
        return _run(args, config)


@contextlib.contextmanager
def without_cycle_collector() -> Iterator[None]:
    """Runs the block with the cycle collector off, and as it was again afterwards.

    Replay's state and items hold no reference cycles: reference counting frees them, and
    the collector would only rescan them: a few per cent of a replay (docs/performance.md).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _run(args: argparse.Namespace, config: AppConfig) -> int:
    """Replays the files through the detectors in this process (``cmd_replay``'s body)."""
    metrics = None
    server = None
    if args.metrics_port is not None:
        from prometheus_client import CollectorRegistry

        from aupwatch.streams.ops.metrics import Metrics

        metrics = Metrics(CollectorRegistry())
        monitor = config.monitor
        server = metrics.serve(
            args.metrics_port,
            monitor.metrics_addr,
            monitor.metrics_certfile,
            monitor.metrics_keyfile,
        )
    # a person at a terminal gets a table; files and pipes get the JSON Lines unchanged
    as_table = args.alerts == "-" and not args.upserts and sys.stdout.isatty()
    alerts_out = JsonLinesWriter(None if as_table else args.alerts)
    dead_out = JsonLinesWriter(args.dead_letters)
    suppressed_out = JsonLinesWriter(args.suppressed)
    on_alert = alerts_out.write if args.upserts else (lambda alert: None)
    rep = Replay(config, on_alert, dead_out.write, metrics)
    start = time.monotonic()
    try:
        for path in args.files:
            size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else None
            progress = Progress(size, path)
            rep.feed_file(path, progress)
            progress.done()
        final = rep.finish()
        if as_table:
            width = shutil.get_terminal_size().columns
            sys.stdout.write(table.render(final, width))
            sys.stdout.flush()
        elif not args.upserts:
            for alert in sorted(final, key=lambda a: (a["ts"], a["alert_id"])):
                alerts_out.write(alert)
        for alert in sorted(rep.suppressed.values(), key=lambda a: (a["ts"], a["alert_id"])):
            suppressed_out.write(alert)
    finally:
        alerts_out.close()
        dead_out.close()
        suppressed_out.close()
        if server is not None:
            server.shutdown()
            server.server_close()
    rep.summary.seconds = time.monotonic() - start
    if not args.quiet:
        print(rep.summary.render(), file=sys.stderr)
    return 0
