"""The built wheel: one top-level package, its data files, and a working install.

Builds from a copy of the working tree (the build writes build/ and *.egg-info beside its
sources), installs into a fresh venv (dependencies from the package index, fast from pip's
cache) and replays the bundled example from a directory outside the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import orjson
import pytest
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample.jsonl.gz"
# what a build never needs: environments, caches, local data
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def _clean_env() -> dict[str, str]:
    # nothing may leak the source tree into the fresh venv's imports
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=NOT_SOURCES)
    out = tmp / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
        env=_clean_env(),
    )
    (wheel,) = out.glob("aupwatch-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_installs_alone_and_replays_the_example(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(f"{dist_info}/METADATA").decode()
    assert {n.split("/")[0] for n in names} == {"aupwatch", dist_info}
    schemas = {n for n in names if n.startswith("aupwatch/schemas/json/")}
    assert "aupwatch/schemas/json/record.schema.json" in schemas
    assert {Path(n).name for n in schemas} >= {
        f"{kind}.schema.json"
        for kind in ("alert", "record", "api_call", "authorization", "data_access", "key_event")
    }
    (requires,) = [
        ln.split(":", 1)[1] for ln in metadata.splitlines() if ln.startswith("Requires-Python:")
    ]
    assert all(v in SpecifierSet(requires.strip()) for v in ("3.11", "3.12", "3.13"))

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
        env=_clean_env(),
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    run = subprocess.run(
        [str(bin_dir / "aupwatch"), "replay", str(SAMPLE), "--alerts", "alerts.jsonl"],
        cwd=outside,
        capture_output=True,
        timeout=120,
        env=_clean_env(),
    )
    assert run.returncode == 0, run.stderr.decode()
    alerts = [orjson.loads(x) for x in (outside / "alerts.jsonl").read_bytes().splitlines()]
    # the example's planted breaches, one alert each
    truth = (REPO / "examples" / "sample.truth.jsonl").read_bytes().splitlines()
    assert len(alerts) == len(truth) > 0 and f"alerts: {len(truth)} ".encode() in run.stderr
    # the layers are reachable only under the one namespace
    probe = (
        "import importlib.util as u; "
        "print([u.find_spec(m) is None for m in ('schemas', 'detectors', 'streams')])"
    )
    found = subprocess.run(
        [str(bin_dir / "python"), "-c", probe],
        cwd=outside,
        capture_output=True,
        check=True,
        env=_clean_env(),
    )
    assert found.stdout.strip() == b"[True, True, True]"
