"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from tests.kafka_broker import ensure_broker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Address ("127.0.0.1:PORT") of a running broker: started if needed, never stopped.

    Left running on purpose: the next run (or developer) then starts at once.
    """
    return ensure_broker()
