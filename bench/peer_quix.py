"""The peer pipeline of bench/stream.py: Quix Streams on the same pre-filled topic.

One record per message: decode each value (JSON -> dict, Quix's own deserializer), one
group_by hop by app_id + seller_id (Quix repartitions through an internal topic), then a
stateful apply keeping a count and the last ts per key in Quix's RocksDB state. Quix's
defaults otherwise (changelog topics, at-least-once, commit every 5 s), as a user would run it.

Rate = records / (first record consumed -> the last one processed after the hop). Prints
one JSON line: {"records", "seconds", "rate", "peak_rss_mb"}. bench/stream.py runs it in
its own process (`run_peer`), so the peak RSS is the peer's alone. Needs the bench extra
(`pip install -e '.[bench]'`); quixstreams is not a runtime dependency of aupwatch.

Usage: python bench/peer_quix.py --bootstrap HOST:PORT --topic T --records N --state-dir D
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson


class PeerResult(NamedTuple):
    """What one peer run measured."""

    records: int
    seconds: float
    rate: float
    peak_rss_mb: float


class KeyState(Protocol):
    """The part of Quix's per-key State that `tally` uses."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


def group_key(value: dict[str, Any]) -> str:
    """The hop's key: app and seller (key and data events have no seller)."""
    return f"{value.get('app_id', '')}|{value.get('seller_id', '')}"


def tally(value: dict[str, Any], state: KeyState) -> dict[str, Any]:
    """Per-key state: how many records the key has had and the latest ts seen."""
    count = state.get("count", 0) + 1
    last = max(state.get("last_ts", ""), value.get("ts", ""))
    state.set("count", count)
    state.set("last_ts", last)
    return {"key_count": count, "last_ts": last}


@dataclass(slots=True)
class Progress:
    """First-consumed and last-processed times, and records processed after the hop."""

    target: int
    first: float = 0.0
    last: float = 0.0
    done: int = 0

    def consumed(self, now: float) -> None:
        if not self.first:
            self.first = now

    def processed(self, now: float) -> bool:
        """Counts one record past the hop; True once the target is reached."""
        self.done += 1
        self.last = now
        return self.done >= self.target

    def result(self, peak_rss_mb: float) -> PeerResult:
        seconds = self.last - self.first
        return PeerResult(self.done, seconds, self.done / seconds if seconds else 0.0, peak_rss_mb)


def parse_result(stdout: str) -> PeerResult:
    """The peer's result from its stdout (its last line; Quix may print before it)."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the Quix peer printed no result: {stdout[-500:]!r}")
    doc = orjson.loads(lines[-1])
    return PeerResult(doc["records"], doc["seconds"], doc["rate"], doc["peak_rss_mb"])


def run_peer(bootstrap: str, topic: str, records: int, state_dir: str) -> PeerResult:
    """Runs this module in a subprocess on ``topic`` and returns what it measured."""
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--records",
            str(records),
            "--state-dir",
            state_dir,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the Quix peer failed ({out.returncode}): {out.stderr[-2000:]}")
    return parse_result(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    args = ap.parse_args()
    from quixstreams import Application

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=f"quixpeer-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    progress = Progress(args.records)

    def after_hop(_value: dict[str, Any]) -> None:
        if progress.processed(time.perf_counter()):
            app.stop()

    sdf = app.dataframe(app.topic(args.topic, value_deserializer="json"))
    sdf = sdf.update(lambda _v: progress.consumed(time.perf_counter()))
    sdf = sdf.group_by(group_key, name="app_seller")
    sdf = sdf.apply(tally, stateful=True)
    sdf = sdf.update(after_hop)
    # a stall (60 s without a message) ends the run; collect=False keeps outputs out of memory
    app.run(sdf, timeout=60, collect=False)
    if progress.done < args.records:
        sys.exit(f"the Quix peer processed {progress.done} of {args.records} records")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(orjson.dumps(progress.result(rss)._asdict()).decode(), flush=True)


if __name__ == "__main__":
    main()
