"""Forward aupwatch alerts to Prometheus Alertmanager (API v2).

:class:`AlertmanagerSink` turns every new or updated alert (the JSON object of the alert
contract) into one Alertmanager alert and posts it from a background thread, so
detection never waits for the network. It works the same under the asyncio worker and
the synchronous replay: :meth:`AlertmanagerSink.submit` only takes a lock for a dict
operation, never blocks and never raises.

Mapping of an aupwatch alert to an Alertmanager alert:

* labels: ``alertname="AupwatchBreach"``, ``detector``, ``reason``, ``severity`` and
  ``alert_id``; one aupwatch alert is one Alertmanager alert, and an update (same
  ``alert_id``, larger ``count``) replaces it in place;
* annotations: ``summary``, ``subject`` (compact JSON of the subject ids), ``alert_id``,
  ``clause``, ``count``, ``first_seen`` and ``last_seen``;
* ``startsAt``: the alert ``ts`` (event time at which the breach was established);
* ``endsAt``: wall clock of the latest submission plus ``resolve_after`` (default 1 h),
  and never before ``startsAt``. It is explicit rather than left to Alertmanager's
  ``resolve_timeout`` (5 min by default) because a breach is an event, not a state that
  someone keeps re-asserting: the alert stays active long enough to be seen and
  routed, then resolves by itself. It is not derived from ``ts``: alerts of a replay of
  old logs would arrive already resolved and never notify. Pass ``resolve_after=None``
  to leave ``endsAt`` unset: Alertmanager then resolves the alert ``resolve_timeout``
  after it last received it, and the sink does not resend it.

Delivery: alerts wait in a bounded queue keyed by ``alert_id`` (an update of a queued
alert replaces it in place); when the queue is full the oldest is dropped and counted in
``aupwatch_alertmanager_dropped_total``. Batches are posted with a timeout; a failure
(connection error, timeout, HTTP 5xx or 429) is retried ``max_retries`` times with
exponential backoff and full jitter. Each POST is counted in
``aupwatch_alertmanager_posts_total{outcome="ok"|"error"}``. Alerts still active are
posted again every ``resend_interval`` seconds until their ``endsAt``, so an
Alertmanager that restarted (it keeps no alerts across restarts) or failed for longer
than the retries learns them again. One sink talks to one Alertmanager URL: for an HA
pair create one sink per instance, as Prometheus does.

Security: alerts name sellers, developers and keys, so the sink speaks HTTPS when the URL
says so, verifying Alertmanager's certificate against ``cafile`` (the system CAs when
unset), and sends basic auth or a bearer token with every request, as an Alertmanager
started with ``--web.config.file`` (``basic_auth_users``) or a proxy in front of it
expects. A 401 or 403 is logged with the setting to check and not retried.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from aupwatch.streams.config import MonitorSettings
from aupwatch.streams.ops.am_payload import ALERTNAME, API_PATH, rfc3339, to_alertmanager
from aupwatch.streams.ops.metrics import Metrics
from aupwatch.streams.security import http_auth_header, https_client_context

__all__ = ["ALERTNAME", "AlertmanagerSink", "to_alertmanager"]

log = logging.getLogger(__name__)


class AlertmanagerSink:
    """Non-blocking, retrying forwarder of aupwatch alerts to Alertmanager.

    Args:
        url: Alertmanager base URL (``http://alertmanager:9093``); a URL that already
            ends in ``/api/v2/alerts`` is used as is.
        metrics: Metrics to count posts, drops and the queue length in.
        timeout: Seconds to wait for one POST.
        max_retries: Retries of a failed batch before it is left to the next resend.
        backoff: First retry delay in seconds; doubles with each retry (full jitter).
        max_backoff: Upper bound of one retry delay in seconds.
        queue_max: Most alerts waiting to be posted; also the most alerts kept for
            resending. The oldest is dropped (and counted) when full.
        resend_interval: Seconds between resends of still active alerts; None or 0
            disables resending (alerts that fail all retries are then dropped).
        resolve_after: Seconds after the latest submission at which the alert resolves
            (``endsAt``); None leaves ``endsAt`` unset (see the module docstring).
        batch_max: Most alerts in one POST.
        clock: Wall clock in seconds since the epoch.
        rng: Random source for the jitter.
        use_env_proxy: Honour ``http_proxy`` and friends (off: Alertmanager is usually
            reached directly).
        cafile: PEM file of the CA(s) to verify an ``https`` Alertmanager against;
            None uses the system CAs.
        username: Basic auth user (with ``password``).
        password: Basic auth password.
        bearer_token: Sent as ``Authorization: Bearer`` instead of basic auth.

    Raises:
        ConfigError: Both basic auth and a token, or a CA file that cannot be loaded.
    """

    def __init__(
        self,
        url: str,
        metrics: Metrics,
        *,
        timeout: float = 5.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        queue_max: int = 10000,
        resend_interval: float | None = 300.0,
        resolve_after: float | None = 3600.0,
        batch_max: int = 100,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        use_env_proxy: bool = False,
        cafile: str | None = None,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
    ) -> None:
        base = url.rstrip("/")
        self.url = base if base.endswith(API_PATH) else base + API_PATH
        self._headers = {
            "Content-Type": "application/json",
            **http_auth_header(username, password, bearer_token),
        }
        if len(self._headers) > 1 and not self.url.lower().startswith("https://"):
            log.warning("alertmanager sink: credentials for %s are sent without TLS", self.url)
        self._metrics = metrics
        self._timeout = timeout
        self._max_retries = max(0, int(max_retries))
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._queue_max = max(1, int(queue_max))
        self._resend_interval = resend_interval or None
        self._resolve_after = resolve_after
        self._batch_max = max(1, int(batch_max))
        self._clock = clock
        self._rng = rng or random.Random()
        handlers: list[urllib.request.BaseHandler] = []
        if not use_env_proxy:
            handlers.append(urllib.request.ProxyHandler({}))
        handlers.append(
            urllib.request.HTTPSHandler(
                context=https_client_context(cafile, "monitor.alertmanager_cafile")
            )
        )
        self._opener = urllib.request.build_opener(*handlers)
        self._cond = threading.Condition()
        self._queue: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._active: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._closing = False
        self._deadline: float | None = None
        self._lost = 0
        self._next_resend = time.monotonic() + (self._resend_interval or 0.0)
        self._thread = threading.Thread(target=self._run, name="alertmanager-sink", daemon=True)
        self._thread.start()

    # -- producer side ----------------------------------------------------------------

    def submit(self, alert: Mapping[str, Any]) -> None:
        """Queue a new or updated alert for Alertmanager; never blocks nor raises.

        Args:
            alert: An alert of the alert contract.
        """
        try:
            payload = to_alertmanager(alert)
            ends = None
            if self._resolve_after is not None:
                ends = max(self._clock(), payload["_starts"]) + self._resolve_after
            payload["_ends"] = ends
            alert_id = payload["labels"]["alert_id"]
            dropped = 0
            with self._cond:
                if self._closing:
                    dropped = 1
                else:
                    self._remember(alert_id, payload)
                    self._queue[alert_id] = payload
                    while len(self._queue) > self._queue_max:
                        self._queue.popitem(last=False)
                        dropped += 1
                    self._metrics.set_alertmanager_queue(len(self._queue))
                    self._cond.notify()
            if dropped:
                self._metrics.alertmanager_dropped(dropped)
        except Exception:  # submit must never break detection
            log.exception("alertmanager sink: cannot queue alert")
            with contextlib.suppress(Exception):
                self._metrics.alertmanager_dropped(1)

    def close(self, timeout: float = 5.0) -> bool:
        """Stop accepting alerts, post what is queued within ``timeout``, stop the thread.

        Args:
            timeout: Seconds to spend flushing (retries stop at the deadline).

        Returns:
            True if the queue was emptied and the thread ended in time.
        """
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + max(0.0, timeout)
            self._cond.notify_all()
        self._thread.join(max(0.0, timeout) + self._timeout + 1.0)
        with self._cond:
            return not self._thread.is_alive() and not self._queue and not self._lost

    def pending(self) -> int:
        """Return the number of alerts waiting to be posted."""
        with self._cond:
            return len(self._queue)

    @classmethod
    def from_settings(
        cls, url: str, metrics: Metrics, monitor: MonitorSettings
    ) -> AlertmanagerSink:
        """A sink for ``url`` with the timeout, CA and credentials of ``[monitor]``.

        Args:
            url: Alertmanager base URL (the command line may override the config's).
            metrics: Metrics to count posts, drops and the queue length in.
            monitor: The ``[monitor]`` settings.
        """
        return cls(
            url,
            metrics,
            timeout=monitor.alertmanager_timeout,
            cafile=monitor.alertmanager_cafile or None,
            username=monitor.alertmanager_username or None,
            password=monitor.alertmanager_password,
            bearer_token=monitor.alertmanager_bearer_token or None,
        )

    def __enter__(self) -> AlertmanagerSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- background thread ------------------------------------------------------------

    def _remember(self, alert_id: str, payload: dict[str, Any]) -> None:
        """Keep the latest version of an alert for resending (lock held)."""
        if not self._resend_interval or payload["_ends"] is None:
            return
        self._active.pop(alert_id, None)
        self._active[alert_id] = payload
        while len(self._active) > self._queue_max:
            self._active.popitem(last=False)

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._deliver(batch)

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """Wait for work; return a batch, [] to loop again, or None to stop."""
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                wait = None
                if self._resend_interval:
                    wait = self._next_resend - time.monotonic()
                    if wait <= 0:
                        self._schedule_resend()
                        continue
                self._cond.wait(wait)
            if self._closing and self._past_deadline():
                self._lost += len(self._queue)
                self._metrics.alertmanager_dropped(len(self._queue))
                self._queue.clear()
                self._metrics.set_alertmanager_queue(0)
                return None
            batch: list[dict[str, Any]] = []
            while self._queue and len(batch) < self._batch_max:
                batch.append(self._queue.popitem(last=False)[1])
            self._metrics.set_alertmanager_queue(len(self._queue))
            return batch

    def _schedule_resend(self) -> None:
        """Queue every still active alert again (lock held)."""
        self._next_resend = time.monotonic() + (self._resend_interval or 0.0)
        now = self._clock()
        for alert_id, payload in list(self._active.items()):
            ends = payload["_ends"]
            if ends <= now:
                del self._active[alert_id]
            elif alert_id not in self._queue and len(self._queue) < self._queue_max:
                self._queue[alert_id] = payload
        self._metrics.set_alertmanager_queue(len(self._queue))

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Post a batch, retrying with backoff; count the outcome of every attempt."""
        body = json.dumps([self._wire(p) for p in batch]).encode()
        attempt = 0
        while True:
            retry = self._post(body)
            if retry is None:
                return
            if not retry or attempt >= self._max_retries:
                break
            delay = self._rng.uniform(0.0, min(self._max_backoff, self._backoff * 2**attempt))
            attempt += 1
            if not self._sleep(delay):
                break
        with self._cond:
            if not retry:  # rejected (4xx): resending the same alerts cannot help
                for payload in batch:
                    self._active.pop(payload["labels"]["alert_id"], None)
            elif not self._closing and all(p["labels"]["alert_id"] in self._active for p in batch):
                return  # all still active: the next resend tries again
            if self._closing:
                self._lost += len(batch)
        self._metrics.alertmanager_dropped(len(batch))

    def _sleep(self, delay: float) -> bool:
        """Wait ``delay`` seconds, less if closing; False if the close deadline passed."""
        end = time.monotonic() + delay
        with self._cond:
            while True:
                limit = min(end, self._deadline) if self._closing and self._deadline else end
                now = time.monotonic()
                if now >= limit:
                    return not (self._closing and self._past_deadline())
                self._cond.wait(limit - now)

    @staticmethod
    def _wire(payload: dict[str, Any]) -> dict[str, Any]:
        wire = {k: v for k, v in payload.items() if not k.startswith("_")}
        if payload["_ends"] is not None:
            wire["endsAt"] = rfc3339(payload["_ends"])
        return wire

    def _post(self, body: bytes) -> bool | None:
        """POST once. Returns None on success, True if worth retrying, else False."""
        request = urllib.request.Request(self.url, data=body, method="POST", headers=self._headers)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read()
        except urllib.error.HTTPError as err:
            self._metrics.alertmanager_post(False)
            detail = ""
            with contextlib.suppress(OSError):  # the server may hang up after its status line
                detail = err.read(500).decode("utf-8", "replace").strip() if err.fp else ""
            if err.code in (401, 403):
                detail += " (check monitor.alertmanager_username/password or _bearer_token)"
            log.warning("alertmanager sink: HTTP %s from %s: %s", err.code, self.url, detail)
            return err.code >= 500 or err.code == 429
        except (OSError, ValueError) as err:
            self._metrics.alertmanager_post(False)
            log.warning("alertmanager sink: POST %s failed: %s", self.url, err)
            return True
        self._metrics.alertmanager_post(True)
        return None
