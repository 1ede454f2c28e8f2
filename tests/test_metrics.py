"""Prometheus metrics and ``orchestra doctor``'s operations checks, as an operator meets them.

Real engine on a private tmux server, real SQLite, real tasks; the endpoint over real HTTP on
127.0.0.1, parsed with prometheus_client's own parser; the bot started as a user starts it, with
a fake Telegram Bot API server (tests/fakes/telegram.py) where a transport is needed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bot.cli import main
from core.clock import SystemClock
from core.config import load_config, parse_config
from core.errors import ConfigError, MetricsUnavailable
from core.messages import Outbound, OutKind
from core.metrics import Metrics, MetricsServer
from core.models import TaskState
from core.store import Store
from tests.conftest import ROOT, free_port, requires_tmux
from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram

pytestmark = requires_tmux

TOKEN_ENV = "ORCH_TEST_METRICS_TELEGRAM_TOKEN"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- helpers ----------------------------------------------------------------------------------------
def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        body = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def listening_ports(pid: int) -> set[int]:
    """TCP ports a process listens on, from its open sockets and the kernel's tables."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def until(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (OSError, KeyError):
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def doctor(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    """``orchestra doctor`` as typed; returns its exit code and each check's line by name."""
    capsys.readouterr()
    code = main(["--config", str(config), "doctor"])
    lines: dict[str, str] = {}
    for line in capsys.readouterr().out.splitlines()[1:]:
        verdict, rest = line[2:5], line[6:]
        lines[rest[:24].strip()] = f"{verdict.strip()} {rest[24:].strip()}"
    return code, lines


class Bot:
    """``python -m bot --config X bot`` as a user starts it; SIGTERM at the end."""

    def __init__(self, config: Path, home: Path, log: Path, env: dict[str, str] | None = None) -> None:
        full = {**os.environ, "ORCHESTRA_HOME": str(home), **(env or {})}
        full.pop("TMUX", None)
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(config), "bot"],
            cwd=str(ROOT), env=full, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_started(self) -> None:
        until(lambda: "orchestra engine: pid" in self.output() or self.proc.poll() is not None, "the bot to start")
        assert self.proc.poll() is None, self.output()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


@pytest.fixture
def write_config(tmp_path: Path, config_data: dict[str, Any]) -> Callable[..., Path]:
    def write(**sections: Any) -> Path:
        data = json.loads(json.dumps(config_data))
        data["digest"]["enabled"] = False
        data.update(sections)
        path = tmp_path / "bots.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture
def bots(tmp_path: Path, home: Path) -> Iterator[Callable[..., Bot]]:
    started: list[Bot] = []

    def start(config: Path, env: dict[str, str] | None = None) -> Bot:
        bot = Bot(config, home, tmp_path / f"bot-{len(started)}.log", env)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        if bot.proc.poll() is None:
            bot.proc.kill()
            bot.proc.wait()


