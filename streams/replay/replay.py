"""Offline replay: historical log files through the detectors, no Kafka needed."""

from __future__ import annotations

import base64
import gzip
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from aupwatch.detectors.alerts import is_new
from aupwatch.detectors.pipeline import Pipeline
from aupwatch.errors import UsageError
from aupwatch.schemas.decode import decode_line
from aupwatch.schemas.errors import BadRecord
from aupwatch.schemas.records import KIND_RANK
from aupwatch.streams.config import AppConfig
from aupwatch.streams.rejected import rejected_kind

# records between two steps of the pipeline: a step decides items routed since the last,
# and 1,024 records' items are still in the CPU's caches (4,096 took 10-20 % more CPU)
STEP_EVERY = 1024
# steps between two updates of the state-size gauges (they count every alert's state)
SIZES_EVERY = 4
_BATCH_BYTES = 1 << 20


@dataclass
class Summary:
    """What a replay read and produced."""

    records: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    blank_lines: int = 0
    late: int = 0
    duplicates: int = 0
    unowned: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    alert_versions: int = 0
    # excepted occurrences by "detector/reason"
    suppressed: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def render(self) -> str:
        """Formats the summary for stderr."""
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"records: {self.records} read in {self.seconds:.2f} s ({rate:,.0f} records/s)",
            "  by kind: " + _fmt(self.by_kind),
            f"  late: {self.late}, duplicate items dropped: {self.duplicates}, "
            f"blank lines: {self.blank_lines}, accesses to unowned resources: {self.unowned}",
            f"dead letters: {sum(self.dead_letters.values())}"
            + (" (" + _fmt(self.dead_letters) + ")" if self.dead_letters else ""),
            f"alerts: {sum(self.alerts.values())}"
            + (" (" + _fmt(self.alerts) + ")" if self.alerts else "")
            + f", versions emitted: {self.alert_versions}",
            f"suppressed by exceptions: {sum(self.suppressed.values())}"
            + (" (" + _fmt(self.suppressed) + ")" if self.suppressed else ""),
        ]
        return "\n".join(lines)


