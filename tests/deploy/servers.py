"""Start and stop real Prometheus and Alertmanager processes for tests.

Each server runs from the Debian binaries (installed by ``deploy/install-monitoring.sh``) with
its own config, data directory and a free port on 127.0.0.1, so tests never touch a system
service or each other. Typical use::

    ensure_monitoring()                       # install the binaries if missing (root)
    with start_alertmanager(tmp_path / "am") as am, start_prometheus(
        tmp_path / "prom", targets=[f"127.0.0.1:{metrics_port}"], alertmanager=am
    ) as prom:
        alert = wait_for(lambda: firing_alerts(prom, "AupwatchUnauthorizedSellerAccess"), 30)

Prometheus scrapes and evaluates every second by default, and loads the project's rules
(deploy/prometheus/rules/aupwatch.rules.yml) unless told otherwise.

A secured Alertmanager (HTTPS with a certificate of a test CA, basic auth) takes a
``tests.certs.SecuredWeb``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.certs import SecuredWeb
from tests.deploy.http import (  # noqa: F401  (tests use them as servers.*)
    basic_auth,
    free_port,
    http_get,
    http_json,
    wait_for,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
INSTALL_SCRIPT = DEPLOY / "install-monitoring.sh"
RULES_FILE = DEPLOY / "prometheus" / "rules" / "aupwatch.rules.yml"
RULES_TEST_FILE = DEPLOY / "prometheus" / "tests" / "aupwatch.rules.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
DASHBOARD_FILE = DEPLOY / "grafana" / "dashboards" / "aupwatch.json"

# Alertmanager that accepts alerts and notifies nobody.
NULL_ALERTMANAGER_CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: "null"
"""

_BINARIES = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "amtool": ("amtool",),
}
_installed: bool | None = None


class MonitoringUnavailable(RuntimeError):
    """The binaries are missing and cannot be installed here (not root)."""


def binary(name: str) -> str | None:
    """Return the path of ``prometheus``, ``promtool``, ``alertmanager`` or ``amtool``."""
    for candidate in _BINARIES[name]:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def require_binary(name: str) -> str:
    """Return the path of a monitoring binary, or raise if it is missing."""
    path = binary(name)
    if path is None:
        raise MonitoringUnavailable(f"{name} not found; run bash {INSTALL_SCRIPT}")
    return path


def monitoring_installed() -> bool:
    """True if prometheus, promtool and alertmanager are all on PATH."""
    return all(binary(name) for name in ("prometheus", "promtool", "alertmanager"))


def ensure_monitoring(timeout: float = 900) -> None:
    """Install Prometheus and Alertmanager with deploy/install-monitoring.sh if missing.

    Raises:
        MonitoringUnavailable: If they are missing and this process is not root.
        RuntimeError: If the install script fails.
    """
    global _installed
    if _installed or monitoring_installed():
        _installed = True
        return
    if os.geteuid() != 0:
        raise MonitoringUnavailable(
            f"prometheus/alertmanager missing and not root: run sudo bash {INSTALL_SCRIPT}"
        )
    proc = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0 or not monitoring_installed():
        raise RuntimeError(
            f"{INSTALL_SCRIPT} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    _installed = True


@dataclass
class Server:
    """A running server process started by this module."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log_path: Path
    config_path: Path
    extra: dict[str, Any] = field(default_factory=dict)
    scheme: str = "http"
    cafile: Path | None = None  # the CA of an https server
    headers: dict[str, str] = field(default_factory=dict)  # credentials of a secured server

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT`` (``https`` when secured)."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as used in scrape or alerting targets."""
        return f"127.0.0.1:{self.port}"

    def log(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the server's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def get_json(self, path: str, **params: str) -> Any:
        """GET ``path`` (with query parameters) from the server and decode the JSON."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return http_json(f"{self.url}{path}{query}", cafile=self.cafile, headers=self.headers)

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_ready(server: Server, timeout: float = 30.0) -> None:
    """Wait until ``GET /-/ready`` answers 200.

    Raises:
        RuntimeError: If the process exits first (with its log) or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}:\n{server.log()}"
            )
        try:
            status, _ = http_get(
                f"{server.url}/-/ready", timeout=1.0, cafile=server.cafile, headers=server.headers
            )
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.name} not ready within {timeout}s:\n{server.log()}")


def _launch(
    name: str,
    workdir: Path,
    config_text: str,
    config_name: str,
    command: Callable[[Path, int], list[str]],
    port: int | None,
    timeout: float,
    **secured: Any,
) -> Server:
    """Write the config, start the process on a free port and wait until it is ready.

    A port picked here may be taken by someone else before the server binds it; then the
    start is retried on another port (up to 3 times). ``secured``: the Server's ``scheme``,
    ``cafile`` and ``headers``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / config_name
    config_path.write_text(config_text)
    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        log_path = workdir / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command(config_path, chosen),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Server(name, process, chosen, workdir, log_path, config_path, **secured)
        try:
            wait_ready(server, timeout)
            return server
        except RuntimeError:
            server.stop()
            if attempt + 1 < attempts and "address already in use" in server.log():
                continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def prometheus_config(
    targets: Iterable[str] = (),
    *,
    job: str = "aupwatch",
    rule_files: Sequence[Path | str] = (RULES_FILE,),
    alertmanagers: Iterable[str] = (),
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
) -> str:
    """Render a Prometheus config (JSON, which is valid YAML) for tests."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]},
        ],
    }
    managers = list(alertmanagers)
    if managers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": managers}]}]}
    return json.dumps(config, indent=2)