# -- the endpoint over a real engine ----------------------------------------------------------------
async def test_a_scrape_shows_the_tasks_latencies_costs_and_backlog_of_real_runs(make_app: Any, tmp_path: Path) -> None:
    app = make_app(
        agents__sleeper={"kind": "command", "command": "sleep", "args": ["30"], "max_concurrent": 1},
        agents__broken={"kind": "command", "command": "false", "max_concurrent": 4},
        routing__rules=[
            {"name": "gate", "pattern": "^deploy", "category": "devops", "agent": "echo", "require_approval": True}
        ],
    )
    scrape_store = Store(app.store.path)  # its own connection, as the bot gives it
    metrics = Metrics(scrape_store, app.clock, channels=["console", "slack"])
    app.engine.listeners.append(metrics.on_event)
    server = MetricsServer(metrics, "127.0.0.1", 0)
    assert app.engine.acquire()
    await app.engine.start()
    server.start()
    cwd = str(tmp_path)
    try:
        runs = [app.service.delegate(f"write module {i}", agent="standin", cwd=cwd).task.id for i in range(3)]
        runs += [app.service.delegate(f"break {i}", agent="broken", cwd=cwd).task.id for i in range(2)]
        for task_id in runs:
            await app.engine.wait_finished(task_id, timeout=30)
        running = app.service.delegate("sleep on it", agent="sleeper", cwd=cwd).task.id
        queued = app.service.delegate("sleep again", agent="sleeper", cwd=cwd).task.id
        app.service.delegate("deploy to production", cwd=cwd)
        deadline = time.monotonic() + 15
        while app.store.get_task(running).started_at is None:
            assert time.monotonic() < deadline, "the sleeper never started"
            await asyncio.sleep(0.05)
        now = time.time()
        late, blocked = (Outbound(text, kind=OutKind.COMPLETION) for text in ("late", "blocked"))
        app.store.enqueue("slack", late, chat_id="C1", dedupe_key="s1", ts=now - 40)
        app.store.enqueue("slack", blocked, chat_id="C2", dedupe_key="s2", ts=now - 20)
        app.store.mark_given_up(app.store.outbox_queue("slack")[1].id, "channel_not_found", now)
        app.store.journal_inbound("telegram:77", "telegram", {"update_id": 77}, now)  # received, not handled
        samples = await asyncio.to_thread(scrape, server.url)
        console_waiting = len(app.store.outbox_queue("console"))
        totals = {agent: usd for agent, usd, _ in app.store.cost_totals()["by_agent"]}
    finally:
        for task in app.store.active_tasks():
            app.service.cancel(task.id)
        for task in app.store.list_tasks(states=[TaskState.RUNNING]):
            await app.engine.wait_finished(task.id, timeout=15)
        server.stop()
        await app.engine.stop()
        scrape_store.close()

    assert {state.value: value(samples, "orchestra_tasks", state=state.value) for state in TaskState} == {
        **{state.value: 0 for state in TaskState},
        "succeeded": 3, "failed": 2, "running": 1, "queued": 1, "awaiting_approval": 1,
    }  # fmt: skip
    assert queued == "t7" and running == "t6"
    # six tasks left the queue and started; five of them finished
    assert value(samples, "orchestra_queue_wait_seconds_count") == 6
    assert value(samples, "orchestra_dispatch_latency_seconds_count") == 6
    assert value(samples, "orchestra_completion_latency_seconds_count") == 5
    assert value(samples, "orchestra_dispatch_latency_seconds_bucket", le="10.0") == 6, "each started within 10 s"
    assert 0 < value(samples, "orchestra_dispatch_latency_seconds_sum") < 60
    assert value(samples, "orchestra_completion_latency_seconds_bucket", le="5.0") == 5
    # the cost counters are the store's own totals
    assert set(totals) == {"standin", "broken"}
    for agent, usd in totals.items():
        assert value(samples, "orchestra_cost_usd_total", agent=agent) == pytest.approx(usd)
    assert value(samples, "orchestra_cost_usd_total", agent="standin") > 0
    assert value(samples, "orchestra_runs_total", agent="standin") == 3
    assert value(samples, "orchestra_runs_cost_unknown_total", agent="broken") == 2
    standin_input = sum(app.store.get_task(t).input_tokens for t in runs[:3])
    assert standin_input > 0
    assert value(samples, "orchestra_tokens_total", agent="standin", type="input") == standin_input
    # the backlog: console notifications nobody printed yet; one Slack message waiting, one refused
    assert value(samples, "orchestra_outbox_pending", channel="console") == console_waiting > 0
    assert value(samples, "orchestra_outbox_pending", channel="slack") == 1
    assert value(samples, "orchestra_outbox_given_up_total", channel="slack") == 1
    assert 40 <= value(samples, "orchestra_outbox_oldest_pending_age_seconds", channel="slack") < 120
    assert value(samples, "orchestra_inbound_updates", state="pending") == 1

    # A restarted bot: the counters read from the store are where they were, the histograms start again.
    again = Store(app.store.path)
    try:
        body, content_type = Metrics(again, SystemClock(), channels=["console"]).render()
    finally:
        again.close()
    assert content_type.startswith("text/plain")
    restarted = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert value(restarted, "orchestra_cost_usd_total", agent="standin") == pytest.approx(totals["standin"])
    assert value(restarted, "orchestra_dispatch_latency_seconds_count") == 0


def test_the_endpoint_serves_get_metrics_only_and_stops_cleanly(tmp_path: Path) -> None:
    store = Store(tmp_path / "orchestra.db")
    server = MetricsServer(Metrics(store, SystemClock()), "127.0.0.1", 0)
    server.start()
    try:
        base = server.url.removesuffix("/metrics")
        assert value(scrape(server.url + "?x=1"), "orchestra_tasks", state="queued") == 0
        for path, method, status in (("/", "GET", 404), ("/metrics/x", "GET", 404), ("/metrics", "POST", 405)):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(base + path, method=method), timeout=5)
            assert refused.value.code == status
        port = server.port
        taken = rf"^metrics: cannot listen on 127\.0\.0\.1:{port} \(Address already in use\)$"
        with pytest.raises(MetricsUnavailable, match=taken):
            MetricsServer(Metrics(store, SystemClock()), "127.0.0.1", port).start()
    finally:
        server.stop()
        store.close()
    server.stop()  # twice is harmless
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url, timeout=2)


def test_metrics_config_is_off_by_default_and_errors_name_the_key() -> None:
    shipped, _ = load_config(ROOT / "bots.yaml")
    assert (shipped.metrics.enabled, shipped.metrics.listen, shipped.metrics.port) == (False, "127.0.0.1", 9464)
    data = yaml.safe_load((ROOT / "bots.yaml").read_text())
    data["metrics"] = {"enabled": True, "port": 70000, "colour": "red"}
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert "metrics.port: must be ≤ 65535" in str(error.value)
    assert "metrics.colour: unknown key" in str(error.value)


# -- the bot process ----------------------------------------------------------------------------------
def test_the_bot_listens_on_no_tcp_port_by_default(write_config: Callable[..., Path], bots: Callable[..., Bot]) -> None:
    bot = bots(write_config())
    bot.wait_started()
    time.sleep(0.3)
    assert listening_ports(bot.proc.pid) == set()
    assert bot.stop() == 0
    assert "metrics" not in bot.output()


