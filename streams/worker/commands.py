"""Subcommands that talk to Kafka: ``worker`` and ``alerts``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from aupwatch.streams.config import AppConfig
from aupwatch.streams.worker.topics import changelog_names, topic_names

log = logging.getLogger(__name__)

# seconds to wait for a TCP connection to a bootstrap server before giving up
REACH_TIMEOUT = 10.0

WORKER_HELP = """\
Runs one stream worker. Start several with the same --group (and config) to share the
work: the input topic's partitions and the internal topics' partitions are spread over
the group's members; state moves with its partitions through changelog topics.

Kafka settings come from the config file's [kafka] table, AUPWATCH_KAFKA__* environment
variables, or the options below (options win). For SASL/TLS clusters set
security_protocol (SASL_SSL, SASL_PLAINTEXT, SSL), sasl_mechanism (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512), sasl_username, sasl_password, ssl_cafile, ssl_certfile, ssl_keyfile,
preferably from the environment, e.g. AUPWATCH_KAFKA__SASL_PASSWORD.

Topics: the input topic (created with --partitions if missing), <group>-detect,
<group>-throttle, <group>-occurrences (internal), the alerts topic (compacted, keyed by
alert_id), the dead-letter topic (raw record as value, reason and source
topic/partition/offset/line in headers), and the state changelogs
<group>-{detect,throttle,alerts}-state-changelog.

Stops cleanly on SIGTERM or Ctrl-C; unacknowledged input is re-read on restart and
duplicates are suppressed, so a crash loses nothing.
"""


def _kafka_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT[,...]",
        help="Kafka bootstrap servers (config kafka.bootstrap_servers)",
    )
    parser.add_argument("--input-topic", metavar="TOPIC", help="raw log records topic")
    parser.add_argument("--alerts-topic", metavar="TOPIC", help="alerts topic")


def _with_kafka(config: AppConfig, args: argparse.Namespace) -> AppConfig:
    changes = {}
    for opt, field in (
        ("bootstrap_servers", "bootstrap_servers"),
        ("input_topic", "input_topic"),
        ("alerts_topic", "alerts_topic"),
        ("dead_letter_topic", "dead_letter_topic"),
        ("group", "group_id"),
        ("partitions", "partitions"),
    ):
        value = getattr(args, opt, None)
        if value is not None:
            changes[field] = value
    if not changes:
        return config
    return dataclasses.replace(config, kafka=dataclasses.replace(config.kafka, **changes))


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Adds ``worker`` and ``alerts`` to the command line."""
    wp = sub.add_parser(
        "worker",
        help="run a Kafka stream worker (Faust)",
        description=WORKER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(wp)
    _kafka_options(wp)
    wp.add_argument("--dead-letter-topic", metavar="TOPIC", help="dead-letter topic")
    wp.add_argument(
        "--group",
        metavar="ID",
        help="consumer group and prefix of internal topics (kafka.group_id)",
    )
    wp.add_argument(
        "--partitions",
        type=int,
        metavar="N",
        help="partitions of internal topics and a new input topic",
    )
    wp.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on this port (monitor.metrics_port)",
    )
    wp.add_argument(
        "--alertmanager-url",
        metavar="URL",
        help="also post alerts to this Alertmanager (monitor.alertmanager_url)",
    )
    wp.set_defaults(func=cmd_worker)

    ap = sub.add_parser(
        "alerts",
        help="print the latest version of each alert from Kafka",
        description="Reads the alerts topic from the beginning and prints "
        "the latest version of each alert as JSON Lines.",
    )
    common(ap)
    _kafka_options(ap)
    ap.add_argument(
        "--follow",
        action="store_true",
        help="keep running and print every new alert version as it arrives",
    )
    ap.add_argument(
        "--idle-exit",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="without --follow, stop after this long without new messages",
    )
    ap.set_defaults(func=cmd_alerts)


def _stop_before_start(signum: int, frame: Any) -> None:
    # client threads of the start-up checks may not be daemons: leave without joining them
    sys.stderr.flush()
    os._exit(0)


