"""aupwatch against the secured broker (``kafka.sh start --secure``: SASL_SSL, SCRAM-SHA-512).

``worker``, ``replay --to-kafka`` and ``alerts`` get the alerts of offline replay over TLS
with SCRAM; a wrong password, an unknown CA and a plaintext client each end in one line
naming the cause and exit 2 within 30 s, as does a worker with no broker at its address.
The module starts the secured broker (a second, small JVM beside the plain one) and stops it
at the end unless it was already running.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests import certs
from tests.kafka_broker import (
    REPO_ROOT,
    SecureBroker,
    ensure_secure_broker,
    secure_broker_running,
    stop_secure_broker,
)
from tests.streams.harness import (
    AUPWATCH,
    Deployment,
    deployment,
    describe_difference,
    free_port,
    replay_alerts,
)

pytestmark = pytest.mark.integration

DATA = REPO_ROOT / "tests" / "streams" / "worker" / "data" / "group-start.jsonl.gz"
REFUSED_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def secure() -> Iterator[SecureBroker]:
    was_running = secure_broker_running()
    broker = ensure_secure_broker()
    yield broker
    if not was_running:
        stop_secure_broker()


@pytest.fixture
def secured_env(secure: SecureBroker, monkeypatch: pytest.MonkeyPatch) -> SecureBroker:
    """Every aupwatch command the test runs gets the secured broker's client settings."""
    for name, value in secure.env().items():
        monkeypatch.setenv(name, value)
    return secure


def alerts_of(dep: Deployment) -> dict[str, dict[str, Any]]:
    """The latest version of each alert, as ``aupwatch alerts`` prints them."""
    out = subprocess.run(
        [*AUPWATCH, "alerts", "--idle-exit", "2"],
        env=dep.env(),
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    alerts = [orjson.loads(line) for line in out.stdout.splitlines()]
    return {a["alert_id"]: a for a in alerts}


def test_worker_replay_and_alerts_over_sasl_ssl_match_replay(
    secured_env: SecureBroker, tmp_path: Path
) -> None:
    expected = replay_alerts(DATA)
    assert expected
    # its topics stay: the cleanup's admin client is a plain one, this broker takes SASL_SSL
    with deployment(
        secured_env.bootstrap, tmp_path, delete_topics=False, partitions=2, input_partitions=2
    ) as dep:
        dep.create_input()
        worker = dep.start_worker("secured")
        dep.send(DATA)
        deadline = time.monotonic() + 180
        got: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline and got != expected:
            assert worker.poll() is None, f"the worker exited:\n{dep.logs()}"
            time.sleep(2)
            got = alerts_of(dep)
        assert got == expected, f"{describe_difference(expected, got)}\n{dep.logs()}"


COMMANDS = {
    "worker": ["worker"],
    "replay --to-kafka": ["replay", "--to-kafka", str(DATA)],
    "alerts": ["alerts", "--idle-exit", "1"],
}


def run_refused(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, list[str], float]:
    """Runs a command that must be refused: (exit code, stderr lines, seconds taken)."""
    started = time.monotonic()
    proc = subprocess.run(
        [*AUPWATCH, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=REFUSED_WITHIN_S + 15,  # a hang fails here, with the output so far
        check=False,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return proc.returncode, lines, time.monotonic() - started


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("mistake", ["wrong password", "unknown CA", "plaintext client"])
def test_a_refused_client_ends_in_one_line_naming_the_cause(
    secured_env: SecureBroker, tmp_path: Path, command: str, mistake: str
) -> None:
    dep = Deployment(secured_env.bootstrap, tmp_path)
    wrong = {
        "wrong password": ("AUPWATCH_KAFKA__SASL_PASSWORD", "not-the-password"),
        "unknown CA": (
            "AUPWATCH_KAFKA__SSL_CAFILE",
            str(certs.make_certificates(tmp_path / "tls", "unknown").ca),
        ),
        "plaintext client": ("AUPWATCH_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT"),
    }[mistake]
    cause = {
        "wrong password": "SASL authentication of user 'aupwatch' (SCRAM-SHA-512) failed",
        "unknown CA": "presented a certificate that is not trusted",
        "plaintext client": "expects TLS but kafka.security_protocol is PLAINTEXT",
    }[mistake]
    env = dep.env(AUPWATCH_WORKER__DATA_DIR=str(tmp_path / "data"), **dict([wrong]))
    code, lines, took = run_refused(COMMANDS[command], env, tmp_path)
    assert code == 2 and len(lines) == 1, "\n".join(lines)
    assert lines[0].startswith("aupwatch: error: ") and cause in lines[0], lines[0]
    assert secured_env.bootstrap in lines[0]
    assert took < REFUSED_WITHIN_S


def test_a_worker_with_no_broker_at_its_address_says_so(
    secured_env: SecureBroker, tmp_path: Path
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    dep = Deployment(nowhere, tmp_path)
    env = dep.env(AUPWATCH_WORKER__DATA_DIR=str(tmp_path / "data"))
    code, lines, took = run_refused(COMMANDS["worker"], env, tmp_path)
    assert code == 2 and len(lines) == 1, "\n".join(lines)
    assert nowhere in lines[0] and "refused" in lines[0], lines[0]
    assert took < REFUSED_WITHIN_S
