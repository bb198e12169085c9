"""The Faust app's settings, from the application config."""

from __future__ import annotations

from typing import Any

from aupwatch.streams.config import AppConfig
from aupwatch.streams.security import faust_credentials


def faust_settings(config: AppConfig) -> dict[str, Any]:
    """Faust app settings: the tuned values of the measurements in the README."""
    k = config.kafka
    settings: dict[str, Any] = {
        "broker": [f"kafka://{s.strip()}" for s in k.bootstrap_servers.split(",")],
        "store": "memory://",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "topic_partitions": k.partitions,
        "topic_replication_factor": k.replication_factor,
        "topic_disable_leader": True,
        "web_enabled": False,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": 1.0,
        "broker_max_poll_records": 10000,
        "stream_buffer_maxsize": 131072,
        "stream_wait_empty": False,
        "consumer_max_fetch_size": 8 * 1024 * 1024,
        "producer_linger": config.worker.producer_linger,
        "producer_max_batch_size": 262144,
        "producer_max_request_size": 8 * 1024 * 1024,
        "table_standby_replicas": 0,
        "datadir": config.worker.data_dir,
        "broker_session_timeout": config.worker.session_timeout,
        "broker_heartbeat_interval": 3.0,
    }
    # the same TLS context and SASL settings as the kafka-python clients
    creds = faust_credentials(config.kafka)
    if creds is not None:
        settings["broker_credentials"] = creds
    return settings
