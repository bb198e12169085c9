"""The pure parts of the Quix peer of bench/stream.py (the peer itself needs a broker)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

PATH = Path(__file__).resolve().parents[2] / "bench" / "peer_quix.py"
spec = importlib.util.spec_from_file_location("peer_quix", PATH)
assert spec is not None and spec.loader is not None
peer_quix = importlib.util.module_from_spec(spec)
sys.modules["peer_quix"] = peer_quix  # the slotted dataclass looks its module up by name
spec.loader.exec_module(peer_quix)


class DictState:
    """Quix's per-key State reduced to what tally uses."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value


def test_group_key_is_app_and_seller_and_tolerates_no_seller() -> None:
    assert peer_quix.group_key({"app_id": "a1", "seller_id": "S9"}) == "a1|S9"
    assert peer_quix.group_key({"app_id": "a1", "kind": "key_event"}) == "a1|"
    assert peer_quix.group_key({"app_id": "a1", "seller_id": "S9"}) != peer_quix.group_key(
        {"app_id": "a1", "seller_id": "S8"}
    )


def test_tally_counts_per_key_and_keeps_the_latest_ts_out_of_order() -> None:
    state = DictState()
    stamps = ["2026-01-01T00:00:02Z", "2026-01-01T00:00:05Z", "2026-01-01T00:00:03Z"]
    outs = [peer_quix.tally({"ts": ts}, state) for ts in stamps]
    assert [o["key_count"] for o in outs] == [1, 2, 3]
    assert [o["last_ts"] for o in outs] == [stamps[0], stamps[1], stamps[1]]
    assert state.data == {"count": 3, "last_ts": stamps[1]}


def test_progress_keeps_the_first_time_and_stops_at_the_target() -> None:
    progress = peer_quix.Progress(target=3)
    progress.consumed(10.0)
    progress.consumed(11.0)
    assert [progress.processed(t) for t in (12.0, 13.0, 14.0)] == [False, False, True]
    result = progress.result(peak_rss_mb=120.5)
    assert result == peer_quix.PeerResult(3, 4.0, 0.75, 120.5)


def test_parse_result_takes_the_last_json_line_among_other_output() -> None:
    want = peer_quix.PeerResult(1000, 2.0, 500.0, 99.0)
    earlier = orjson.dumps(peer_quix.PeerResult(1, 1.0, 1.0, 1.0)._asdict()).decode()
    stdout = f"[quixstreams] starting\n{earlier}\n{orjson.dumps(want._asdict()).decode()}\n"
    assert peer_quix.parse_result(stdout) == want


def test_parse_result_without_a_result_line_raises() -> None:
    with pytest.raises(RuntimeError, match="no result"):
        peer_quix.parse_result("Traceback ...\nKafkaException\n")
