"""Benchmark: a single-loop sketch of replay's detection, against replay on the same file.

Not the detectors: the sketch does each detector's usual case for each record, inline in
one loop (ownership, grants, keys' owners and last use, retry scopes and address links in
plain maps, expired ones dropped in time order), and nothing else: no occurrences, no
alerts, no waits for an owner, no forwards to the throttle stage, no timers of dormant
keys, no late records. Its alerts are not compared with anything; its time is a floor of
what replay's work costs in Python without the engine's structure (items, state keys, one
step call per key, timers, stages). Reading and decoding are replay's own.

Generates N records (default 1,000,000), then in each round times, by this process's CPU:
the bare read + ``orjson.loads`` loop of bench/replay.py, `aupwatch replay`, and the sketch
with the state shapes the detectors use (prefixed string keys, dict states, heaps) and
with lighter ones (tuple keys, list states, FIFO queues). Prints medians and ratios.
Usage: python bench/replay_floor.py [--records N] [--rounds R]
"""

from __future__ import annotations

import heapq
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from replay import arguments, bare, full, generated

from aupwatch.detectors.config import DetectorConfig
from aupwatch.schemas.decode import decode_line
from aupwatch.schemas.errors import BadRecord
from aupwatch.schemas.records import ApiCall, Authorization, DataAccess
from aupwatch.streams.replay.command import without_cycle_collector


class Sketch:
    """The maps of the sketch and the usual case of each detector for each record.

    Args:
        config: Windows and horizons (the defaults of replay).
        light: Tuple keys, list states and FIFO queues, instead of the detectors' prefixed
            string keys, dict states and heaps.
    """

    def __init__(self, config: DetectorConfig, light: bool) -> None:
        self.light = light
        self.scope_life = 2 * config.disrespect_window + 1
        self.retention = config.ownership_retention
        self.link_horizon = config.link_horizon
        self.roles = dict(config.roles)
        self.dormant: dict[Any, Any] = {}
        self.owners: dict[Any, Any] = {}
        self.links: dict[Any, Any] = {}
        self.ownership: dict[Any, Any] = {}
        self.scopes: dict[Any, Any] = {}
        self.grants: dict[Any, Any] = {}
        # never pruned (replay forgets ids after dedup_horizon): that only slows the sketch
        self.ids: dict[str, int] = {}
        # due, key: a deque when light (times come in order), else a heap
        self.queues: dict[str, Any] = {
            name: deque() if light else [] for name in ("scopes", "ownership", "links")
        }
        self.findings = 0

    def _due(self, name: str, due: int, key: Any) -> None:
        queue = self.queues[name]
        if self.light:
            queue.append((due, key))
        else:
            heapq.heappush(queue, (due, key))

    def _expire(self, ts: int) -> None:
        for name, queue in self.queues.items():
            if queue and queue[0][0] <= ts:
                self._drop(name, queue, ts)

    def _drop(self, name: str, queue: Any, ts: int) -> None:
        states = getattr(self, name)
        while queue and queue[0][0] <= ts:
            due, key = queue.popleft() if self.light else heapq.heappop(queue)
            state = states.get(key)
            if state is not None and self._last(name, state) < due:
                del states[key]

    def _last(self, name: str, state: Any) -> int:
        if name == "scopes":
            calls = state if self.light else state["c"]
            return int(calls[-1]) + self.scope_life
        if name == "ownership":
            return int(state[1] if self.light else state["at"]) + self.retention + 1
        return 0  # links: dropped at the horizon

    def record(self, rec: Any) -> None:
        """Applies one record (in event-time order)."""
        ts = rec.ts
        if rec.event_id in self.ids:
            return
        self.ids[rec.event_id] = ts
        self._expire(ts)
        kind = type(rec)
        if kind is ApiCall:
            self._call(rec, ts)
        elif kind is Authorization:
            grant = (rec.action, rec.roles, rec.expires_at)
            self.grants[self._key("U", rec.app_id, rec.seller_id)] = grant
        elif kind is DataAccess:
            for rid in rec.resource_ids:
                if self.ownership.get(self._key("O", rec.app_id, rid)) is None:
                    self.findings += 1
        else:
            self.dormant[self._key("D", rec.key_id)] = self._dormant_state(ts)

    def _key(self, prefix: str, *parts: str) -> Any:
        return parts if self.light else "|".join((prefix, *parts))

    def _dormant_state(self, ts: int) -> Any:
        if self.light:
            return [ts, ts]
        return {"clock": ts, "ok": None, "st": "active", "warned": False, "_t": None}

    def _call(self, rec: ApiCall, ts: int) -> None:
        light, key = self.light, self._key
        dev, app, seller, status = rec.developer_id, rec.app_id, rec.seller_id, rec.status
        ok = 200 <= status < 300
        state = self.dormant.get(dk := key("D", rec.key_id))
        if state is None:
            self.dormant[dk] = self._dormant_state(ts)
        elif ok:
            if light:
                state[0] = max(state[0], ts)
            else:
                state["ok"] = ts
                state["clock"] = max(state["clock"], ts)
        owner = self.owners.get(kk := key("K", rec.key_id))
        if owner is None:
            self.owners[kk] = (dev, app)
        elif owner != (dev, app):
            self.findings += 1
        devs = self.links.get(lk := key("L", rec.source_ip))
        if devs is None:
            self.links[lk] = {dev: ts} if light else {"devs": {dev: ts}, "_t": ts}
            self._due("links", ts + self.link_horizon + 1, lk)
        else:
            (devs if light else devs["devs"])[dev] = ts
        if ok:
            for rid in rec.resource_ids:
                self._own(key("O", app, rid), seller, ts)
        scope = self.scopes.get(rk := key("R", app, seller, rec.operation))
        if scope is None:
            self.scopes[rk] = [ts] if light else {"c": [ts], "_t": ts + self.scope_life}
            self._due("scopes", ts + self.scope_life, rk)
        else:
            (scope if light else scope["c"]).append(ts)
        grant = self.grants.get(key("U", app, seller))
        required = self.roles.get(rec.operation)
        if (
            grant is None
            or grant[0] != "grant"
            or (grant[2] is not None and grant[2] <= ts)
            or (required is not None and required not in grant[1])
        ):
            self.findings += 1

    def _own(self, ok: Any, seller: str, ts: int) -> None:
        state = self.ownership.get(ok)
        if state is None:
            due = ts + self.retention + 1
            self.ownership[ok] = (
                [seller, ts] if self.light else {"own": seller, "at": ts, "_t": due}
            )
            self._due("ownership", due, ok)
        elif self.light:
            if state[0] == seller:
                state[1] = ts
        elif state["own"] == seller:
            state["at"] = ts


