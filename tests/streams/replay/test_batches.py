"""Replay reads a file in lists of lines: numbers and records stay right across lists."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from aupwatch.streams.config import load_config
from aupwatch.streams.replay import replay
from aupwatch.streams.replay.replay import Replay


def _dead_letter_lines(path: Path) -> tuple[list[int], int]:
    letters: list[dict[str, Any]] = []
    rep = Replay(load_config(None), on_alert=lambda a: None, on_dead_letter=letters.append)
    rep.feed_file(str(path))
    rep.finish()
    return [d["line"] for d in letters], rep.summary.records


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_line_numbers_run_on_across_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    # a list of about 100 bytes: a few lines each, so numbers cross many list boundaries
    monkeypatch.setattr(replay, "_BATCH_BYTES", 100)
    good = (
        b'{"schema_version":1,"event_id":"e%d","kind":"key_event","ts":"2026-01-01T00:00:0%dZ",'
        b'"developer_id":"d","app_id":"a","key_id":"k","action":"created"}\n'
    )
    lines = [good % (i, i % 10) if i % 7 else b"not json %d\n" % i for i in range(1, 200)]
    path = tmp_path / f"logs{suffix}"
    body = b"".join(lines)
    path.write_bytes(gzip.compress(body) if suffix.endswith(".gz") else body)
    numbers, records = _dead_letter_lines(path)
    assert numbers == [i for i in range(1, 200) if i % 7 == 0]
    assert records == 199 - len(numbers)
