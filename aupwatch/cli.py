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
