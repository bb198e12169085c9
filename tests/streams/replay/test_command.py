"""The ``replay`` command line: options that only apply to --to-kafka, and their checks."""

from __future__ import annotations

import pytest

from aupwatch.cli import main


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