def start_prometheus(
    workdir: Path,
    *,
    targets: Iterable[str] = (),
    job: str = "aupwatch",
    rule_files: Sequence[Path | str] = (RULES_FILE,),
    alertmanager: Server | str | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    config_text: str | None = None,
    port: int | None = None,
    timeout: float = 60.0,
) -> Server:
    """Start Prometheus on 127.0.0.1 with its own TSDB under ``workdir``.

    Args:
        workdir: Directory for the config, the TSDB (``data/``) and the log.
        targets: ``host:port`` scrape targets of job ``job``.
        job: Job name of the targets (the rules expect ``aupwatch``).
        rule_files: Rule files to load (default: the project's rules).
        alertmanager: Alertmanager (a Server or ``host:port``) to send alerts to.
        scrape_interval: Scrape interval (also the scrape timeout).
        evaluation_interval: Rule evaluation interval.
        config_text: A complete config to use instead of the one built from the above.
        port: Port to listen on (default: a free one).
        timeout: Seconds to wait for readiness.

    Returns:
        The ready server; ``server.url`` is its HTTP API.
    """
    prometheus = require_binary("prometheus")
    if config_text is None:
        managers = []
        if alertmanager is not None:
            managers.append(
                alertmanager.address if isinstance(alertmanager, Server) else alertmanager
            )
        config_text = prometheus_config(
            targets,
            job=job,
            rule_files=rule_files,
            alertmanagers=managers,
            scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval,
        )

    def command(config: Path, chosen: int) -> list[str]:
        return [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{chosen}",
            "--log.level=warn",
        ]

    return _launch("prometheus", workdir, config_text, "prometheus.yml", command, port, timeout)


def start_alertmanager(
    workdir: Path,
    *,
    config_text: str = NULL_ALERTMANAGER_CONFIG,
    port: int | None = None,
    timeout: float = 60.0,
    secured: SecuredWeb | None = None,
) -> Server:
    """Start a single Alertmanager (clustering off) on 127.0.0.1, data under ``workdir``.

    Args:
        workdir: Directory for the config, the data (``data/``) and the log.
        config_text: Alertmanager config (default: one receiver that notifies nobody).
        port: Port to listen on (default: a free one).
        timeout: Seconds to wait for readiness.
        secured: Serve HTTPS and require basic auth (``--web.config.file``).

    Returns:
        The ready server; ``server.url`` is its HTTP API (``/api/v2/alerts``).
    """
    alertmanager = require_binary("alertmanager")
    flags: list[str] = []
    fields: dict[str, Any] = {}
    if secured is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        web = workdir / "web.yml"
        web.write_text(secured.web_config())
        flags.append(f"--web.config.file={web}")
        fields = {
            "scheme": "https",
            "cafile": secured.tls.ca,
            "headers": basic_auth(secured.username, secured.password),
        }

    def command(config: Path, chosen: int) -> list[str]:
        return [
            alertmanager,
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{chosen}",
            "--cluster.listen-address=",
            "--log.level=warn",
            *flags,
        ]

    return _launch(
        "alertmanager", workdir, config_text, "alertmanager.yml", command, port, timeout, **fields
    )


def scrape_exporter(metrics: Any) -> tuple[int, str]:
    """Serve a ``Metrics`` on a free port, fetch ``/metrics`` once, stop; (status, text)."""
    server = metrics.serve(0, "127.0.0.1")
    try:
        status, body = http_get(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()
    return status, body.decode()


def query(server: Server, promql: str) -> list[dict[str, Any]]:
    """Run an instant query on Prometheus; return the result vector."""
    answer = server.get_json("/api/v1/query", query=promql)
    return list(answer["data"]["result"])


def firing_alerts(server: Server, alertname: str | None = None) -> list[dict[str, Any]]:
    """Return Prometheus' firing alerts (optionally only those named ``alertname``)."""
    alerts = server.get_json("/api/v1/alerts")["data"]["alerts"]
    return [
        a
        for a in alerts
        if a["state"] == "firing" and alertname in (None, a["labels"].get("alertname"))
    ]


def alertmanager_alerts(server: Server, **labels: str) -> list[dict[str, Any]]:
    """Return the alerts Alertmanager holds, filtered by exact label values."""
    alerts = server.get_json("/api/v2/alerts")
    return [a for a in alerts if all(a["labels"].get(k) == v for k, v in labels.items())]
