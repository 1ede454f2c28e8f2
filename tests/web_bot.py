"""A dashboard under test: the engine and the web server on an event loop in a thread, as `orchestra bot` runs them.

Tests (sync Selenium, sync HTTP clients) talk to it over real HTTP on 127.0.0.1; tasks are
delegated through a second app on the same data directory, as `orchestra delegate` would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from bot.app import App, open_app
from bot.web.server import WebServer
from tests.conftest import base_config, free_port

BOT_TOKEN = "123456:TEST-TOKEN-for-the-mini-app"
ALLOWED = 111
STRANGER = 999

# A stand-in agent that prints a coloured line every 50 ms until its stop file appears (or 60 s).
TICKER = """
import os, sys, time
stop = os.path.join(os.environ["TICKER_DIR"], "stop")
for n in range(1200):
    if os.path.exists(stop):
        break
    print(f"\\x1b[32mtick {n}\\x1b[0m {sys.argv[-1][:40]}", flush=True)
    time.sleep(0.05)
"""


def sign_init_data(user_id: int, auth_date: float, token: str = BOT_TOKEN, **extra: str) -> str:
    """``initData`` as Telegram signs it (https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app)."""
    fields = {"auth_date": str(int(auth_date)), "query_id": "AAH", **extra,
              "user": json.dumps({"id": user_id, "first_name": "Al", "username": "alice"})}  # fmt: skip
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


def web_config(root: Path, port: int, socket_name: str) -> dict[str, Any]:
    data = base_config(socket_name)
    ticker = root / "ticker.py"
    ticker.write_text(TICKER)
    (root / "ticks").mkdir(exist_ok=True)
    data["agents"]["ticker"] = {"kind": "command", "command": sys.executable, "args": ["-u", str(ticker), "{task}"],
                                "env": {"TICKER_DIR": str(root / "ticks")}, "max_concurrent": 12}  # fmt: skip
    data["limits"]["max_concurrent"] = 12
    data["workspace"] = str(root)
    data["policy"]["approval_for"] = ["devops"]
    data["web"] = {"enabled": True, "port": port, "link_s": 300}
    data["telegram"].update(enabled=True, token_env="WEB_TEST_BOT_TOKEN", allowed_user_ids=[ALLOWED])
    return data


class WebBot:
    """The bot's engine and dashboard on a loop of their own; ``cli`` is a second process's view of the store."""

    def __init__(self, root: Path, *, tail_every_s: float = 0.03) -> None:
        self.root = root
        self.port = free_port()
        self.socket_name = f"orch-web-{uuid.uuid4().hex[:8]}"
        self.config_path = root / "bots.yaml"
        self.config_path.write_text(yaml.safe_dump(web_config(root, self.port, self.socket_name)))
        self.app: App = open_app(self.config_path)
        self.cli: App = open_app(self.config_path)
        self.server: WebServer | None = None
        self.tail_every_s = tail_every_s
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebBot:
        self._thread.start()
        assert self._ready.wait(30), "the bot did not start"
        return self

    def _main(self) -> None:
        self.loop.run_until_complete(self._run())

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        assert self.app.engine.acquire(role="bot")
        await self.app.engine.start()
        self.server = WebServer(self.app, tail_every_s=self.tail_every_s, list_every_s=0.5)
        await self.server.start()
        self.app.engine.listeners.append(self.server.on_event)
        self._ready.set()
        await self._stop.wait()
        await self.server.stop()
        await self.app.engine.stop()

    def stop(self) -> None:
        (self.root / "ticks" / "stop").write_text("")
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self.cli.close()
        self.app.close()
        subprocess.run(["tmux", "-L", self.socket_name, "kill-server"], capture_output=True, check=False)

    def link(self) -> str:
        """A one-time link as `orchestra web` prints it."""
        from bot.web.auth import CLI_USER
        from core.service import LOCAL

        return self.cli.service.web_link(CLI_USER, actor=LOCAL).replace("127.0.0.1", "127.0.0.1")

    def wait_for(self, check: Any, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {check}")
