"""Fixtures for stream-processing tests that run against the project's local Kafka broker.

The broker (deploy/kafka/kafka.sh) is started on first use and deliberately left running when
the session ends: starting the JVM and the KRaft quorum costs seconds on every run, while a
running broker makes the next `pytest` (or the next developer's run in this checkout) start at
once. Tests isolate themselves with uniquely named topics, groups and transactional ids instead
of a fresh broker. Stop it with `bash deploy/kafka/kafka.sh stop`; wipe its data with `reset`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import pytest

from tests.kafka_broker import create_topic, delete_topic, unique_name


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; repeated here so this directory works on its own.
    config.addinivalue_line("markers", "integration: needs services started by the project")


TopicFactory = Callable[..., str]


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> Iterator[TopicFactory]:
    """Create uniquely named topics: ``topic_factory("prefix", partitions=4, config=None)``.

    Every topic made through it is deleted when the test ends.
    """
    created: list[str] = []

    def make(
        prefix: str = "test", partitions: int = 4, config: Mapping[str, str] | None = None
    ) -> str:
        name = create_topic(kafka_bootstrap, unique_name(prefix), partitions, config)
        created.append(name)
        return name

    yield make
    for name in created:
        delete_topic(kafka_bootstrap, name)