def _fmt(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def open_input(path: str) -> tuple[IO[bytes], int | None]:
    """Opens ``-`` (stdin), a ``.gz`` file or a plain file for binary line reading.

    Returns:
        The stream and its compressed size in bytes when known (for progress).

    Raises:
        UsageError: The file cannot be opened.
    """
    if path == "-":
        return sys.stdin.buffer, None
    p = Path(path)
    try:
        size = p.stat().st_size
        raw = p.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", path=path) from None
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb"), size  # type: ignore[return-value]
    return raw, size


class Replay:
    """Feeds records to the in-process pipeline and routes alerts and dead letters.

    Args:
        config: The application config.
        on_alert: Called with each alert version as it is emitted.
        on_dead_letter: Called with each dead letter.
        metrics: Optional ``aupwatch.streams.ops.metrics.Metrics`` to update.
    """

    def __init__(
        self,
        config: AppConfig,
        on_alert: Callable[[dict[str, Any]], None],
        on_dead_letter: Callable[[dict[str, Any]], None],
        metrics: Any = None,
    ) -> None:
        self.config = config
        self.pipeline = Pipeline(config.detectors)
        self.on_alert = on_alert
        self.on_dead_letter = on_dead_letter
        self.metrics = metrics
        self.summary = Summary()
        self.latest: dict[str, dict[str, Any]] = {}
        # final version of each suppressed alert (with its exception's note)
        self.suppressed: dict[str, dict[str, Any]] = {}
        self._since_step = 0
        self._steps = 0

    def batches(
        self, path: str, progress: Callable[[int], None] | None = None
    ) -> Iterator[tuple[int, list[bytes]]]:
        """Yields (number of the first line, lines) of one input, about 1 MiB at a time.

        Lines come in lists, which the hot loop walks without a generator step per line;
        bytes read so far go to ``progress`` after each list. A pipe's lines come one at a
        time, as they arrive (a list would wait for a whole MiB).
        """
        stream, _ = open_input(path)
        raw = getattr(stream, "fileobj", stream)
        whole = raw.seekable()
        first = 1
        try:
            while batch := stream.readlines(_BATCH_BYTES if whole else 1):
                yield first, batch
                first += len(batch)
                if progress is not None:
                    progress(raw.tell() if raw.seekable() else 0)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise UsageError(f"cannot read {path}: {exc}", path=path) from None
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()

    def feed_file(self, path: str, progress: Callable[[int], None] | None = None) -> None:
        """Reads one file (or ``-``) to its end."""
        max_bytes = self.config.max_record_bytes
        feed = self.pipeline.feed
        summary = self.summary
        # a plain dict: a Counter's += is twice the cost, once per record
        by_kind = dict.fromkeys(KIND_RANK, 0)
        metrics = self.metrics
        # counted in locals (the hot loop), written back at the end
        since_step = self._since_step
        records = 0
        try:
            for first, batch in self.batches(path, progress):
                n = first - 1
                for line in batch:
                    n += 1
                    # The line is decoded with its newline (JSON whitespace: same verdict and
                    # record, no copy); only a rejected or long one is decoded again without
                    # it, for the exact error, size check and dead letter. A blank line is
                    # one of those: no JSON, so it is told apart only once rejected.
                    try:
                        rec = decode_line(line, max_bytes) if len(line) <= max_bytes else None
                    except BadRecord:
                        rec = None
                    if rec is None:
                        if not line or line.isspace():  # as `not line.strip()`, without a copy
                            summary.blank_lines += 1
                            continue
                        if line.endswith(b"\n"):
                            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
                        try:
                            rec = decode_line(line, max_bytes)
                        except BadRecord as exc:
                            self._dead_letter(exc, line, path, n)
                            continue
                    records += 1
                    by_kind[rec.kind] += 1
                    late = feed(rec)
                    if metrics is not None:
                        metrics.record(rec.kind, "late" if late else "accepted")
                        if late:
                            metrics.late(rec.kind)
                    since_step += 1
                    if since_step >= STEP_EVERY:
                        self._step(final=False)
                        since_step = 0
        finally:
            self._since_step = since_step
            summary.records += records
            summary.by_kind.update({kind: count for kind, count in by_kind.items() if count})

    def finish(self) -> list[dict[str, Any]]:
        """Flushes the watermark to the last event time and returns final alert versions."""
        self._step(final=True)
        stats = self.pipeline.stats
        self.summary.late = stats.late
        self.summary.duplicates = stats.duplicates
        self.summary.unowned = stats.unowned
        self.summary.suppressed = Counter({f"{d}/{r}": n for (d, r), n in stats.suppressed.items()})
        return list(self.latest.values())

    def _step(self, final: bool) -> None:
        self._since_step = 0
        for alert in self.pipeline.step(final=final):
            new = is_new(alert)
            self.latest[alert["alert_id"]] = alert
            self.summary.alert_versions += 1
            if new:
                self.summary.alerts[alert["detector"]] += 1
            if self.metrics is not None:
                self.metrics.alert(alert["detector"], alert["reason"], alert["severity"], new)
            self.on_alert(alert)
        for alert in self.pipeline.take_suppressed():
            self.suppressed[alert["alert_id"]] = alert
            if self.metrics is not None:  # one version per excepted occurrence
                self.metrics.suppressed(alert["detector"], alert["reason"])
        self._steps += 1
        if self.metrics is not None:
            if final or self._steps % SIZES_EVERY == 0:
                for detector, n in self.pipeline.state_sizes().items():
                    self.metrics.set_state_keys(detector, n)
            wm = self.pipeline.max_ts if final else self.pipeline.watermark
            if wm > 0:
                self.metrics.set_watermark("replay", 0, wm / 1e6)

    def _dead_letter(self, exc: BadRecord, line: bytes, path: str, n: int) -> None:
        self.summary.dead_letters[exc.reason] += 1
        if self.metrics is not None:
            self.metrics.record(rejected_kind(line), "dead_letter")
            self.metrics.dead_letter(exc.reason)
        self.on_dead_letter(dead_letter(exc, line, source=path, line=n))


def dead_letter(exc: BadRecord, raw: bytes, **where: Any) -> dict[str, Any]:
    """A dead-letter record: reason, detail, where it came from, and the input kept whole.

    Args:
        exc: Why the record was rejected.
        raw: The record's bytes as received.
        **where: Source coordinates (file and line, or topic, partition and offset).

    Returns:
        A JSON-serialisable dict; ``raw`` holds the text, or ``raw_base64`` the bytes when
        they are not UTF-8.
    """
    out: dict[str, Any] = {"reason": exc.reason, "error": exc.message, **where}
    try:
        out["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        out["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return out


class JsonLinesWriter:
    """Writes dicts as JSON Lines to a path or ``-`` (stdout), buffered."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stream: IO[bytes] | None = None
        if path is not None and path != "-":
            try:
                self._stream = open(path, "wb")  # noqa: SIM115
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc.strerror}", path=path) from None
        elif path == "-":
            self._stream = sys.stdout.buffer

    def write(self, obj: dict[str, Any]) -> None:
        """Writes one object as a line (no-op when there is no target)."""
        if self._stream is not None:
            self._stream.write(orjson.dumps(obj) + b"\n")

    def close(self) -> None:
        """Flushes, and closes files (not stdout)."""
        if self._stream is None:
            return
        self._stream.flush()
        if self.path != "-":
            self._stream.close()


class Progress:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self, total_bytes: int | None, label: str) -> None:
        self.enabled = sys.stderr.isatty()
        self.total = total_bytes
        self.label = label
        self.start = time.monotonic()
        self._last = 0.0

    def __call__(self, done_bytes: int) -> None:
        """Redraws at most a few times per second."""
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.25:
            return
        self._last = now
        if self.total:
            frac = min(done_bytes / self.total, 1.0)
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {frac:6.1%}")
        else:
            sys.stderr.write(f"\r{self.label} {done_bytes / 1e6:,.1f} MB")
        sys.stderr.flush()

    def done(self) -> None:
        """Erases the progress line, so that what follows starts on a clean line."""
        if self.enabled and self._last:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
