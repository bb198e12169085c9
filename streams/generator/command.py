"""Seeded synthetic API-access logs with a ground-truth file of the alerts they must raise.

``generate(GeneratorConfig(...))`` returns JSON Lines (shuffled within ``shuffle_seconds``
of event time, with re-delivered duplicates and malformed lines mixed in) and the truth:
one ``{"detector", "reason", "subject"}`` per alert that the detectors emit under
docs/semantics.md with the default configuration (deploy/aupwatch.toml), and a second
truth for the tuned configuration of ``generator_tuned`` (``truth_tuned``: user-agent
linking, the injected proxy network and SDK agent ignored, exceptions; the alerts those
exceptions suppress are ``suppressed_tuned``). The input does not depend on which truth is
wanted. The same seed gives the same bytes; nothing depends on the wall clock.

The bulk is ordinary traffic that raises nothing (see ``generator_world``); breaches of
every detector and reason and hard negatives are injected on subjects of their own (see
``generator_inject``). Keep ``shuffle_seconds`` below the detectors' allowed lateness
(30 s): later records may be judged differently from the truth.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import orjson

from aupwatch.streams.generator.background import background
from aupwatch.streams.generator.entities import parse_rfc3339_ms
from aupwatch.streams.generator.inject import LATE_RECORDS, Injector
from aupwatch.streams.generator.world import World

__all__ = ["Generated", "GeneratorConfig", "generate", "register", "run", "write"]

MALFORMED_KINDS = (
    "invalid_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "bad_timestamp",
    "unknown_kind",
    "invalid_utf8",
)
_REQUIRED = {
    "api_call": (
        "region",
        "developer_id",
        "app_id",
        "key_id",
        "seller_id",
        "operation",
        "status",
        "source_ip",
    ),
    "authorization": ("app_id", "seller_id", "action"),
    "data_access": ("app_id", "resource_ids", "viewer_type", "viewer_id"),
    "key_event": ("key_id", "developer_id", "action"),
}
_WRONG = {
    "status": "200",
    "seller_id": 40213,
    "resource_ids": "111-0000000-0000000",
    "region": ["NA"],
    "viewer_id": None,
    "developer_id": 17,
    "app_id": {"id": 1},
}
_BAD_TS = (
    "2026-13-45T25:61:00Z",
    "yesterday",
    "1767225600",
    "2026-02-30 10:00:00",
    "2026-03-01T10:00:00",
    "",
)


@dataclass
class GeneratorConfig:
    """What to generate; every field has a CLI option of ``aupwatch generate``."""

    seed: int = 1
    records: int = 10_000
    days: float = 120
    sellers: int = 200
    developers: int = 60
    start: str = "2026-01-01T00:00:00Z"
    malformed_rate: float = 0.001
    duplicate_rate: float = 0.002
    shuffle_seconds: float = 20.0
    breaches: bool = True


@dataclass
class Generated:
    """Output of ``generate``: lines in file order, expected alerts, counts, injected cases."""

    lines: list[bytes]
    truth: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    truth_tuned: list[dict[str, Any]] = field(default_factory=list)
    suppressed_tuned: list[dict[str, Any]] = field(default_factory=list)
    tuned_config: str = ""


def _check(cfg: GeneratorConfig) -> None:
    if cfg.records < 1 or cfg.days <= 0 or cfg.shuffle_seconds < 0:
        raise ValueError("records and days must be positive, shuffle_seconds >= 0")
    if not (0 <= cfg.malformed_rate < 0.5 and 0 <= cfg.duplicate_rate < 0.5):
        raise ValueError("malformed_rate and duplicate_rate must be in [0, 0.5)")
    if cfg.sellers < 1 or cfg.developers < 1:
        raise ValueError("need at least one seller and one developer")
    if cfg.breaches and (cfg.sellers < 40 or cfg.developers < 8 or cfg.days < 30):
        raise ValueError("injected breaches need sellers >= 40, developers >= 8, days >= 30")


def generate(cfg: GeneratorConfig) -> Generated:
    """Generate the log lines and the ground truth for ``cfg`` (deterministic per seed)."""
    _check(cfg)
    rng = Random(cfg.seed)
    n_dup = round(cfg.records * cfg.duplicate_rate)
    n_bad = round(cfg.records * cfg.malformed_rate)
    target = max(0, cfg.records - n_dup - n_bad)
    world = World(cfg, rng)
    world.build(target)
    n_setup = len(world.lines)
    inj = Injector(world)
    if cfg.breaches:
        inj.run()
    bg_lo = len(world.lines)
    background(world, target - LATE_RECORDS if cfg.breaches else target)
    bg_hi = len(world.lines)
    if cfg.breaches:
        inj.after_background()
    truth = inj.finish(world.max_ts) if cfg.breaches else []
    truth_tuned = inj.tuned_truth() if cfg.breaches else []
    n_valid = len(world.lines)

    # duplicates: byte-identical re-deliveries of any valid record, within the shuffle
    for idx in rng.sample(range(n_valid), min(n_dup, n_valid)):
        line = world.lines[idx]
        world.put(_ts_of(line), line)
    # malformed lines, each derived from an ordinary background record (never a breach's)
    pool = range(bg_lo, bg_hi) if bg_hi > bg_lo else range(n_valid)
    bad_counts = dict.fromkeys(MALFORMED_KINDS, 0)
    for n, idx in enumerate(sorted(rng.sample(pool, min(n_bad, len(pool))))):
        kind = (
            MALFORMED_KINDS[n % len(MALFORMED_KINDS)]
            if n < len(MALFORMED_KINDS)
            else rng.choice(MALFORMED_KINDS)
        )
        line, ts = _malform(rng, world.lines[idx], kind, f"m{n + 1}")
        bad_counts[kind] += 1
        world.put(ts, line)

    mult = 1 << max(1, len(world.lines).bit_length())
    order = sorted(k * mult + i for i, k in enumerate(world.keys))
    src = world.lines
    lines = [src[v % mult] for v in order]
    truth.sort(key=_truth_key)
    truth_tuned.sort(key=_truth_key)
    suppressed = sorted(inj.excepted, key=_truth_key) if cfg.breaches else []
    stats = {
        "lines": len(lines),
        "records": n_valid,
        "duplicates": min(n_dup, n_valid),
        "malformed": sum(bad_counts.values()),
        "malformed_kinds": bad_counts,
        "setup_records": n_setup,
        "injected_records": bg_lo - n_setup + len(world.lines) - bg_hi,
        "background_records": bg_hi - bg_lo,
        "alerts": len(truth),
        "first_ts": world.fmt(world.start),
        "max_ts": world.fmt(world.max_ts),
    }
    return Generated(
        lines=lines,
        truth=truth,
        stats=stats,
        cases=inj.cases,
        truth_tuned=truth_tuned,
        suppressed_tuned=suppressed,
        tuned_config=inj.tuned_config(),
    )


def _ts_of(line: bytes) -> int:
    return int(parse_rfc3339_ms(orjson.loads(line)["ts"]))


def _malform(rng: Random, line: bytes, kind: str, eid: str) -> tuple[bytes, int]:
    """A malformed variant of ``line`` (new event id) and the event time to place it at."""
    rec = orjson.loads(line)
    ts = _ts_of(line)
    rec["event_id"] = eid
    if kind == "invalid_json":
        raw = orjson.dumps(rec)
        return raw[: rng.randint(10, len(raw) - 2)], ts
    if kind == "not_object":
        return orjson.dumps(
            rng.choice(([eid, rec["kind"], rec["ts"]], rec["kind"], 42, None, True))
        ), ts
    if kind == "missing_field":
        del rec[rng.choice(("event_id", "kind", "ts") + _REQUIRED[rec["kind"]])]
    elif kind == "wrong_type":
        name = rng.choice([f for f in _REQUIRED[rec["kind"]] if f in _WRONG])
        rec[name] = _WRONG[name]
    elif kind == "bad_timestamp":
        rec["ts"] = rng.choice(_BAD_TS)
    elif kind == "unknown_kind":
        rec["kind"] = rng.choice(("billing_event", "API_CALL", "apiCall", "session"))
    elif kind == "invalid_utf8":
        raw = orjson.dumps(rec)
        bad = rng.choice((b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"))
        return raw.replace(b'"%s"' % eid.encode(), b'"%s%s"' % (eid.encode(), bad), 1), ts
    return orjson.dumps(rec), ts


def _truth_key(alert: dict[str, Any]) -> tuple[str, str, bytes]:
    return (
        alert["detector"],
        alert["reason"],
        orjson.dumps(alert["subject"], option=orjson.OPT_SORT_KEYS),
    )


def _open_out(path: str | Path) -> Any:
    return gzip.open(path, "wb", compresslevel=6) if str(path).endswith(".gz") else open(path, "wb")


def write(
    gen: Generated,
    out_path: str | Path,
    truth_path: str | Path | None = None,
    tuned: bool = False,
) -> None:
    """Write the lines (gzip when the name ends in .gz) and the truth as sorted JSON Lines.

    Args:
        gen: What ``generate`` returned.
        out_path: The log file.
        truth_path: The truth file, or None.
        tuned: Write the truth under the tuned configuration instead of the defaults.
    """
    with _open_out(out_path) as fh:
        chunk = 50_000
        for i in range(0, len(gen.lines), chunk):
            part = gen.lines[i : i + chunk]
            fh.write(b"\n".join(part) + b"\n")
    if truth_path is not None:
        chosen = gen.truth_tuned if tuned else gen.truth
        rows = sorted(orjson.dumps(t, option=orjson.OPT_SORT_KEYS) for t in chosen)
        with _open_out(truth_path) as fh:
            fh.write(b"".join(r + b"\n" for r in rows))


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``generate`` subcommand to an argparse subparsers object."""
    d = GeneratorConfig()
    p: argparse.ArgumentParser = subparsers.add_parser(
        "generate",
        help="write a seeded synthetic log and its expected alerts",
        description="Write a seeded synthetic API-access log (JSON Lines, .gz by suffix) "
        "and, with --truth, the alerts the detectors must raise on it.",
    )
    p.add_argument("--out", required=True, metavar="PATH", help="log file (.jsonl or .jsonl.gz)")
    p.add_argument("--truth", metavar="PATH", help="expected alerts as JSON Lines")
    p.add_argument(
        "--tuned",
        action="store_true",
        help="write the truth under the tuned configuration (see --tuned-config: accounts "
        "also linked by user_agent, the injected proxy network and SDK user agent ignored, "
        "exceptions) instead of the defaults of deploy/aupwatch.toml; the log is the same",
    )
    p.add_argument(
        "--tuned-config",
        metavar="PATH",
        help="write the tuned configuration (TOML, for replay --config) to PATH",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--records", type=int, default=d.records, help="lines to write, about")
    p.add_argument("--days", type=float, default=d.days, help="event-time span in days")
    p.add_argument("--sellers", type=int, default=d.sellers)
    p.add_argument("--developers", type=int, default=d.developers)
    p.add_argument("--start", default=d.start, help="first event time (RFC 3339)")
    p.add_argument("--malformed-rate", type=float, default=d.malformed_rate)
    p.add_argument("--duplicate-rate", type=float, default=d.duplicate_rate)
    p.add_argument(
        "--shuffle-seconds",
        type=float,
        default=d.shuffle_seconds,
        help="largest event-time disorder of the output (keep below 30)",
    )
    p.add_argument(
        "--no-breaches",
        dest="breaches",
        action="store_false",
        help="ordinary traffic only (empty truth)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace, config: Any = None) -> int:
    """Run ``aupwatch generate``: write the files, print a one-line summary to stderr.

    ``config`` (the CLI's loaded configuration) is accepted and not used.
    """
    cfg = GeneratorConfig(
        seed=args.seed,
        records=args.records,
        days=args.days,
        sellers=args.sellers,
        developers=args.developers,
        start=args.start,
        malformed_rate=args.malformed_rate,
        duplicate_rate=args.duplicate_rate,
        shuffle_seconds=args.shuffle_seconds,
        breaches=args.breaches,
    )
    began = time.perf_counter()
    try:
        gen = generate(cfg)
    except ValueError as exc:
        print(f"aupwatch generate: {exc}", file=sys.stderr)
        return 2
    write(gen, args.out, args.truth, tuned=args.tuned)
    if args.tuned_config:
        Path(args.tuned_config).write_text(gen.tuned_config, encoding="utf-8")
    s = gen.stats
    print(
        f"generated {s['lines']} lines ({s['records']} records, {s['duplicates']} duplicates, "
        f"{s['malformed']} malformed) {s['first_ts']}..{s['max_ts']}, {s['alerts']} expected "
        f"alerts -> {args.out}{', ' + str(args.truth) if args.truth else ''} "
        f"in {time.perf_counter() - began:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="aupwatch")
    register(_parser.add_subparsers(dest="command", required=True))
    _args = _parser.parse_args()
    sys.exit(_args.func(_args))
