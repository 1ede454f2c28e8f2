"""The operations half of ``orchestra doctor``: the bot, metrics, chat transports, outbox backlogs.

Each check is ``(what, ok, detail)`` like ``Service.doctor``'s; one that is not ok makes the command
exit non-zero. Secrets are named by their environment variable, never shown. When the running bot
serves metrics, the live state of its transports is read from there (another process cannot see
inside the bot otherwise).
"""

from __future__ import annotations

import importlib
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bot.app import App
from core.config import MetricsConfig
from core.engine import lock_holder
from core.notify import chat_channels
from core.store import INBOUND_ATTEMPTS
from core.text import format_duration

Check = tuple[str, bool, str]
STUCK_AFTER_S = 300.0
"""A message waiting longer than this while the bot runs means delivery is stuck, not backing off."""


@dataclass(frozen=True)
class _Holder:
    """Who holds the engine lock: ``role`` is ``bot``, ``engine`` (on demand) or ``cli`` (a --wait)."""

    pid: int
    role: str


def operations_checks(app: App) -> list[Check]:
    holder = _lock_holder(app.home)
    bot = holder is not None and holder.role == "bot"
    scraped = _scrape(app.config.metrics) if app.config.metrics.enabled else None
    checks = [_bot_check(holder), _metrics_check(app.config.metrics, bot, scraped)]
    checks += _telegram_checks(app, bot, scraped)
    checks += _slack_checks(app, bot, scraped)
    checks += _outbox_checks(app, bot)
    checks += _inbound_checks(app, bot)
    return checks


# -- the bot --------------------------------------------------------------------------------------
def _lock_holder(home: Path) -> _Holder | None:
    held = lock_holder(home)
    if held is None:
        return None
    pid, role = held
    if role:
        return _Holder(pid, role)
    try:  # a lock file without a role (written by an older version): ask the process's command line
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _Holder(0, "unknown")
    words = [w.decode(errors="replace") for w in argv if w]
    last = words[-1] if words else ""
    return _Holder(pid, last if last in ("bot", "engine") else "cli")


def _bot_check(holder: _Holder | None) -> Check:
    if holder is None:
        return ("bot", True, "not running: chats, the digest and metrics need `orchestra bot`")
    if holder.role == "bot":
        return ("bot", True, f"running (pid {holder.pid})")
    who = {"engine": "the on-demand engine", "cli": "a CLI waiting for its task"}.get(holder.role, "a process")
    return ("bot", True, f"not running: {who} (pid {holder.pid}) runs tasks, without chats or metrics")


# -- metrics --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scrape:
    """What the metrics port answered: ``samples`` when it was our endpoint, else ``error``."""

    samples: dict[tuple[str, str], float]
    error: str = ""
    refused: bool = False


def _scrape(settings: MetricsConfig) -> _Scrape:
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://{_host(settings.listen)}:{settings.port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return _Scrape({}, f"HTTP {exc.code}")
    except urllib.error.URLError as exc:
        refused = isinstance(exc.reason, ConnectionRefusedError)
        return _Scrape({}, str(exc.reason), refused=refused)
    except (OSError, ValueError) as exc:
        return _Scrape({}, str(exc))
    samples: dict[tuple[str, str], float] = {}
    try:
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                label = next(iter(sample.labels.values()), "") if sample.labels else ""
                samples[(sample.name, label)] = sample.value
    except ValueError:
        return _Scrape({}, "not Prometheus text")
    if ("orchestra_tasks", "queued") not in samples:
        return _Scrape({}, "not Orchestra's metrics")
    return _Scrape(samples)


