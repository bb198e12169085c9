"""The names of the worker's topics: its own internal ones and the tables' changelogs."""

from __future__ import annotations

from aupwatch.streams.config import AppConfig

STAGES = ("detect", "throttle", "alerts")


def topic_names(config: AppConfig) -> dict[str, str]:
    """Names of every topic the worker reads or writes, by role."""
    g = config.kafka.group_id
    return {
        "input": config.kafka.input_topic,
        "detect": f"{g}-detect",
        "throttle": f"{g}-throttle",
        "alerts-in": f"{g}-occurrences",
        "alerts": config.kafka.alerts_topic,
        "dead": config.kafka.dead_letter_topic,
    }


def changelog_names(config: AppConfig) -> tuple[str, ...]:
    """Names of the stage tables' changelog topics (Faust's ``<app>-<table>-changelog``)."""
    return tuple(f"{config.kafka.group_id}-{stage}-state-changelog" for stage in STAGES)
