"""The ``replay`` command line: options that only apply to --to-kafka, and the collector."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import pytest

from aupwatch.cli import main
from aupwatch.streams.generator.command import GeneratorConfig, generate, write
from aupwatch.streams.replay.replay import Replay


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--since", "2026-03-01T00:00:00Z"], "--since"),
        (["--until", "2026-03-01T00:00:00Z"], "--until"),
        (["--pace", "10"], "--pace"),
        (["--batch", "100"], "--batch"),
        (
            ["--bootstrap-servers", "h:1", "--input-topic", "t"],
            "--bootstrap-servers, --input-topic",
        ),
    ],
)
def test_kafka_options_without_to_kafka_are_a_usage_error(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", *args, "/dev/null"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip().splitlines() == [f"aupwatch: error: {named} only apply with --to-kafka"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], "--batch must be at least 1"),
        (["--pace", "0"], "--pace must be positive"),
        (["--since", "yesterday"], "--since/--until:"),
    ],
)
def test_bad_to_kafka_values_are_refused_before_connecting(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # the bootstrap address is unroutable: reaching Kafka would hang, not fail fast
    code = main(["replay", "--to-kafka", "--bootstrap-servers", "192.0.2.1:9", *args, "/dev/null"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_help_lists_every_replay_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = capsys.readouterr().out
    for option in ("--alerts", "--dead-letters", "--upserts", "--to-kafka", "--batch", "--pace"):
        assert option in text


def test_every_subcommand_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("replay", "generate", "worker", "alerts"):
        assert command in text


def test_replay_runs_without_the_cycle_collector_and_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    feed_file = Replay.feed_file

    def spy(self: Replay, path: str, progress: Any = None) -> None:
        seen.append(gc.isenabled())
        feed_file(self, path, progress)

    monkeypatch.setattr(Replay, "feed_file", spy)
    logs = tmp_path / "logs.jsonl"
    write(generate(GeneratorConfig(seed=3, records=500)), logs)
    assert gc.isenabled()
    assert main(["replay", str(logs), "--alerts", os.devnull, "--quiet"]) == 0
    assert seen == [False]
    assert gc.isenabled()


def test_replay_leaves_no_cyclic_garbage(tmp_path: Path) -> None:
    # what the collector would have found, had it run: replay relies on there being none
    def garbage(records: int) -> int:
        logs = tmp_path / f"logs-{records}.jsonl"
        gen = GeneratorConfig(
            seed=3, records=records, duplicate_rate=0.01, malformed_rate=0.01, shuffle_seconds=20
        )
        write(generate(gen), logs)
        gc.collect()
        gc.disable()
        try:
            args = ["replay", str(logs), "--alerts", os.devnull, "--dead-letters", os.devnull]
            assert main([*args, "--quiet"]) == 0
            return gc.collect()
        finally:
            gc.enable()

    garbage(1_000)  # the first run's imports and caches
    assert garbage(20_000) < 20