def sketch(path: Path, light: bool) -> float:
    """CPU seconds of the sketch over the file, records ordered per 1,024 as replay steps.

    The cycle collector is off while it runs, as it is in replay.
    """
    with without_cycle_collector():
        return _sketch(path, light)


def ordered(path: Path) -> Iterator[Any]:
    """The file's valid records, in event-time order within each 1,024 (as replay steps)."""
    batch: list[Any] = []
    with path.open("rb") as f:
        for line in f:
            try:
                batch.append(decode_line(line))
            except BadRecord:
                continue
            if len(batch) == 1024:
                yield from sorted(batch, key=_order)
                batch = []
    yield from sorted(batch, key=_order)


def _order(rec: Any) -> tuple[int, str]:
    return rec.ts, rec.event_id


def _sketch(path: Path, light: bool) -> float:
    start = time.process_time()
    engine = Sketch(DetectorConfig(), light)
    for rec in ordered(path):
        engine.record(rec)
    del engine
    return time.process_time() - start


def inline(path: Path) -> float:
    """CPU seconds of the sketch written as one loop, the detectors' state shapes inline.

    The same work as ``Sketch`` with prefixed string keys, dict states and heaps, without a
    call per detector: what the single loop saves over the methods is the cost of the
    structure alone.
    """
    with without_cycle_collector():
        return _inline(path)