def test_the_bot_serves_telegram_health_and_doctor_reads_it(
    write_config: Callable[..., Path],
    bots: Callable[..., Bot],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeTelegram().start()
    port = free_port()
    try:
        telegram = {"enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV,
                    "allowed_user_ids": [ALICE["id"]], "poll_timeout_s": 1, "stall_after_s": 5}  # fmt: skip
        routing = {"default_agent": "standin", "categories": {}}  # no agent doctor would miss
        config = write_config(telegram=telegram, metrics={"enabled": True, "port": port}, routing=routing)
        bot = bots(config, {TOKEN_ENV: TOKEN})
        bot.wait_started()
        url = f"http://127.0.0.1:{port}/metrics"
        samples = until(
            lambda: (s := scrape(url)) and value(s, "orchestra_transport_up", transport="telegram") == 1 and s,
            "Telegram reported up",
        )
        assert value(samples, "orchestra_transport_last_contact_age_seconds", transport="telegram") < 10
        assert value(samples, "orchestra_outbox_pending", channel="telegram") >= 0
        assert listening_ports(bot.proc.pid) == {port}, "metrics only, on the configured port"

        monkeypatch.setenv(TOKEN_ENV, TOKEN)
        code, lines = doctor(config, capsys)
        assert code == 0, lines
        assert lines["bot"].startswith(f"ok running (pid {bot.proc.pid})")
        assert lines["metrics"] == f"ok serving http://127.0.0.1:{port}/metrics (the bot)"
        assert lines["telegram"].startswith("ok on (polling) · 1 user(s) allowed")
        assert f"${TOKEN_ENV} set" in lines["telegram"] and TOKEN not in str(lines)
        assert lines["telegram live"].startswith("ok up · last contact")
        assert lines["outbox telegram"].startswith("ok 0 waiting")

        assert bot.stop() == 0
        assert f"metrics: {url}" in bot.output()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url, timeout=2)
    finally:
        fake.stop()


class _OtherExporter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"node_cpu_seconds_total 1\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_taken_port_costs_the_metrics_not_the_bot_and_doctor_fails(
    write_config: Callable[..., Path], bots: Callable[..., Bot], capsys: pytest.CaptureFixture[str]
) -> None:
    other = ThreadingHTTPServer(("127.0.0.1", 0), _OtherExporter)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    port = int(other.server_address[1])
    try:
        config = write_config(metrics={"enabled": True, "port": port})
        bot = bots(config)
        bot.wait_started()
        line = f"orchestra: metrics: cannot listen on 127.0.0.1:{port} (Address already in use)"
        until(lambda: line in bot.output(), "the one line about the port")
        assert "Traceback" not in bot.output()
        time.sleep(0.3)
        assert bot.proc.poll() is None, "the bot keeps running without metrics"
        code, lines = doctor(config, capsys)
        assert code == 1
        assert lines["metrics"].startswith(f"NO 127.0.0.1:{port} is in use by something else")
        assert bot.stop() == 0
    finally:
        other.shutdown()
        other.server_close()


def test_doctor_names_missing_secrets_and_the_backlog_without_a_bot(
    write_config: Callable[..., Path], home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_TEST_SLACK_BOT", "xoxb-very-secret-value")
    monkeypatch.delenv("ORCH_TEST_SLACK_SIGNING", raising=False)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    port = free_port()
    config = write_config(
        telegram={"enabled": True, "token_env": TOKEN_ENV},
        slack={"enabled": True, "mode": "http", "bot_token_env": "ORCH_TEST_SLACK_BOT",
               "signing_secret_env": "ORCH_TEST_SLACK_SIGNING", "allowed_user_ids": ["U1"]},
        metrics={"enabled": True, "port": port},
    )  # fmt: skip
    store = Store(home / "orchestra.db")
    try:
        done = Outbound("done", kind=OutKind.COMPLETION)
        store.enqueue("telegram", done, chat_id="1", dedupe_key="a", ts=time.time() - 3600)
        store.enqueue("telegram", done, chat_id="2", dedupe_key="b", ts=time.time())
    finally:
        store.close()
    code, lines = doctor(config, capsys)
    assert code == 1
    assert lines["bot"].startswith("ok not running")
    assert lines["metrics"] == f"ok 127.0.0.1:{port} is free: `orchestra bot` will serve /metrics there"
    assert lines["telegram"].startswith("NO on (polling) · nobody allowed in")
    assert lines["telegram"].endswith(f"not set: ${TOKEN_ENV}")
    assert lines["slack"] == (
        "NO on (http) · 1 user(s) allowed · 0 notify channel(s) · not set: $ORCH_TEST_SLACK_SIGNING"
    )
    assert "xoxb-very-secret-value" not in str(lines)
    assert lines["outbox telegram"] == "ok 2 waiting (oldest 1h00m) · 0 given up · sent when `orchestra bot` runs"