def _host(listen: str) -> str:
    """Where to connect for an address the bot listens on (a wildcard means this host)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen, listen)
    return f"[{host}]" if ":" in host else host


def _metrics_check(settings: MetricsConfig, bot: bool, scraped: _Scrape | None) -> Check:
    where = f"{settings.listen}:{settings.port}"
    if not settings.enabled or scraped is None:
        return ("metrics", True, "off (metrics.enabled: false)")
    if scraped.samples:
        serving = f"serving http://{_host(settings.listen)}:{settings.port}/metrics"
        return ("metrics", True, serving + (" (the bot)" if bot else ""))
    if not scraped.refused:
        return ("metrics", False, f"{where} is in use by something else ({scraped.error}): the bot cannot serve there")
    bind_error = _bind_error(settings.listen, settings.port)
    if bind_error:
        return ("metrics", False, f"cannot listen on {where} ({bind_error})")
    if bot:
        return ("metrics", False, f"the running bot does not serve {where}: restart it (`orchestra bot`)")
    return ("metrics", True, f"{where} is free: `orchestra bot` will serve /metrics there")


def _bind_error(listen: str, port: int) -> str:
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the bot binds: TIME_WAIT is no conflict
        try:
            probe.bind((listen, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""


# -- chat transports ------------------------------------------------------------------------------
def _telegram_checks(app: App, bot: bool, scraped: _Scrape | None) -> list[Check]:
    settings = app.config.telegram
    if not settings.enabled:
        return [("telegram", True, "off (telegram.enabled: false)")]
    needed = [settings.token_env]
    if settings.mode == "webhook" and settings.webhook is not None:
        needed.append(settings.webhook.secret_env)
    users = len(settings.allowed_user_ids)
    who = f"{users} user(s) allowed" if users else "nobody allowed in (allowed_user_ids is empty)"
    detail = f"on ({settings.mode}) · {who} · {len(settings.notify_chat_ids)} notify chat(s)"
    modules = ["bot.telegram"] + (["tornado"] if settings.mode == "webhook" else [])  # PTB's webhook server
    broken = _import_check("telegram", modules, detail)
    return [broken or _secrets_check("telegram", needed, detail), *_live_check("telegram", bot, scraped)]


def _slack_checks(app: App, bot: bool, scraped: _Scrape | None) -> list[Check]:
    settings = app.config.slack
    if not settings.enabled:
        return [("slack", True, "off (slack.enabled: false)")]
    second = settings.app_token_env if settings.mode == "socket" else settings.signing_secret_env
    needed = [settings.bot_token_env, second]
    users = len(settings.allowed_user_ids)
    who = f"{users} user(s) allowed" if users else "nobody allowed in (allowed_user_ids is empty)"
    detail = f"on ({settings.mode}) · {who} · {len(settings.notify_channel_ids)} notify channel(s)"
    broken = _import_check("slack", ["bot.slack"], detail)
    return [broken or _secrets_check("slack", needed, detail), *_live_check("slack", bot, scraped)]


def _import_check(name: str, modules: list[str], detail: str) -> Check | None:
    """Import what the transport runs on, as `orchestra bot` will; a missing module is named."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or module
            return (name, False, f"{detail} · module {missing} is missing: `orchestra bot` would fail (pip install .)")
    return None


def _secrets_check(name: str, needed: list[str], detail: str) -> Check:
    missing = [env for env in needed if not os.environ.get(env, "").strip()]
    if missing:
        return (name, False, f"{detail} · not set: " + ", ".join(f"${env}" for env in missing))
    return (name, True, f"{detail} · " + ", ".join(f"${env}" for env in needed) + " set")


def _live_check(name: str, bot: bool, scraped: _Scrape | None) -> list[Check]:
    """The transport as the running bot sees it, when its metrics say."""
    if not bot:
        return []
    up = scraped.samples.get(("orchestra_transport_up", name)) if scraped is not None else None
    if up is None:
        why = "turn metrics on to see it from here" if scraped is None else "the bot's metrics cannot be read"
        return [(f"{name} live", True, f"unknown: {why}")]
    age = scraped.samples.get(("orchestra_transport_last_contact_age_seconds", name)) if scraped else None
    contact = f"last contact {format_duration(age)} ago" if age is not None else "no contact yet"
    return [(f"{name} live", up == 1.0, ("up" if up == 1.0 else "DOWN") + f" · {contact}")]


# -- outbox ---------------------------------------------------------------------------------------
def _outbox_checks(app: App, bot: bool) -> list[Check]:
    """One line per channel that is on, or that still holds messages although it is off."""
    now = app.clock.now()
    on = app.config.channels()
    checks: list[Check] = []
    for channel in dict.fromkeys([*on, "telegram", "slack"]):
        backlog = app.store.outbox_backlog(channel)
        if channel not in on and not backlog["pending"]:
            continue
        age = None if backlog["oldest_at"] is None else max(0.0, now - backlog["oldest_at"])
        waiting = f"{backlog['pending']} waiting" + (f" (oldest {format_duration(age)})" if age is not None else "")
        parts = [waiting, f"{backlog['given_up']} given up"]
        stuck = bot and channel in on and age is not None and age > STUCK_AFTER_S
        if channel not in on:
            parts.append("the channel is off: they wait until it is on again")
        elif stuck:
            parts.append(f"waiting over {format_duration(STUCK_AFTER_S)} while the bot runs: delivery is stuck")
        elif backlog["pending"] and not bot:
            parts.append("sent when `orchestra bot` runs")
        checks.append((f"outbox {channel}", not stuck, " · ".join(parts)))
    return checks


# -- inbound --------------------------------------------------------------------------------------
def _inbound_checks(app: App, bot: bool) -> list[Check]:
    """Chat updates received but not handled yet (a bot killed mid-way), and any given up on."""
    counts = app.store.inbound_counts()
    pending, failed = counts.get("pending", 0), counts.get("failed", 0)
    chats = chat_channels(app.config)
    if not chats and not pending and not failed:
        return []
    parts = [f"{counts.get('done', 0)} handled", f"{pending} waiting"]
    if pending and not bot:
        parts.append("handled when `orchestra bot` starts")
    if failed:
        parts.append(f"{failed} given up after {INBOUND_ATTEMPTS} tries in the last 30 days (the bot's log says why)")
    return [("inbound", True, " · ".join(parts))]


__all__ = ["STUCK_AFTER_S", "Check", "operations_checks"]