def _inline(path: Path) -> float:  # one loop on purpose: that is the measure
    start = time.process_time()
    config = DetectorConfig()
    life, retention, horizon = (
        2 * config.disrespect_window + 1,
        config.ownership_retention,
        config.link_horizon,
    )
    roles = dict(config.roles)
    dormant: dict[str, Any] = {}
    owners: dict[str, Any] = {}
    links: dict[str, Any] = {}
    ownership: dict[str, Any] = {}
    scopes: dict[str, Any] = {}
    grants: dict[str, Any] = {}
    ids: dict[str, int] = {}
    scope_q: list[Any] = []
    own_q: list[Any] = []
    link_q: list[Any] = []
    push, pop = heapq.heappush, heapq.heappop
    findings = 0

    for rec in ordered(path):
        ts, eid = rec.ts, rec.event_id
        if eid in ids:
            continue
        ids[eid] = ts
        while scope_q and scope_q[0][0] <= ts:
            due, k = pop(scope_q)
            if (st := scopes.get(k)) is not None and st["c"][-1] + life <= due:
                del scopes[k]
        while own_q and own_q[0][0] <= ts:
            due, k = pop(own_q)
            if (st := ownership.get(k)) is not None and st["at"] + retention < due:
                del ownership[k]
        while link_q and link_q[0][0] <= ts:
            links.pop(pop(link_q)[1], None)
        kind = type(rec)
        if kind is ApiCall:
            dev, app, seller, status = rec.developer_id, rec.app_id, rec.seller_id, rec.status
            ok = 200 <= status < 300
            if (st := dormant.get(k := "D|" + rec.key_id)) is None:
                dormant[k] = {"clock": ts, "ok": None, "st": "active", "warned": False}
            elif ok:
                st["ok"] = ts
                if ts > st["clock"]:
                    st["clock"] = ts
            if (st := owners.get(k := "K|" + rec.key_id)) is None:
                owners[k] = {"dev": dev, "app": app}
            elif st["dev"] != dev or st["app"] != app:
                findings += 1
            if (st := links.get(k := "L|" + rec.source_ip)) is None:
                links[k] = {"devs": {dev: ts}, "_t": ts + horizon + 1}
                push(link_q, (ts + horizon + 1, k))
            else:
                st["devs"][dev] = ts
            if ok:
                for rid in rec.resource_ids:
                    if (st := ownership.get(k := f"O|{app}|{rid}")) is None:
                        ownership[k] = {"own": seller, "at": ts, "_t": ts + retention + 1}
                        push(own_q, (ts + retention + 1, k))
                    elif st["own"] == seller:
                        st["at"] = ts
            if (st := scopes.get(k := f"R|{app}|{seller}|{rec.operation}")) is None:
                scopes[k] = {"c": [ts], "_t": ts + life}
                push(scope_q, (ts + life, k))
            else:
                st["c"].append(ts)
            grant = grants.get(f"U|{app}|{seller}")
            required = roles.get(rec.operation)
            if (
                grant is None
                or grant["a"] != "grant"
                or (grant["x"] is not None and grant["x"] <= ts)
                or (required is not None and required not in grant["roles"])
            ):
                findings += 1
        elif kind is Authorization:
            grant = {"a": rec.action, "roles": rec.roles, "x": rec.expires_at}
            grants[f"U|{rec.app_id}|{rec.seller_id}"] = grant
        elif kind is DataAccess:
            for rid in rec.resource_ids:
                if ownership.get(f"O|{rec.app_id}|{rid}") is None:
                    findings += 1
        else:
            dormant["D|" + rec.key_id] = {"clock": ts, "ok": None, "st": "active"}
    del dormant, owners, links, ownership, scopes, grants, ids
    return time.process_time() - start


def run() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory() as tmp:
        path, n = generated(args.records, tmp)
        took: dict[str, list[float]] = {
            "bare": [],
            "replay": [],
            "sketch": [],
            "light": [],
            "inline": [],
        }
        for r in range(args.rounds):
            took["bare"].append(bare(path)[1].cpu)
            took["replay"].append(full(path).cpu)
            took["sketch"].append(sketch(path, light=False))
            took["light"].append(sketch(path, light=True))
            took["inline"].append(inline(path))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in took.items()))
        med = {name: statistics.median(values) for name, values in took.items()}
        ref = med["bare"]
        print(f"{n:,} lines, median CPU of {args.rounds} rounds, us a record and ratio to bare:")
        for name, label in (
            ("bare", "bare read + orjson.loads"),
            ("replay", "aupwatch replay"),
            ("sketch", "sketch, the detectors' state shapes"),
            ("light", "sketch, tuple keys, lists, queues"),
            ("inline", "sketch in one loop, the same shapes"),
        ):
            secs = med[name]
            print(f"  {label:36s} {secs / n * 1e6:5.2f} us  ratio {ref / secs:6.1%}")


if __name__ == "__main__":
    sys.exit(run())
