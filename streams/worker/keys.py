"""The keys of a stage table that are not detector state, and which partition owns a key.

Detector state keys are ``<prefix><SEP>field...`` (``aupwatch.detectors.declare``). Keys
starting with ``RESERVED`` hold the worker's own bookkeeping and are skipped wherever
state is iterated: a shard's frontier, the state format, and chunks of remembered ids.
"""

from __future__ import annotations

import zlib

RESERVED = "\x00"
SEEN_PREFIX = RESERVED + "s"  # chunks of a key's remembered event ids (seen_log)
SEEN_SEP = "\x1e"  # separates key, epoch and chunk index in a chunk key
_IDS = RESERVED + "ids"

# Version of what a checkpoint writes; bump it when an entry's shape changes, and keep
# reading every older one (4: an ownership with one owner is flat, see detectors.disclosure,
# and a retry scope holds no list of throttled calls before its first; 3: the detect stage
# remembers ids per record, under ids_key; 2: entries with seen ids in chunks; 1: whole
# entries).
STATE_FORMAT = 4


def frontier_key(partition: int) -> str:
    """Table key of a shard's persisted watermark (written last in each checkpoint)."""
    return f"{RESERVED}wm{partition}"


def format_key(partition: int) -> str:
    """Table key of the state format a partition's changelog was written in."""
    return f"{RESERVED}fmt{partition}"


def ids_key(partition: int) -> str:
    """Table key of a detect partition's remembered record ids (an entry without state)."""
    return f"{_IDS}{partition}"


def owner(key: str, partitions: int) -> int:
    """The partition a table key belongs to: a state key's, or that of its ``ids_key``."""
    if key.startswith(_IDS):
        return int(key[len(_IDS) :])
    return partition_of(key, partitions)


def chunk_key(key: str, epoch: int, index: int) -> str:
    """Table key of one chunk of a key's seen ids."""
    return f"{SEEN_PREFIX}{key}{SEEN_SEP}{epoch}{SEEN_SEP}{index}"


def partition_of(key: str, partitions: int) -> int:
    """The partition of an internal topic (and its state changelog) that owns a state key."""
    return zlib.crc32(key.encode()) % partitions


def is_state(key: str) -> bool:
    """Whether a table key holds detector state (not bookkeeping)."""
    return key[0] != RESERVED
