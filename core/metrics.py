"""Prometheus metrics of the bot process, on a private registry, served on 127.0.0.1 by default.

What an operator sees (every name starts with ``orchestra_``):

- read from the store at each scrape: tasks by state; dollars, tokens and runs by agent (sums over
  the costs table, so these counters survive a restart); each channel's outbox backlog; chat
  updates in the inbound journal by state;
- observed live from the engine's events: queue wait, dispatch latency and completion latency
  histograms (they start empty with the process, as Prometheus histograms do);
- probed at each scrape: whether each enabled chat transport is up, and how long ago the platform
  last answered it.

Scrapes run on the HTTP server's threads, one at a time, never on the bot's event loop; the store
they read must be a connection of their own (``Store`` opened again on the same file).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from core.agents.base import Usage
from core.clock import Clock
from core.errors import MetricsUnavailable
from core.models import TaskState
from core.protocol import EventKind
from core.store import Store

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0)
_OPEN_LIMIT = 10_000  # tasks seen half-way (dispatched, not started): more means events were lost
_TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")


@dataclass(frozen=True)
class TransportHealth:
    """A chat transport as a scrape sees it: ``contact_age_s`` is None when it cannot be known."""

    up: bool
    contact_age_s: float | None = None


TransportProbe = Callable[[], TransportHealth]
"""Called on a scrape thread: it must only read attributes, never await or change anything."""


class Metrics:
    """The process's registry, the engine listener that feeds its histograms, the store collector.

    ``store`` is read only on scrape threads (under a lock); give it a connection of its own.
    ``channels`` are the outbox channels to report, ``transports`` the enabled chat transports
    (reported down until :meth:`watch_transport` gives their probe).
    """

    def __init__(
        self, store: Store, clock: Clock, *, channels: Sequence[str] = (), transports: Sequence[str] = ()
    ) -> None:
        self.store = store
        self.clock = clock
        self.channels = list(dict.fromkeys(channels))
        self.registry = CollectorRegistry(auto_describe=False)
        self.queue_wait = Histogram(
            "orchestra_queue_wait_seconds",
            "Task created -> the engine takes it from the queue (includes any wait for approval)",
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.dispatch_latency = Histogram(
            "orchestra_dispatch_latency_seconds",
            "The engine starts a task -> its agent process is running (tmux window, runner, exec)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.completion_latency = Histogram(
            "orchestra_completion_latency_seconds",
            "An agent exits -> the engine has recorded its result and queued the completion message",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._probes: dict[str, TransportProbe | None] = {name: None for name in transports}
        self._dispatched: dict[str, float] = {}
        self._exited: dict[str, float] = {}
        self._lock = threading.Lock()
        self.extra: list[Callable[[], Iterable[Metric]]] = []  # more families (the web dashboard's viewers)
        self.registry.register(_Scrape(self))

    # -- live observations (the engine's loop) ----------------------------------------------------
    def on_event(self, task_id: str, kind: str, data: dict[str, Any]) -> None:
        """An ``Engine.listeners`` entry. Cheap: a dict update or a histogram observation per event.

        A task whose ``dispatched`` this process did not see (it was started by an engine that
        ran before) gives no dispatch latency; one replayed at start gives its real completion
        latency, the time the engine was down included.
        """
        if kind == EventKind.DISPATCHED:
            at, created = _seconds(data.get("dispatched_at")), _seconds(data.get("created_at"))
            if at is None:
                return
            if created is not None:
                self.queue_wait.observe(max(0.0, at - created))
            _remember(self._dispatched, task_id, at)
        elif kind == EventKind.STARTED:
            at, running = self._dispatched.pop(task_id, None), _seconds(data.get("agent_started_at"))
            if at is not None and running is not None:
                self.dispatch_latency.observe(max(0.0, running - at))
        elif kind == EventKind.RESULT:
            exited = _seconds(data.get("exited_at"))
            if exited is not None:
                _remember(self._exited, task_id, exited)
        elif kind == EventKind.FINISHED:
            exited = self._exited.pop(task_id, None)
            if exited is not None:
                self.completion_latency.observe(max(0.0, self.clock.now() - exited))

    def watch_transport(self, name: str, probe: TransportProbe | None) -> None:
        """Report ``name`` through ``probe`` from now on (None: down, e.g. once it has stopped)."""
        self._probes[name] = probe

    # -- scraping (a server thread) -----------------------------------------------------------------
    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition for an ``Accept`` header: (body, content type)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    def _collect(self) -> Iterable[Metric]:
        with self._lock:
            counts = self.store.count_by_state()
            usage = self.store.usage_by_agent()
            backlog = {channel: self.store.outbox_backlog(channel) for channel in self.channels}
            inbound = self.store.inbound_counts()
        now = self.clock.now()
        tasks = GaugeMetricFamily("orchestra_tasks", "Tasks in the store, by state", labels=["state"])
        for state in TaskState:
            tasks.add_metric([state.value], counts.get(state.value, 0))
        yield tasks
        updates = GaugeMetricFamily(
            "orchestra_inbound_updates",
            "Chat updates in the inbound journal, by state (pending: received, not handled yet; failed: given up)",
            labels=["state"],
        )
        for journal_state in ("pending", "done", "failed"):
            updates.add_metric([journal_state], inbound.get(journal_state, 0))
        yield updates
        yield from _cost_families(usage)
        yield from _outbox_families(backlog, now)
        yield from self._transport_families(backlog, now)
        for more in list(self.extra):
            yield from more()

    def _transport_families(self, backlog: dict[str, dict[str, Any]], now: float) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "orchestra_transport_up",
            "1 while the chat transport is connected and receiving (Telegram: getUpdates succeeds or the "
            "webhook server runs; Slack: the Socket Mode connection is open or the HTTP server runs)",
            labels=["transport"],
        )
        age = GaugeMetricFamily(
            "orchestra_transport_last_contact_age_seconds",
            "Seconds since the platform last answered: a successful poll, a socket pong, or a message it "
            "accepted (absent until there was one)",
            labels=["transport"],
        )
        for name, probe in self._probes.items():
            health = _probe(name, probe)
            up.add_metric([name], 1.0 if health.up else 0.0)
            ages = [health.contact_age_s] if health.contact_age_s is not None else []
            delivered = backlog.get(name, {}).get("delivered_at")
            if delivered is not None:
                ages.append(max(0.0, now - delivered))
            if ages:
                age.add_metric([name], min(ages))
        yield up
        yield age


class _Scrape:
    """The registry's custom collector: everything read at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics._collect()


