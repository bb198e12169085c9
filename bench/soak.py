"""Soak benchmark: one worker under steady live traffic, with months of event time passing.

One ``aupwatch worker`` runs against the local broker (deploy/kafka/kafka.sh start first)
on topics and a group of its own. This script produces ``--rate`` records/s for
``--minutes`` minutes from a streaming generator whose event time runs ``--speedup`` times
faster than the wall clock (default 14,400: four hours a second, 300 days in 30 minutes),
so every horizon of the detectors (90 days at most) passes several times. The population
churns: sellers, apps, keys, addresses and resources come and go, so old keys stop
appearing and state is only bounded if every detector forgets what its horizon allows.
About one call in 250 has no grant, so alerts keep being opened (latency is measured on
them). Records go ``--per-message`` to a Kafka message (10 by default, as a log shipper
batches lines): on a shared 2-core machine one record per message costs the producer and
the worker's consumer more CPU than the detectors.

Sampled every minute: the worker's RSS, its state keys per detector
(``aupwatch_detector_state_keys``, the mean of a look every 5 s over the minute), the mean
and largest checkpoint duration (``aupwatch_checkpoint_seconds``), the p99 of
``aupwatch_processing_latency_seconds`` (append of a record to the append of its alert)
over that minute, the consumer lag and the load average of the machine. At the end a
verdict against the targets: over the last 20 minutes RSS grows less than 10 %, state keys
stay within 10 % of their level at the start of that span, and p99 latency stays at most
allowed_lateness + 1 s (31 s).

State keys are judged in two groups, printed at the start of the judged span and at the
end: the states bounded by a horizon, and the states the rules keep forever under the
defaults (latest authorizations, key life cycles, key owners: they grow with the pairs and
keys ever seen, so under churn they grow with event time; ``--retention`` sets the opt-in
``authorization_retention`` and ``key_retention`` and then judges them like the others).

The broker is ``AUPWATCH_KAFKA_BOOTSTRAP``, else 127.0.0.1:``AUPWATCH_KAFKA_PORT``, else
127.0.0.1:19092. ``--probe`` runs the worker through bench/soak_probe.py and adds where
its memory is to each minute (pymalloc arenas and live blocks, glibc heap in use and free).

The worker is stopped and the topics are deleted at the end, also on error or Ctrl-C; the
run is bounded by ``--minutes`` plus a few minutes of setup and teardown.

Usage: python bench/soak.py [--minutes 30] [--rate 2000] [--speedup 14400] [--per-message 10]
    [--retention 180d] [--probe]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

if "AUPWATCH_KAFKA_BOOTSTRAP" not in os.environ and os.environ.get("AUPWATCH_KAFKA_PORT"):
    # bench/stream_kafka.py reads the broker from AUPWATCH_KAFKA_BOOTSTRAP at import
    os.environ["AUPWATCH_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{os.environ['AUPWATCH_KAFKA_PORT']}"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_traffic import DAY_MS, ORIGIN_MS, Traffic
from stream_kafka import BOOT, PY, ROOT, free_port, make_topic, scrape, worker_env

from tests.kafka_broker import delete_topics_from


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def series(sample: dict[str, float], name: str) -> dict[str, float]:
    """label string -> value of one metric family's samples."""
    return {k[len(name) :]: v for k, v in sample.items() if k.startswith(name + "{")}


