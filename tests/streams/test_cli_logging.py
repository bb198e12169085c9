"""Logging of the command line: aupwatch's own INFO lines, framework chatter kept out."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from aupwatch.cli import HARMLESS, HarmlessFilter
from aupwatch.streams.worker.faust_app import WorkerApp
from tests.kafka_broker import REPO_ROOT


def record(name: str, level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, (), None)


@pytest.mark.parametrize(
    ("name", "msg"),
    [
        ("faust.app.base", "[^Worker]: Missing sensor state for rebalance #1"),
        ("faust.app.base", "[^Worker]: Missing sensor state for rebalance end #1"),
        # the worker's app, a subclass: a start-up race in one CI run logged it so
        (
            "aupwatch.streams.worker.faust_app",
            "[^-WorkerApp]: Missing sensor state for rebalance #1",
        ),
        ("mode.timers", "Timer %s is overlapping (interval=%r runtime=%r)"),
        ("kafka.net.manager", "Bootstrap %s not ready; waiting %.2f secs"),
    ],
)
def test_known_harmless_warnings_are_debug(name: str, msg: str) -> None:
    rec = record(name, logging.WARNING, msg)
    assert not HarmlessFilter(show=False).filter(rec)
    shown = record(name, logging.WARNING, msg)
    assert HarmlessFilter(show=True).filter(shown)
    assert (shown.levelno, shown.levelname) == (logging.DEBUG, "DEBUG")


@pytest.mark.parametrize(
    ("name", "level", "msg"),
    [
        ("faust.app.base", logging.WARNING, "[^Worker]: Recovery rebalancing again"),
        ("aiokafka.conn", logging.ERROR, "Unable connect to node with id 1"),
        ("kafka.producer.sender", logging.WARNING, "Got error produce response"),
        ("aupwatch.streams.worker.worker", logging.INFO, "recovered detect state: 0 keys"),
        ("aupwatch.streams.worker.faust_app", logging.WARNING, "[^---StateTable]: Crashed"),
    ],
)
def test_other_messages_pass(name: str, level: int, msg: str) -> None:
    rec = record(name, level, msg)
    assert HarmlessFilter(show=False).filter(rec)
    assert rec.levelno == level


def test_faust_service_info_under_an_aupwatch_module_is_framework_chatter() -> None:
    msg = "[^---StateTable: detect-state]: Starting..."
    name = "aupwatch.streams.worker.faust_app"
    assert not HarmlessFilter(show=False).filter(record(name, logging.INFO, msg))
    assert HarmlessFilter(show=True).filter(record(name, logging.INFO, msg))


SCRIPT = """
import logging, sys
from aupwatch.cli import configure_logging
configure_logging(sys.argv[1])
logging.getLogger("aupwatch.streams.worker.commands").info("ready")
logging.getLogger("aupwatch.streams.worker.commands").debug("aupwatch detail")
logging.getLogger("faust.transport").info("faust info")
logging.getLogger("faust.transport").warning("faust warning")
logging.getLogger("faust.app.base").warning("[^Worker]: Missing sensor state for rebalance #1")
logging.getLogger("mode.timers").warning("Timer Worker._tick is overlapping")
logging.getLogger("kafka.net.manager").error("Connection failed")
"""


def logged(level: str) -> list[str]:
    """The messages (level name and text) logged by SCRIPT at ``level``."""
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, level],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    # "date time LEVEL logger: message" -> "LEVEL message"
    return [
        f"{line.split()[2]} {line.split(': ', 1)[1]}" for line in proc.stderr.decode().splitlines()
    ]


def test_default_level_shows_our_info_and_framework_warnings_only() -> None:
    assert logged("INFO") == ["INFO ready", "WARNING faust warning"]


def test_warning_level_hides_our_info() -> None:
    assert logged("WARNING") == ["WARNING faust warning"]


def test_debug_level_shows_everything_with_harmless_warnings_as_debug() -> None:
    assert logged("DEBUG") == [
        "INFO ready",
        "DEBUG aupwatch detail",
        "INFO faust info",
        "WARNING faust warning",
        "DEBUG [^Worker]: Missing sensor state for rebalance #1",
        "DEBUG Timer Worker._tick is overlapping",
        "DEBUG Connection failed",
    ]


def test_the_worker_apps_own_logger_is_the_one_filtered() -> None:
    assert (WorkerApp.logger.name, "Missing sensor state for rebalance") in HARMLESS
