"""Shared pieces of the Alertmanager sink's tests: a sample alert, a stub server, a sink."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aupwatch.streams.ops.alertmanager import AlertmanagerSink
from aupwatch.streams.ops.metrics import Metrics

NOW = 1_800_000_000.0  # injected wall clock (2027-01-15)


def make_alert(n: int = 1, count: int = 1, **extra: Any) -> dict[str, Any]:
    alert = {
        "alert_id": f"{n:024x}",
        "detector": "cross_seller_disclosure",
        "reason": "other_seller",
        "severity": "critical",
        "clause": "Do not disclose information ... to other Application users",
        "ts": "2026-03-01T10:01:00Z",
        "first_seen": "2026-03-01T10:01:00Z",
        "last_seen": "2026-03-01T10:01:00Z",
        "count": count,
        "subject": {
            "app_id": "app-1",
            "owner_seller_id": "S1",
            "viewer_type": "seller_user",
            "viewer_seller_id": "S2",
        },
        "summary": "app-1 showed 1 resource of seller S1 to a user of seller S2",
        "evidence": {"resources": 1, "event_ids": ["e3"]},
    }
    alert.update(extra)
    return alert


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Stub:
    """A fake Alertmanager: records POSTed batches, answers with scripted status codes."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.auth: list[str | None] = []  # Authorization header of each request
        self.statuses: list[int] = []  # consumed one per request; 200 when empty
        self.gate = threading.Event()
        self.gate.set()
        self.received = threading.Condition()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.auth.append(self.headers.get("Authorization"))
                stub.gate.wait(10)
                status = stub.statuses.pop(0) if stub.statuses else 200
                with stub.received:
                    if status == 200:
                        stub.batches.append(body)
                    stub.received.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def alerts(self) -> list[dict[str, Any]]:
        return [alert for batch in self.batches for alert in batch]

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def sink_for(url: str, metrics: Metrics, **kwargs: Any) -> AlertmanagerSink:
    options: dict[str, Any] = {"backoff": 0.01, "clock": lambda: NOW, "resend_interval": None}
    options.update(kwargs)
    return AlertmanagerSink(url, metrics, **options)
