"""Fixtures of the ops tests: a stub Alertmanager and metrics on a registry of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from aupwatch.streams.ops.metrics import Metrics
from tests.streams.ops.amstub import Stub


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())