def cmd_worker(args: argparse.Namespace, config: AppConfig) -> int:
    """Runs ``aupwatch worker`` until SIGTERM.

    Raises:
        AupwatchError: The metrics port cannot be bound or Kafka cannot be reached.
    """
    from prometheus_client import CollectorRegistry

    from aupwatch.streams.kafka_io import check_reachable, ensure_topics
    from aupwatch.streams.ops.metrics import Metrics
    from aupwatch.streams.worker.faust_app import BoundedStopWorker
    from aupwatch.streams.worker.worker import Worker

    # a stop asked for before Faust handles signals: nothing is consumed yet, exit cleanly
    signal.signal(signal.SIGTERM, _stop_before_start)
    config = _with_kafka(config, args)
    monitor = config.monitor
    port = args.metrics_port if args.metrics_port is not None else monitor.metrics_port
    url = args.alertmanager_url if args.alertmanager_url is not None else (monitor.alertmanager_url)
    if config.worker.uvloop:
        import uvloop

        uvloop.install()
    # local mistakes first: they fail at once, whatever the state of the cluster
    metrics = Metrics(CollectorRegistry())
    metrics_at = "off"
    if port:
        server = metrics.serve(
            port, monitor.metrics_addr, monitor.metrics_certfile, monitor.metrics_keyfile
        )
        scheme = "https" if monitor.metrics_certfile else "http"
        metrics_at = f"{scheme}://{monitor.metrics_addr}:{server.server_port}/metrics"
    check_reachable(config, REACH_TIMEOUT)
    n_input = ensure_topics(config, topic_names(config), changelogs=changelog_names(config))
    sink = None
    if url:
        from aupwatch.streams.ops.alertmanager import AlertmanagerSink

        sink = AlertmanagerSink.from_settings(url, metrics, monitor)
    worker = Worker(config, n_input, metrics=metrics, sink=sink)
    announce_ready(worker.app, config, metrics_at)
    metrics.worker_up(True)
    # logging stays as the command line set it up (Faust would replace its handlers)
    fw = BoundedStopWorker(
        worker.app, loglevel=args.log_level.lower(), quiet=True, override_logging=False
    )
    # its start-up spinner sets the root logger to DEBUG: every debug call would build a record
    fw.spinner = None
    try:
        fw.execute_from_commandline()
    finally:
        metrics.worker_up(False)
        if sink is not None:
            sink.close(5.0)
    return 0


def announce_ready(app: Any, config: AppConfig, metrics_at: str) -> None:
    """Logs one line (INFO) when the worker first holds its partitions, state recovered.

    Faust sends ``on_rebalance_complete`` after the assigned partitions' tables are
    recovered; later rebalances are counted in ``aupwatch_worker_rebalances_total``.

    Args:
        app: The worker's Faust app.
        config: Application config (group and topic names).
        metrics_at: Where metrics are served, or ``off``.
    """
    names = topic_names(config)
    said = False

    async def ready(sender: Any, **_: Any) -> None:
        nonlocal said
        if said:
            return
        said = True
        assigned = app.consumer.assignment()

        def parts(topic: str) -> str:
            ps = sorted(tp.partition for tp in assigned if tp.topic == topic)
            return ",".join(map(str, ps)) or "none"

        log.info(
            "ready: group %s, input %s partitions %s, stage partitions %s, "
            "alerts to %s, dead letters to %s, metrics %s",
            config.kafka.group_id,
            names["input"],
            parts(names["input"]),
            parts(names["detect"]),
            names["alerts"],
            names["dead"],
            metrics_at,
        )

    app.on_rebalance_complete.connect(ready)


def cmd_alerts(args: argparse.Namespace, config: AppConfig) -> int:
    """Runs ``aupwatch alerts``.

    Raises:
        AupwatchError: Kafka cannot be reached or the alerts topic cannot be read.
    """
    import orjson

    from aupwatch.streams.kafka_io import check_reachable, tail_alerts

    config = _with_kafka(config, args)
    check_reachable(config, REACH_TIMEOUT)
    out = sys.stdout.buffer
    for alert in tail_alerts(config, args.follow, args.idle_exit):
        out.write(orjson.dumps(alert) + b"\n")
        if args.follow:
            out.flush()
    out.flush()
    return 0
