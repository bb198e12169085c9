"""Replay at a terminal: a table to read; anywhere else the JSON Lines, unchanged."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from aupwatch.cli import main
from aupwatch.detectors.registry import SEVERITY
from aupwatch.streams.replay.table import HINT, compact_subject, render

SAMPLE = Path(__file__).resolve().parents[3] / "examples" / "sample.jsonl.gz"
# the example's planted breaches, one final alert each
ALERTS = len(SAMPLE.with_name("sample.truth.jsonl").read_bytes().splitlines())
VERSIONS = 201  # alert versions (upserts) the example's replay emits


def alert(severity: str, ts: str, summary: str = "s", **subject: Any) -> dict[str, Any]:
    return {
        "alert_id": f"{severity}-{ts}",
        "detector": "dormant_key",
        "reason": "dormant",
        "severity": severity,
        "ts": ts,
        "count": 3,
        "subject": subject or {"key_id": "k"},
        "summary": summary,
    }


def test_rows_sorted_by_severity_then_time() -> None:
    alerts = [
        alert("low", "2026-01-01T00:00:00Z", "a"),
        alert("critical", "2026-01-03T00:00:00Z", "b"),
        alert("high", "2026-01-02T00:00:00Z", "c"),
        alert("critical", "2026-01-02T00:00:00Z", "d"),
    ]
    lines = render(alerts, 200).splitlines()
    assert lines[0].split() == ["SEVERITY", "DETECTOR", "REASON", "SUBJECT", "COUNT", "SUMMARY"]
    assert [line.split()[-1] for line in lines[1:5]] == ["d", "b", "c", "a"]
    assert lines[-1] == HINT and "--alerts FILE" in HINT


def test_long_cells_are_clipped_to_the_width() -> None:
    long = alert("high", "2026-01-01T00:00:00Z", "x" * 300, key_id="k" * 100, dev="d")
    lines = render([long], 120).splitlines()
    assert len(lines[1]) == 120 and lines[1].endswith("...")
    assert "k" * 37 + "..." in lines[1]  # the subject at its widest (40)
    narrow = render([long], 90).splitlines()[1]
    # the subject gave up width first (19 left); the summary keeps its 30
    assert len(narrow) == 90 and "k" * 16 + "...  " in narrow and narrow.endswith("x" * 27 + "...")


def test_compact_subject_shortens_lists() -> None:
    subject = {"developer_ids": ["d1", "d2", "d3", "d4"], "region": "NA"}
    assert compact_subject(subject) == "d1,d2,+2 NA"


def test_no_alerts() -> None:
    assert render([], 100) == "No alerts.\n"


def test_injected_terminal_gets_the_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["replay", str(SAMPLE), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("SEVERITY") and lines[-1] == HINT
    assert len(lines) == 1 + ALERTS + 2  # header, one row per alert, blank, hint
    assert lines[1].startswith("critical") and lines[-3].startswith("low")


def test_upserts_stay_json_at_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["replay", str(SAMPLE), "--quiet", "--upserts"]) == 0
    lines = capsysbinary.readouterr().out.splitlines()
    assert len(lines) == VERSIONS and all(orjson.loads(x)["alert_id"] for x in lines)


def _run_on_pty(*args: str) -> tuple[bytes, bytes]:
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "150"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aupwatch.cli", *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    return out.replace(b"\r\n", b"\n"), err


def test_terminal_gets_a_table_and_pipe_gets_json(tmp_path: Path) -> None:
    out, err = _run_on_pty("replay", str(SAMPLE))
    lines = out.decode().splitlines()
    assert lines[0].split() == ["SEVERITY", "DETECTOR", "REASON", "SUBJECT", "COUNT", "SUMMARY"]
    assert lines[-1] == HINT and b"{" not in out
    rows = [line for line in lines[1:] if line.split()[:1] != [] and line != HINT]
    assert len(rows) == ALERTS
    assert {r.split()[0] for r in rows} == {"critical", "high", "medium", "low"}
    assert f"alerts: {ALERTS} ".encode() in err
    piped = subprocess.run(
        [sys.executable, "-m", "aupwatch.cli", "replay", str(SAMPLE), "--quiet"],
        capture_output=True,
        check=True,
    )
    truth = [
        orjson.loads(x) for x in SAMPLE.with_name("sample.truth.jsonl").read_bytes().splitlines()
    ]
    critical = sum(SEVERITY[t["detector"], t["reason"]] == "critical" for t in truth)
    got = [orjson.loads(x)["severity"] for x in piped.stdout.splitlines()]
    assert got.count("critical") == critical > 0
