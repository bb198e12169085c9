"""``aupwatch replay --to-kafka``: log files into the input topic instead of the detectors."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Iterator

from aupwatch.errors import UsageError
from aupwatch.schemas.records import parse_ts
from aupwatch.streams.config import AppConfig
from aupwatch.streams.replay.replay import Progress, open_input

# options that only mean something with --to-kafka, by argparse dest
KAFKA_ONLY = ("bootstrap_servers", "input_topic", "partitions", "batch", "pace", "since", "until")
# options of the offline path, by argparse dest, with their defaults
OFFLINE_ONLY = {
    "alerts": "-",
    "dead_letters": None,
    "suppressed": None,
    "upserts": False,
    "metrics_port": None,
}
# seconds to wait for a TCP connection to a bootstrap server before giving up
REACH_TIMEOUT = 10.0


def add_options(parser: argparse.ArgumentParser) -> None:
    """Adds the ``--to-kafka`` option group to the replay parser."""
    g = parser.add_argument_group("sending to Kafka (--to-kafka)")
    g.add_argument(
        "--to-kafka",
        action="store_true",
        help="send the records to the input topic instead of running detectors",
    )
    g.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]")
    g.add_argument("--input-topic", metavar="TOPIC")
    g.add_argument(
        "--partitions",
        type=int,
        metavar="N",
        help="partitions of the input topic if it must be created",
    )
    # None rather than 1 by default, so that a --batch without --to-kafka can be refused
    g.add_argument(
        "--batch",
        type=int,
        metavar="N",
        help="records per Kafka message (JSON Lines), default 1",
    )
    g.add_argument(
        "--pace",
        type=float,
        metavar="X",
        help="send at X times real time by event time (default: as fast as possible)",
    )
    g.add_argument("--since", metavar="TIME", help="skip records before this RFC 3339 time")
    g.add_argument("--until", metavar="TIME", help="skip records at or after this time")


def refuse_without_to_kafka(args: argparse.Namespace) -> None:
    """Rejects ``--to-kafka`` options given without ``--to-kafka`` (they would do nothing).

    Raises:
        UsageError: One of them was given.
    """
    given = [
        f"--{dest.replace('_', '-')}" for dest in KAFKA_ONLY if getattr(args, dest) is not None
    ]
    if given:
        raise UsageError(f"{', '.join(given)} only apply with --to-kafka")


def refuse_offline_options(args: argparse.Namespace) -> None:
    """Rejects options of the offline path given with ``--to-kafka`` (they would do nothing).

    Raises:
        UsageError: One of them was given.
    """
    given = [
        f"--{dest.replace('_', '-')}"
        for dest, default in OFFLINE_ONLY.items()
        if getattr(args, dest) != default
    ]
    if given:
        raise UsageError(f"{', '.join(given)} do not apply with --to-kafka")


def _with_kafka(config: AppConfig, args: argparse.Namespace) -> AppConfig:
    changes = {
        field: getattr(args, field)
        for field in ("bootstrap_servers", "input_topic", "partitions")
        if getattr(args, field) is not None
    }
    if not changes:
        return config
    return dataclasses.replace(config, kafka=dataclasses.replace(config.kafka, **changes))


def send(args: argparse.Namespace, config: AppConfig) -> int:
    """Runs ``aupwatch replay --to-kafka``.

    Returns:
        0 when every record read was sent or skipped by the time filter, else 1.

    Raises:
        UsageError: A bad --batch, --pace, --since or --until, or an option of the
            offline path.
        AupwatchError: Kafka cannot be reached.
    """
    from aupwatch.streams.kafka_io import check_reachable, ensure_topics, send_records

    refuse_offline_options(args)
    batch = 1 if args.batch is None else args.batch
    if batch < 1:
        raise UsageError("--batch must be at least 1")
    if args.pace is not None and args.pace <= 0:
        raise UsageError("--pace must be positive")
    try:
        since = parse_ts(args.since) if args.since else None
        until = parse_ts(args.until) if args.until else None
    except ValueError as exc:
        raise UsageError(f"--since/--until: {exc}") from None
    config = _with_kafka(config, args)
    topic = config.kafka.input_topic
    check_reachable(config, REACH_TIMEOUT)
    ensure_topics(config, {"input": topic}, input_partitions=args.partitions)
    read = 0

    def lines() -> Iterator[bytes]:
        nonlocal read
        for path in args.files:
            stream, _ = open_input(path)
            with stream:
                for line in stream:
                    line = line.rstrip(b"\r\n")
                    if line.strip():
                        read += 1
                        yield line

    progress = Progress(None, f"sending to {topic}")
    start = time.monotonic()
    sent, skipped = send_records(
        config,
        topic,
        lines(),
        batch=batch,
        pace=args.pace,
        since=since,
        until=until,
        on_progress=lambda n: progress(n * 300),
    )
    progress.done()
    took = time.monotonic() - start
    if not args.quiet:
        print(
            f"read {read} records, sent {sent} to {topic} "
            f"({batch} per message), skipped by time filter {skipped}, "
            f"{took:.2f} s ({sent / took if took else 0:,.0f} records/s)",
            file=sys.stderr,
        )
    return 0 if sent + skipped == read else 1
