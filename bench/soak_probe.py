"""Runs ``aupwatch`` with a thread that samples where the process's memory is (bench/soak.py).

Usage: python bench/soak_probe.py OUT.jsonl [aupwatch arguments...]

Every ``AUPWATCH_PROBE_SECONDS`` (default 20) one JSON line goes to OUT: RSS; Python's
object allocator (pymalloc: arenas held and bytes in live blocks, from
``sys._debugmallocstats``); the C allocator (glibc ``mallinfo2``: heap in use, free heap
kept, mmap'd blocks); the gc's tracked objects per generation. RSS far above pymalloc's
arenas plus glibc's in-use bytes is memory an allocator keeps; arenas far above live
blocks are pymalloc fragmentation; rising live blocks are objects the program keeps.
With ``AUPWATCH_PROBE_TRACEMALLOC=N`` (frames) the line also holds the 12 largest
allocation sites (slow: for short investigations only).
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

_STATS = re.compile(r"^# (arenas allocated current|bytes in allocated blocks)\s*=\s*([\d,]+)")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _pymalloc() -> dict[str, int]:
    """Arenas and live-block bytes of pymalloc (its stats go to fd 2: caught in a file)."""
    out: dict[str, int] = {}
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        try:
            os.dup2(f.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        for line in f.read().decode(errors="replace").splitlines():
            m = _STATS.match(line)
            if m:
                out[m.group(1)] = int(m.group(2).replace(",", ""))
    return {
        "py_arenas_mb": out.get("arenas allocated current", 0),  # arenas are 1 MiB
        "py_blocks_mb": out.get("bytes in allocated blocks", 0) >> 20,
    }


def _glibc() -> dict[str, int]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        mi = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {
        "c_used_mb": mi.uordblks >> 20,
        "c_free_mb": mi.fordblks >> 20,
        "c_mmap_mb": mi.hblkhd >> 20,
    }


def _rss_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) >> 10
    return 0


def sample(top: int) -> dict[str, Any]:
    """One probe line."""
    line: dict[str, Any] = {"t": time.time(), "rss_mb": _rss_mb()}
    line.update(_pymalloc())
    line.update(_glibc())
    line["gc"] = [len(gc.get_objects(g)) for g in range(3)]
    if top:
        import tracemalloc

        stats = tracemalloc.take_snapshot().statistics("lineno")[:12]
        line["top"] = [(str(s.traceback[0]), s.size >> 10, s.count) for s in stats]
    return line


def _loop(path: str, every: float, top: int) -> None:
    with open(path, "ab") as f:
        while True:
            time.sleep(every)
            f.write(orjson.dumps(sample(top)) + b"\n")
            f.flush()


def main() -> None:
    path = sys.argv[1]
    frames = int(os.environ.get("AUPWATCH_PROBE_TRACEMALLOC", "0"))
    if frames:
        import tracemalloc

        tracemalloc.start(frames)
    every = float(os.environ.get("AUPWATCH_PROBE_SECONDS", "20"))
    threading.Thread(target=_loop, args=(path, every, frames), daemon=True).start()
    from aupwatch.cli import main as aupwatch

    sys.exit(aupwatch(sys.argv[2:]))


if __name__ == "__main__":
    main()
