"""Fixtures for the deployment tests (Prometheus rules, Alertmanager config, dashboard, k8s).

Tests marked ``integration`` run the real Prometheus/promtool/Alertmanager binaries. The
session fixture ``monitoring`` installs them with deploy/install-monitoring.sh when they are
missing (as root, e.g. in CI) and skips the test when that is impossible (not root).
"""

from __future__ import annotations

import pytest

from tests.deploy import servers


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; repeated here so this directory works on its own.
    config.addinivalue_line("markers", "integration: needs services started by the project")


@pytest.fixture(scope="session")
def monitoring() -> None:
    """Make sure prometheus, promtool and alertmanager are installed."""
    try:
        servers.ensure_monitoring()
    except servers.MonitoringUnavailable as exc:
        pytest.skip(str(exc))
