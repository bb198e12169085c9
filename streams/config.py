"""The one config file (TOML) plus environment overrides, read at entry points only.

Environment overrides: ``AUPWATCH_<TABLE>__<KEY>=value`` (``__`` between levels), the
value read as a TOML value when it parses as one, else as a string. For example
``AUPWATCH_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or ``AUPWATCH_TIME__ALLOWED_LATENESS=60s``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aupwatch.detectors.config import DetectorConfig, parse_duration
from aupwatch.errors import ConfigError
from aupwatch.schemas.decode import DEFAULT_MAX_RECORD_BYTES

ENV_PREFIX = "AUPWATCH_"
DETECTOR_TABLES = (
    "time",
    "alerts",
    "roles",
    "throttle",
    "disclosure",
    "throttle_disrespect",
    "internal_overreach",
    "unauthorized_seller_access",
    "dormant",
    "detectors",
    "exceptions",
)


@dataclass(frozen=True)
class KafkaSettings:
    """Where the worker reads and writes, and how it authenticates."""

    bootstrap_servers: str = "127.0.0.1:19092"
    input_topic: str = "aupwatch-logs"
    alerts_topic: str = "aupwatch-alerts"
    dead_letter_topic: str = "aupwatch-dead-letters"
    group_id: str = "aupwatch"
    partitions: int = 4
    replication_factor: int = 1
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""


@dataclass(frozen=True)
class WorkerSettings:
    """Batching, checkpointing and idleness of a worker. Times are seconds."""

    batch_size: int = 1000
    batch_within: float = 0.05
    producer_linger: float = 0.01
    checkpoint_interval: float = 2.0
    idle_timeout: float = 10.0
    replay_timeout: float = 60.0
    dead_letter_max_bytes: int = 1_000_000
    internal_batch: int = 2000
    seen_chunk: int = 512
    data_dir: str = "var/worker"
    uvloop: bool = True
    session_timeout: float = 30.0
    # records one input partition may be read ahead of the group's decisions (0: no limit)
    max_undecided: int = 20_000
    # longest the broker holds a fetch that finds no records (Faust's own: 1.5 s)
    fetch_max_wait: float = 0.1


@dataclass(frozen=True)
class MonitorSettings:
    """Metrics endpoint and the optional Alertmanager sink, and how each is secured."""

    metrics_port: int = 0
    metrics_addr: str = "0.0.0.0"
    # HTTPS for the metrics endpoint: a PEM certificate (chain) and its key
    metrics_certfile: str = ""
    metrics_keyfile: str = ""
    alertmanager_url: str = ""
    alertmanager_timeout: float = 5.0
    # CA that signed Alertmanager's certificate (empty: the system CAs)
    alertmanager_cafile: str = ""
    # basic auth, or else a bearer token
    alertmanager_username: str = ""
    alertmanager_password: str = field(default="", repr=False)
    alertmanager_bearer_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.metrics_keyfile and not self.metrics_certfile:
            raise ConfigError(
                "monitor.metrics_keyfile is set without monitor.metrics_certfile",
                key="monitor.metrics_keyfile",
            )
        if self.alertmanager_bearer_token and self.alertmanager_username:
            raise ConfigError(
                "set monitor.alertmanager_username (basic auth) or "
                "monitor.alertmanager_bearer_token, not both",
                key="monitor.alertmanager_bearer_token",
            )
        if self.alertmanager_password and not self.alertmanager_username:
            raise ConfigError(
                "monitor.alertmanager_password is set without monitor.alertmanager_username",
                key="monitor.alertmanager_username",
            )


@dataclass(frozen=True)
class AppConfig:
    """Everything an entry point needs."""

    detectors: DetectorConfig = field(default_factory=DetectorConfig)
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> AppConfig:
    """Reads the config file (if any) and applies environment overrides.

    Args:
        path: A TOML file; None means built-in defaults (or ``AUPWATCH_CONFIG``).
        environ: The environment to read overrides from (default ``os.environ``).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The file cannot be read or a value is invalid.
    """
    env = os.environ if environ is None else environ
    path = path or env.get("AUPWATCH_CONFIG") or None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file: {exc.strerror}", path=str(path)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file is not valid TOML: {exc}", path=str(path)) from None
    _apply_env(data, env)
    return build_config(data)


def build_config(data: Mapping[str, Any]) -> AppConfig:
    """Validates a parsed config document.

    Args:
        data: The TOML document as a mapping.

    Returns:
        The configuration.

    Raises:
        ConfigError: Unknown tables or keys, or invalid values.
    """
    known = {*DETECTOR_TABLES, "input", "kafka", "worker", "monitor"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown config table(s): {', '.join(sorted(unknown))}")
    detectors = DetectorConfig.from_mapping({k: data[k] for k in DETECTOR_TABLES if k in data})
    inp = data.get("input", {})
    max_bytes = inp.get("max_record_bytes", DEFAULT_MAX_RECORD_BYTES)
    if set(inp) - {"max_record_bytes"}:
        raise ConfigError("unknown setting(s) in [input]", key="input")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
        raise ConfigError(
            "input.max_record_bytes must be an integer >= 1024", key="input.max_record_bytes"
        )
    worker = _section(WorkerSettings, data.get("worker", {}), "worker")
    for key in ("batch_size", "internal_batch", "seen_chunk", "dead_letter_max_bytes"):
        if getattr(worker, key) < 1:
            raise ConfigError(f"worker.{key} must be at least 1", key=f"worker.{key}")
    if not 0.001 <= worker.fetch_max_wait <= 60:
        raise ConfigError(
            "worker.fetch_max_wait must be between 0.001 and 60 (seconds)",
            key="worker.fetch_max_wait",
        )
    return AppConfig(
        detectors=detectors,
        max_record_bytes=max_bytes,
        kafka=_section(KafkaSettings, data.get("kafka", {}), "kafka"),
        worker=worker,
        monitor=_section(MonitorSettings, data.get("monitor", {}), "monitor"),
    )


def _section(cls: Any, table: Any, name: str) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{name}] must be a table", key=name)
    types = {f.name: f.type for f in fields(cls)}
    defaults = cls()
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in types:
            raise ConfigError(f"unknown setting {name}.{key}", key=f"{name}.{key}")
        want = type(getattr(defaults, key))
        if want is float and isinstance(value, str):
            value = parse_duration(value, f"{name}.{key}") / 1_000_000
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not want:
            raise ConfigError(
                f"{name}.{key} must be of type {want.__name__}, got {value!r}", key=f"{name}.{key}"
            )
        if want in (int, float) and value < 0:
            raise ConfigError(f"{name}.{key} must not be negative", key=f"{name}.{key}")
        values[key] = value
    return cls(**values)


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name or name == "AUPWATCH_CONFIG":
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment override {name} does not fit the config", key=name)
        node[path[-1]] = value
