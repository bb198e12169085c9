"""Seen event ids written to a changelog in chunks, and rebuilt from it (pure logic)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from aupwatch.streams.worker.seen_log import PREFIX, SeenLog

CHUNK = 4


def owner(key: str) -> int:
    return 1 if key.startswith("X") else 0


def ids(lo: int, hi: int) -> dict[str, int]:
    return {f"e{i}": i for i in range(lo, hi)}


def entry(seen: dict[str, int], state: Any = None) -> list[Any]:
    return [seen, state, 64, 1000]


def write(log: SeenLog, changelog: dict[str, Any], key: str, e: Any, cut: int = -1) -> int:
    """Applies the records of one checkpoint (the first ``cut`` only, if given)."""
    records = list(log.records(key, e))
    for k, v in records[: len(records) if cut < 0 else cut]:
        if v is None:
            changelog.pop(k, None)
        else:
            changelog[k] = orjson.loads(orjson.dumps(v))
    return len(records)


def restored(changelog: dict[str, Any], partition: int = 0) -> tuple[dict[str, Any], SeenLog]:
    data = {k: orjson.loads(orjson.dumps(v)) for k, v in changelog.items()}
    log = SeenLog(CHUNK)
    log.restore(data, partition, owner)
    return data, log


def test_round_trip() -> None:
    log, changelog = SeenLog(CHUNK), {}
    live = entry(ids(0, 10), {"n": 1})
    write(log, changelog, "K", live)
    assert len([k for k in changelog if k.startswith(PREFIX)]) == 3
    data, _ = restored(changelog)
    assert data == {"K": live}


def test_appends_rewrite_only_the_last_chunks() -> None:
    log, changelog = SeenLog(CHUNK), {}
    live = entry(ids(0, 10))
    write(log, changelog, "K", live)
    live[0].update(ids(10, 13))
    # chunk 2 (ids 8..11), chunk 3 (id 12), the main entry
    assert write(log, changelog, "K", live) == 3
    assert restored(changelog)[0] == {"K": live}


def test_a_prune_starts_a_new_epoch_and_deletes_the_old() -> None:
    log, changelog = SeenLog(CHUNK), {}
    live = entry(ids(0, 10))
    write(log, changelog, "K", live)
    live[0] = {k: v for k, v in live[0].items() if v not in (2, 9)} | ids(10, 12)
    write(log, changelog, "K", live)
    assert sorted(k for k in changelog if k.startswith(PREFIX)) == [
        f"{PREFIX}K\x1e1\x1e{i}" for i in range(3)
    ]
    assert restored(changelog)[0] == {"K": live}


@pytest.mark.parametrize("cut", range(6))
def test_a_checkpoint_cut_short_restores_the_last_whole_one(cut: int) -> None:
    for change in ("append", "prune"):
        log, changelog = SeenLog(CHUNK), {}
        live = entry(ids(0, 10))
        write(log, changelog, "K", live)
        before = orjson.loads(orjson.dumps(live))
        if change == "append":
            live[0].update(ids(10, 17))
        else:
            live[0] = {k: v for k, v in live[0].items() if v % 3} | ids(10, 17)
        total = write(log, changelog, "K", live, cut)
        data, again = restored(changelog)
        main_written = cut < 0 or cut > total - (3 if change == "prune" else 0) - 1
        assert data == {"K": live if main_written else before}, (change, cut)
        # whatever a cut left behind is deleted at the next checkpoint
        for k in again.take_stale(0):
            changelog.pop(k)
        write(again, changelog, "K", live)
        assert restored(changelog)[0] == {"K": live}, (change, cut)


def test_a_deleted_key_leaves_no_chunk() -> None:
    log, changelog = SeenLog(CHUNK), {}
    write(log, changelog, "K", entry(ids(0, 10)))
    write(log, changelog, "K", None)
    assert changelog == {}


def test_orphan_chunks_are_dropped_and_queued_for_deletion() -> None:
    changelog = {f"{PREFIX}K\x1e0\x1e0": ids(0, 4), f"{PREFIX}X\x1e0\x1e0": ids(0, 4)}
    data, log = restored(changelog)
    assert data == {f"{PREFIX}X\x1e0\x1e0": ids(0, 4)}  # partition 1's: not ours to judge
    assert log.take_stale(0) == [f"{PREFIX}K\x1e0\x1e0"]


def test_an_entry_in_the_old_whole_form_is_kept_then_chunked() -> None:
    old = entry(ids(0, 6), {"n": 2})
    data, log = restored({"K": old})
    assert data == {"K": old}
    changelog: dict[str, Any] = {}
    write(log, changelog, "K", data["K"])
    assert changelog["K"] == [{}, {"n": 2}, 64, 1000, 0, 6]
    assert restored(changelog)[0] == {"K": old}


def test_forget_makes_the_next_write_whole() -> None:
    log, changelog = SeenLog(CHUNK), {}
    live = entry(ids(0, 10))
    write(log, changelog, "K", live)
    log.forget(["K"])
    assert write(log, changelog, "K", live) == 3 + 1  # every chunk again, the main entry
    assert restored(changelog)[0] == {"K": live}


def test_an_entry_without_ids_is_written_alone_and_leaves_no_bookkeeping() -> None:
    log, changelog = SeenLog(CHUNK), {}
    live = entry({}, {"n": 1})
    assert write(log, changelog, "K", live) == 1
    assert changelog == {"K": [{}, {"n": 1}, 64, 1000, 0, 0]}
    assert log.written == {}
    # ids remembered later (a later stage's key) go to chunks as for any new key
    live[0].update(ids(0, 5))
    write(log, changelog, "K", live)
    assert log.written["K"][:2] == (0, 5)
    assert restored(changelog)[0] == {"K": live}


def test_a_restored_entry_without_ids_leaves_no_bookkeeping() -> None:
    log, changelog = SeenLog(CHUNK), {}
    write(log, changelog, "K", entry(ids(0, 5), {"n": 1}))
    gone = entry({}, {"n": 2})  # a prune emptied it: a new epoch that covers no id
    write(log, changelog, "K", gone)
    write(log, changelog, "J", entry({}, {"n": 3}))
    changelog[f"{PREFIX}J\x1e0\x1e0"] = ids(0, 2)  # a chunk no main entry covers
    data, again = restored(changelog)
    assert data == {"K": gone, "J": entry({}, {"n": 3})}
    assert again.written == {}
    assert again.take_stale(0) == [f"{PREFIX}J\x1e0\x1e0"]
    # ids remembered after the restart are chunked and restored like any others
    data["K"][0].update(ids(7, 13))
    write(again, changelog, "K", data["K"])
    assert restored(changelog)[0]["K"] == data["K"]
