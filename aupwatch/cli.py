"""The ``aupwatch`` command line: the only place that configures logging and reads config."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence

from aupwatch.errors import AupwatchError
from aupwatch.streams.config import load_config
from aupwatch.streams.generator import command as generator_command
from aupwatch.streams.replay import command as replay_command
from aupwatch.streams.worker import commands as worker_commands


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file (default: built-in defaults, or $AUPWATCH_CONFIG)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="level of aupwatch's own messages on stderr (default INFO); Faust and the "
        "Kafka clients log WARNING and above, or everything with DEBUG",
    )


# Framework messages that look alarming but are not, by logger (or a parent of it) and a
# text the message contains ("" = every message): shown only with --log-level DEBUG.
HARMLESS: tuple[tuple[str, str], ...] = (
    # Faust's rebalance bookkeeping for sensors; aupwatch installs none (mode logs the
    # worker's app under the module of its subclass)
    ("faust.app.base", "Missing sensor state for rebalance"),
    ("aupwatch.streams.worker.faust_app", "Missing sensor state for rebalance"),
    # a 1 s timer that ran longer (start-up, a checkpoint); real stalls have their own warning
    ("mode.timers", "is overlapping"),
    # kafka-python's connection retries: a failure that lasts ends the command with one line
    ("kafka.net", ""),
)


class HarmlessFilter(logging.Filter):
    """Keeps framework chatter out of the log unless ``show`` (--log-level DEBUG).

    Drops the :data:`HARMLESS` messages (relabelled DEBUG when shown), and the INFO
    messages of Faust services that aupwatch subclasses: mode logs those under the
    subclass's module, so they would pass as aupwatch's own.
    """

    def __init__(self, show: bool) -> None:
        super().__init__()
        self.show = show

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether the record is written (a harmless one is relabelled DEBUG first)."""
        if record.levelno <= logging.DEBUG:
            return True
        if _harmless(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.show
        if record.levelno < logging.WARNING and _framework_service(record):
            return self.show
        return True


def _harmless(record: logging.LogRecord) -> bool:
    name = record.name
    for logger, text in HARMLESS:
        if (name == logger or name.startswith(logger + ".")) and text in str(record.msg):
            return True
    return False


def _framework_service(record: logging.LogRecord) -> bool:
    # mode prefixes a service's messages with "[^" and its name ("[^---StateTable: ...]")
    return record.name.startswith("aupwatch.") and str(record.msg).startswith("[^")


def configure_logging(level: str) -> None:
    """Logs to stderr: aupwatch at ``level``, libraries at WARNING or above (DEBUG: all).

    Leaves logging alone when the root logger already has handlers (a test runner, or a
    program that calls :func:`main`), as :func:`logging.basicConfig` does.

    Args:
        level: DEBUG, INFO, WARNING or ERROR.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    ours = logging.getLevelName(level)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(HarmlessFilter(show=ours <= logging.DEBUG))
    root.addHandler(handler)
    root.setLevel(ours if ours <= logging.DEBUG else max(ours, logging.WARNING))
    logging.getLogger("aupwatch").setLevel(ours)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="aupwatch",
        description="Acceptable Use Policy monitor for marketplace API applications.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    replay_command.register(sub, _common)
    generator_command.register(sub)
    worker_commands.register(sub, _common)
    return parser


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
    configure_logging(getattr(args, "log_level", "INFO"))
    # a *_created series per counter series doubles what Prometheus stores, for nothing
    # that rate() and increase() need
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # type: ignore[no-untyped-call]
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