def _cost_families(usage: list[tuple[str, float, int, int, Usage]]) -> Iterable[Metric]:
    cost = CounterMetricFamily(
        "orchestra_cost_usd",
        "Dollars spent by finished runs, by agent (a run of unknown cost adds 0)",
        labels=["agent"],
    )
    tokens = CounterMetricFamily(
        "orchestra_tokens",
        "Tokens of finished runs, by agent and type (input includes cache reads and writes)",
        labels=["agent", "type"],
    )
    runs = CounterMetricFamily("orchestra_runs", "Finished runs with a cost record, by agent", labels=["agent"])
    unknown = CounterMetricFamily(
        "orchestra_runs_cost_unknown", "Finished runs whose cost nobody could tell, by agent", labels=["agent"]
    )
    for agent, usd, count, unknown_count, use in usage:
        cost.add_metric([agent], usd)
        runs.add_metric([agent], count)
        unknown.add_metric([agent], unknown_count)
        values = (use.input_tokens, use.output_tokens, use.cache_read_tokens, use.cache_write_tokens)
        for kind, value in zip(_TOKEN_TYPES, values, strict=True):
            tokens.add_metric([agent, kind], value)
    return (cost, tokens, runs, unknown)


def _outbox_families(backlog: dict[str, dict[str, Any]], now: float) -> Iterable[Metric]:
    pending = GaugeMetricFamily(
        "orchestra_outbox_pending", "Messages waiting for delivery (not given up), by channel", labels=["channel"]
    )
    oldest = GaugeMetricFamily(
        "orchestra_outbox_oldest_pending_age_seconds",
        "Age of the oldest message waiting for delivery, by channel (0 when none waits)",
        labels=["channel"],
    )
    given_up = CounterMetricFamily(
        "orchestra_outbox_given_up",
        "Messages the platform refused for good (blocked bot, unknown chat), kept in the store, by channel",
        labels=["channel"],
    )
    for channel, row in backlog.items():
        pending.add_metric([channel], row["pending"])
        oldest.add_metric([channel], 0.0 if row["oldest_at"] is None else max(0.0, now - row["oldest_at"]))
        given_up.add_metric([channel], row["given_up"])
    return (pending, oldest, given_up)


def _probe(name: str, probe: TransportProbe | None) -> TransportHealth:
    if probe is None:
        return TransportHealth(False)
    try:
        return probe()
    except Exception:  # a probe that breaks reports its transport down, never the scrape
        log.debug("metrics: probing %s failed", name, exc_info=True)
        return TransportHealth(False)


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _remember(table: dict[str, float], task_id: str, value: float) -> None:
    table[task_id] = value
    while len(table) > _OPEN_LIMIT:
        del table[next(iter(table))]


# -- the endpoint ---------------------------------------------------------------------------------
class MetricsServer:
    """Serves ``GET /metrics`` (nothing else) on its own threads until :meth:`stop`.

    ``port`` 0 takes a free port (tests); :attr:`port` is the one bound. :meth:`start` raises
    :class:`MetricsUnavailable` in one line when it cannot listen.
    """

    def __init__(self, metrics: Metrics, listen: str = "127.0.0.1", port: int = 9464) -> None:
        self.metrics = metrics
        self.listen = listen
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.listen}]" if ":" in self.listen else self.listen
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        handler = type("_BoundHandler", (_Handler,), {"metrics": self.metrics})
        server_class = _Server6 if ":" in self.listen else _Server
        try:
            server = server_class((self.listen, self.port), handler)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise MetricsUnavailable(f"metrics: cannot listen on {self.listen}:{self.port} ({reason})") from None
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.name = "metrics-http"
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close the socket, wait (briefly) for the serving thread. Idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a scrape in flight never holds the bot's exit
    allow_reuse_port = False  # never share the port with another process: a taken port is an error

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the address (slow where DNS is)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics
    server_version = "orchestra-metrics"
    timeout = 10  # a client that never finishes its request lets go of its thread

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/metrics":
            self._reply(404, b"only /metrics is served here\n")
            return
        try:
            body, content_type = self.metrics.render(self.headers.get("Accept", ""))
        except Exception:
            log.exception("metrics: the scrape failed")
            self._reply(500, b"the scrape failed; see the bot's log\n")
            return
        self._reply(200, body, content_type)

    def _refuse(self) -> None:
        self._reply(405, b"only GET /metrics\n", extra={"Allow": "GET"})

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _refuse

    def _reply(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No line per scrape (a scraper calls every few seconds)."""


__all__ = ["Metrics", "MetricsServer", "MetricsUnavailable", "TransportHealth", "TransportProbe"]
