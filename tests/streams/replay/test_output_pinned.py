"""Replay output pinned by checksum: refactorings must not change a byte of it.

The checksums were taken before the code moved under the ``aupwatch`` namespace. A change
that is meant to alter alerts (a new detector, a new rule) updates them in the same commit
and says why.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import orjson
import pytest

from aupwatch.cli import main
from aupwatch.streams.generator.command import GeneratorConfig, generate, write

INPUT_SHA256 = "c7aacad0b69dd211636743144813734ae04bc60d40f26d87fcb747aa2112bb25"
ALERTS_SHA256 = "b64a77dfd77e6a69f72ad1af5a5b4ada105631bb34228386782175996a087743"
# dead letters name their source file; the hash is over them with ``source`` removed
DEAD_SHA256 = "e6a4b2d2dd3ce9fc059196fddba39fa36667cc39bf57bfe0d6c116ec272ac662"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dead_without_source(path: Path) -> bytes:
    out = []
    for line in path.read_bytes().splitlines():
        letter = orjson.loads(line)
        letter.pop("source")
        out.append(orjson.dumps(letter))
    return b"\n".join(out)


@pytest.mark.slow
def test_replay_of_generated_200k_is_byte_identical(tmp_path: Path) -> None:
    logs, alerts, dead = tmp_path / "g.jsonl.gz", tmp_path / "a.jsonl", tmp_path / "d.jsonl"
    write(generate(GeneratorConfig(seed=7, records=200_000)), logs, tmp_path / "truth.jsonl")
    with gzip.open(logs) as f:
        assert _sha(f.read()) == INPUT_SHA256
    code = main(
        ["replay", str(logs), "--alerts", str(alerts), "--dead-letters", str(dead), "--quiet"]
    )
    assert code == 0
    assert _sha(alerts.read_bytes()) == ALERTS_SHA256
    assert _sha(_dead_without_source(dead)) == DEAD_SHA256
