"""A healthy worker's start at the default log level: one ready line, nothing alarming."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.streams.harness import AUPWATCH, deployment, free_port

pytestmark = pytest.mark.integration


def test_worker_logs_one_ready_line_and_no_warnings(kafka_bootstrap: str, tmp_path: Path) -> None:
    port = free_port()
    with deployment(kafka_bootstrap, tmp_path) as dep:
        err = tmp_path / "worker.err"
        with err.open("wb") as out:
            proc = subprocess.Popen(
                [*AUPWATCH, "worker", "--metrics-port", str(port)],
                env=dep.env(AUPWATCH_WORKER__DATA_DIR=str(tmp_path / "data")),
                stdout=subprocess.DEVNULL,
                stderr=out,
                stdin=subprocess.DEVNULL,
            )
            dep.procs.append(proc)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "ready:" not in err.read_text():
                assert proc.poll() is None, err.read_text()
                time.sleep(0.2)
            time.sleep(5)  # start-up warnings (timers, rebalance sensors) come around here
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        lines = err.read_text().splitlines()
    ready = [line for line in lines if " ready: " in line]
    assert len(ready) == 1, lines
    assert re.search(
        rf"INFO aupwatch\.\S+: ready: group {dep.group}, input {dep.input_topic} "
        rf"partitions 0,1,2,3, .*metrics http://0\.0\.0\.0:{port}/metrics$",
        ready[0],
    ), ready
    assert [line for line in lines if " INFO aupwatch." not in line] == []
