"""Alerts as a table for a person at a terminal (the JSON Lines stay the data format)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

COLUMNS = ("SEVERITY", "DETECTOR", "REASON", "SUBJECT", "COUNT", "SUMMARY")
# most urgent first; an unknown severity sorts last rather than failing the display
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
# the subject column gives up width (down to the minimum) before the summary does
SUBJECT_WIDTH, MIN_SUBJECT_WIDTH = 40, 16
MIN_SUMMARY_WIDTH = 30
HINT = "Full alerts as JSON Lines (clause, evidence, ids): add --alerts FILE or pipe the output."


def clip(text: str, width: int) -> str:
    """Shortens ``text`` to ``width`` characters, marking the cut with ``...``."""
    if len(text) <= width:
        return text
    return text[: max(width - 3, 0)] + "..."


def compact_subject(subject: Mapping[str, Any]) -> str:
    """The subject's values in one short cell: ``dev-1 k-1``; lists as ``a,b,+3``."""
    parts = []
    for value in subject.values():
        if isinstance(value, list):
            shown = ",".join(map(str, value[:2]))
            value = shown + (f",+{len(value) - 2}" if len(value) > 2 else "")
        parts.append(str(value))
    return " ".join(parts)


def sort_key(alert: Mapping[str, Any]) -> tuple[int, str, str]:
    """Orders by severity (most urgent first), then event time, then alert id."""
    rank = SEVERITY_RANK.get(alert["severity"], len(SEVERITY_RANK))
    return rank, alert["ts"], alert["alert_id"]


def render(alerts: Iterable[Mapping[str, Any]], width: int) -> str:
    """Formats alerts as a fixed-width table with a closing hint line.

    Args:
        alerts: Final alert versions, in any order.
        width: Terminal width in characters; the summary column takes what is left.

    Returns:
        The text to print, ending with a newline.
    """
    rows = [
        (
            str(a["severity"]),
            str(a["detector"]),
            str(a["reason"]),
            compact_subject(a["subject"]),
            str(a["count"]),
            str(a["summary"]),
        )
        for a in sorted(alerts, key=sort_key)
    ]
    if not rows:
        return "No alerts.\n"
    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) for i in range(len(COLUMNS) - 1)]
    room = width - MIN_SUMMARY_WIDTH - sum(widths) - 2 * len(widths) + widths[3]
    widths[3] = min(widths[3], SUBJECT_WIDTH, max(room, MIN_SUBJECT_WIDTH))
    rows = [(*r[:3], clip(r[3], widths[3]), *r[4:]) for r in rows]
    summary_width = max(width - sum(widths) - 2 * len(widths), MIN_SUMMARY_WIDTH)

    def line(cells: tuple[str, ...]) -> str:
        # COUNT (the fifth column) is a number: right-aligned
        pairs = enumerate(zip(cells[:-1], widths, strict=True))
        fixed = [c.rjust(w) if i == 4 else c.ljust(w) for i, (c, w) in pairs]
        return "  ".join([*fixed, clip(cells[-1], summary_width)]).rstrip()

    out = [line(COLUMNS), *(line(r) for r in rows), "", HINT]
    return "\n".join(out) + "\n"