def quantile(before: dict[str, float], after: dict[str, float], name: str, q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` of a histogram's increase."""
    buckets = []
    for labels, v in series(after, name + "_bucket").items():
        le = labels.split('le="')[1].split('"')[0]
        bound = float("inf") if le == "+Inf" else float(le)
        buckets.append((bound, v - before.get(name + "_bucket" + labels, 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return float("nan")
    return next(b for b, n in buckets if n >= q * total)


def last_probe(path: Path) -> dict[str, object]:
    """The latest line bench/soak_probe.py wrote (empty without a probe)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return orjson.loads(path.read_bytes().splitlines()[-1])  # type: ignore[no-any-return]
    return {}


def detector_keys(sample: dict[str, float]) -> dict[str, int]:
    out = {}
    for labels, v in series(sample, "aupwatch_detector_state_keys").items():
        out[labels.split('detector="')[1].split('"')[0]] = int(v)
    return out


KEYS_EVERY = 5.0  # seconds between looks at the state keys within a minute


def mean_keys(looks: list[dict[str, int]]) -> dict[str, int]:
    """State keys per detector, averaged over a minute's looks (a windowed count such as
    internal_overreach's moves by a fifth between two instants: the level is the mean)."""
    names = {n for look in looks for n in look}
    return {n: round(sum(look.get(n, 0) for look in looks) / len(looks)) for n in names}


SHORT = {
    "unauthorized_seller_access": "unauth",
    "throttle_circumvention": "throttle",
    "cross_seller_disclosure": "disclose",
    "dormant_key": "dormant",
    "credential_sharing": "cred",
    "throttle_disrespect": "disresp",
    "internal_overreach": "overreach",
    "alerts": "open_alrt",
}


def row(minute: int, s: dict[str, object], names: list[str]) -> str:
    keys: dict[str, int] = s["keys"]  # type: ignore[assignment]
    cells = [
        f"{minute:>3}",
        f"{s['days']:>6.1f}",
        f"{s['sent']:>9,}",
        f"{s['rss']:>7,.0f}",
        *(f"{keys.get(n, 0):>9,}" for n in names),
        f"{s['ckpt_mean'] * 1000:>7.0f}",
        f"{s['ckpt_max']:>6}",
        f"{s['p99']:>6.2f}",
        f"{s['lag']:>7,.0f}",
        f"{s['load']:>5.2f}",
    ]
    return " ".join(cells)


def header(names: list[str]) -> str:
    cols = ["min", "ev_days", "sent", "rss_MB", *(f"{SHORT.get(n, n)[:9]:>9}" for n in names)]
    cols += ["ckpt_ms", "ckpt<=", "p99_s", "lag", "load1"]
    widths = [3, 6, 9, 7, *[9] * len(names), 7, 6, 6, 7, 5]
    return " ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))


# kept forever by the rules under the defaults (docs/semantics.md, "State and its horizons")
FOREVER = ("unauthorized_seller_access", "dormant_key", "credential_sharing")


def verdict(samples: list[dict[str, object]], lateness: float, forever: set[str]) -> list[str]:
    """The three targets over the last 20 minutes (or the last two thirds of a short run).

    Args:
        samples: One per minute.
        lateness: allowed_lateness in seconds.
        forever: Detectors whose state the rules keep forever: printed apart, not judged.
    """
    last = len(samples)
    base = max(1, last - 20) if last >= 30 else max(1, last // 3)
    b, e = samples[base - 1], samples[-1]
    out = []
    growth = e["rss"] / b["rss"] - 1  # type: ignore[operator]
    out.append(
        f"RSS minute {base} -> {last}: {b['rss']:,.0f} -> {e['rss']:,.0f} MB "
        f"({growth:+.1%}; target < +10%): {'PASS' if growth < 0.10 else 'FAIL'}"
    )
    bk: dict[str, int] = b["keys"]  # type: ignore[assignment]
    worst_all = 0.0 if bk else float("inf")  # no gauge yet at the base minute: not judged
    names = sorted({n for s in samples for n in s["keys"]})  # type: ignore[attr-defined]
    groups = (
        ("bounded by a horizon (judged)", [n for n in names if n not in forever]),
        (
            "kept forever by rule (not judged: they grow with the pairs and keys ever seen; "
            "--retention bounds them)",
            [n for n in names if n in forever],
        ),
    )
    out.append(f"  {'state keys':<28} {'minute ' + str(base):>12} {'minute ' + str(last):>12}"
               f" {'range after':>21} {'worst':>8}")  # fmt: skip
    for title, group in groups:
        out.append(f"  {title}:")
        for name in group:
            level = bk.get(name, 0)
            values = [s["keys"].get(name, 0) for s in samples[base - 1 :]]  # type: ignore[attr-defined]
            worst = max(abs(v - level) for v in values) / max(level, 1)
            small = level < 100  # a few dozen keys: +-10 % is noise, not growth
            if name not in forever:
                worst_all = max(worst_all, 0.0 if small else worst)
            note = ", small: not judged" if small and name not in forever else ""
            out.append(
                f"    {name:<26} {level:>12,} {values[-1]:>12,} "
                f"{f'{min(values):,}-{max(values):,}':>21} {worst:>+8.1%}{note}"
            )
    out.insert(
        1,
        f"bounded state keys within 10% of minute {base}: "
        f"{'PASS' if worst_all <= 0.10 else 'FAIL'} (worst {worst_all:.1%})",
    )
    p99s = [s["p99"] for s in samples if s["p99"] == s["p99"]]  # type: ignore[comparison-overlap]
    top = max(p99s) if p99s else float("nan")
    out.append(
        f"p99 latency per minute at most {lateness + 1:.0f} s: worst {top:.2f} s: "
        f"{'PASS' if top <= lateness + 1 else 'FAIL'}"
    )
    return out


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # so that the worker is stopped and the topics deleted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--rate", type=int, default=2000, help="records per wall second")
    ap.add_argument("--speedup", type=float, default=14_400, help="event s per wall s")
    ap.add_argument("--per-message", type=int, default=10, help="records per Kafka message")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--retention", help="authorization_retention and key_retention, e.g. 180d")
    ap.add_argument("--probe", action="store_true", help="sample where the memory is")
    args = ap.parse_args()
    per = max(1, args.per_message)
    from kafka import KafkaProducer

    from aupwatch.detectors.registry import reason_severities

    signal.signal(signal.SIGTERM, _interrupt)
    group = f"soak-{uuid.uuid4().hex[:8]}"
    topic = f"{group}-logs"
    lateness = 30.0
    hard_stop = time.monotonic() + args.minutes * 60 + 300
    proc = None
    samples: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            make_topic(topic, 4)
            make_topic(f"{group}-alerts", 4)
            port = free_port()
            env = worker_env(group, topic, f"{tmp}/{group}")
            if args.retention:
                env["AUPWATCH_UNAUTHORIZED_SELLER_ACCESS__AUTHORIZATION_RETENTION"] = args.retention
                env["AUPWATCH_DORMANT__KEY_RETENTION"] = args.retention
            probe = Path(tmp, "probe.jsonl")
            run = [str(Path(__file__).with_name("soak_probe.py")), str(probe)] if args.probe else []
            log = open(f"{tmp}/worker.log", "wb")  # noqa: SIM115
            cmd = ["worker", "--log-level", "WARNING", "--metrics-port", str(port)]
            proc = subprocess.Popen(
                [PY, *(run or ["-m", "aupwatch.cli"]), *cmd],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )
            while time.monotonic() < hard_stop - args.minutes * 60:
                time.sleep(0.5)
                with contextlib.suppress(OSError):
                    if scrape(port).get("aupwatch_worker_assigned_partitions", 0) > 0:
                        break
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"the worker exited: {Path(tmp, 'worker.log').read_text()[-2000:]}"
                    )
            else:
                raise RuntimeError("the worker did not join its group within 5 minutes")
            print(
                f"group {group}: {args.rate:,} records/s for {args.minutes} min, event time x"
                f"{args.speedup:,.0f} ({args.speedup * args.minutes * 60 / 86400:,.0f} days), "
                f"{per} records per message, "
                f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at start",
                flush=True,
            )
            traffic = Traffic(args.seed)
            prod = KafkaProducer(bootstrap_servers=BOOT, linger_ms=20, batch_size=1 << 18)
            start = time.monotonic()
            prev = scrape(port)
            names = [*sorted(reason_severities()), "alerts"]  # "alerts": the open alerts
            sent = 0
            for minute in range(1, args.minutes + 1):
                end = start + minute * 60
                seen_keys: list[dict[str, int]] = []
                next_look = time.monotonic()
                while (now := time.monotonic()) < end:
                    if now >= next_look:
                        next_look = now + KEYS_EVERY
                        with contextlib.suppress(OSError):
                            seen_keys.append(detector_keys(scrape(port)))
                    due = int((now - start) * args.rate) + 1
                    ev = ORIGIN_MS + int((now - start) * args.speedup * 1000)
                    if due - sent >= per:
                        n = (due - sent) // per * per
                        lines = [traffic.next(ev) for _ in range(n)]
                        for i in range(0, n, per):
                            prod.send(topic, value=b"\n".join(lines[i : i + per]))
                        sent += n
                    time.sleep(0.005)
                    if now > hard_stop:
                        raise RuntimeError("over the time bound")
                cur = scrape(port)
                n_ck = cur.get("aupwatch_checkpoint_seconds_count", 0.0) - prev.get(
                    "aupwatch_checkpoint_seconds_count", 0.0
                )
                t_ck = cur.get("aupwatch_checkpoint_seconds_sum", 0.0) - prev.get(
                    "aupwatch_checkpoint_seconds_sum", 0.0
                )
                keys = mean_keys([*seen_keys, detector_keys(cur)])
                samples.append(
                    {
                        "days": (ev - ORIGIN_MS) / DAY_MS,
                        "sent": sent,
                        "rss": rss_mb(proc.pid),
                        "keys": keys,
                        "ckpt_mean": t_ck / n_ck if n_ck else float("nan"),
                        "ckpt_max": quantile(prev, cur, "aupwatch_checkpoint_seconds", 1.0),
                        "p99": quantile(prev, cur, "aupwatch_processing_latency_seconds", 0.99),
                        "lag": sum(series(cur, "aupwatch_consumer_lag_records").values()),
                        "load": os.getloadavg()[0],
                        "probe": last_probe(probe),
                    }
                )
                prev = cur
                if minute == 1:
                    print(header(names), flush=True)
                print(row(minute, samples[-1], names), flush=True)
            prod.flush()
            prod.close()
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            with contextlib.suppress(Exception):
                print(f"deleted topics: {', '.join(delete_topics_from(BOOT, group))}", flush=True)
    if samples:
        print(
            "columns: ev_days event days passed; state keys per detector; ckpt_ms mean and ckpt<= "
            "largest bucket of the checkpoint duration; p99_s of append-to-alert latency in "
            "the minute; lag consumer lag (messages); load1 load average"
        )
        if args.probe:
            print("memory (MB) each minute: RSS, pymalloc arenas / live blocks, glibc used / free")
            for minute, smp in enumerate(samples, 1):
                pr: dict[str, float] = smp["probe"]  # type: ignore[assignment]
                print(
                    f"{minute:>3} {smp['rss']:>7,.0f} {pr.get('py_arenas_mb', 0):>7,} "
                    f"{pr.get('py_blocks_mb', 0):>7,} {pr.get('c_used_mb', 0):>7,} "
                    f"{pr.get('c_free_mb', 0):>7,}"
                )
        forever = set() if args.retention else set(FOREVER)
        for line in verdict(samples, lateness, forever):
            print(line, flush=True)


if __name__ == "__main__":
    main()
