"""Known secrets go in, a full scenario runs, and not one byte of them comes out anywhere.

The bot runs as a user starts it (real entry point, real tmux) against the fake Bot API. The
Telegram token and an agent's API key (``env_from``) are set to known values; one agent is the
stand-in, one is a CLI that prints its key in an error (as real CLIs do on a 401). Then the bot's
log, the CLI's output, every file of the data directory (the store's every table included), and
every message sent to Telegram are scanned for the values.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, orchestra, requires_tmux
from tests.fake_telegram import ALICE, TOKEN, FakeTelegram

pytestmark = requires_tmux

AGENT_KEY = "sk-ant-api03-KNOWN-secret-value-0042"
KEY_ENV = "ORCH_TEST_AGENT_KEY"
TOKEN_ENV = "ORCH_TEST_TELEGRAM_TOKEN"
SECRETS = (AGENT_KEY, TOKEN, TOKEN.split(":", 1)[1])


def _occurrences(text: str | bytes, where: str) -> list[str]:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return [f"{where} holds {secret[:8]}…" for secret in SECRETS if secret.encode() in data]


def _store_text(db: Path) -> list[tuple[str, str]]:
    """(table.column, value) for every text value of every table, read through SQLite."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        values = []
        for table in tables:
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info('{table}')")]
            for row in conn.execute(f"SELECT * FROM '{table}'"):
                values += [(f"{table}.{col}", str(v)) for col, v in zip(columns, row, strict=True) if v is not None]
        return values
    finally:
        conn.close()


def _wait_state(home: Path, task_id: str, state: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        conn = sqlite3.connect(home / "orchestra.db")
        try:
            row = conn.execute("SELECT state FROM tasks WHERE id = ?", (task_id,)).fetchone()
        finally:
            conn.close()
        if row and row[0] == state:
            return
        assert time.monotonic() < deadline, f"{task_id} is {row}, not {state}"
        time.sleep(0.1)


def test_no_secret_reaches_logs_store_task_files_or_chats(
    tmp_path: Path, home: Path, config_data: dict[str, Any], repo: Path
) -> None:
    fake = FakeTelegram().start()
    data = json.loads(json.dumps(config_data))
    data["workspace"] = str(repo)
    data.setdefault("digest", {})["enabled"] = False
    data["notify"] = {"console": True}
    data["agents"]["standin"]["env_from"] = {"ANTHROPIC_API_KEY": KEY_ENV}
    data["agents"]["leaky"] = {
        "kind": "command", "command": "sh", "max_concurrent": 2, "env_from": {"ANTHROPIC_API_KEY": KEY_ENV},
        "args": ["-c", 'echo "starting with key $ANTHROPIC_API_KEY"; echo "401 $ANTHROPIC_API_KEY" >&2; exit 1'],
    }  # fmt: skip
    data["telegram"] = {
        "enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV, "allowed_user_ids": [ALICE["id"]],
        "poll_timeout_s": 1, "progress_interval_s": 0.2, "retry_base_s": 0.2, "retry_max_s": 1,
    }  # fmt: skip
    cfg = tmp_path / "bots.yaml"
    cfg.write_text(yaml.safe_dump(data))
    env = {"ORCHESTRA_HOME": str(home), TOKEN_ENV: TOKEN, KEY_ENV: AGENT_KEY}
    log = tmp_path / "bot.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(cfg), "bot"],
        cwd=str(ROOT), env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    cli_output: list[str] = []
    try:
        fake.wait_for(lambda: fake.commands, what="the bot's start")
        fake.say("Create User model")
        fake.wait_for(lambda: fake.find(ALICE["id"], "t1 succeeded"), what="the stand-in's completion")
        fake.say("@leaky fix the login bug")
        fake.wait_for(lambda: fake.find(ALICE["id"], "t2 failed"), what="the leaky agent's failure")
        done = fake.find(ALICE["id"], "t2 failed")[0]
        fake.tap(done, "log:t2")
        fake.wait_for(lambda: [m for m in fake.sent if m.kind == "document"], what="the log document")
        for args in (("delegate", "--task", "@leaky add a README", "--json"), ("status",), ("doctor",)):
            out = orchestra(*args, config=cfg, env=env)
            cli_output += [out.stdout, out.stderr]
        _wait_state(home, "t3", "failed")
        before = len(fake.sent)
        for command in ("/status", "/log t2", "/show t2", "/cost"):
            fake.say(command)
        fake.wait_for(lambda: len(fake.sent) >= before + 4, what="the four replies")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        fake.stop()

    leaks = _occurrences(log.read_bytes(), "the bot's log")
    leaks += [hit for i, text in enumerate(cli_output) for hit in _occurrences(text, f"CLI output {i}")]
    for path in sorted(p for p in home.rglob("*") if p.is_file() and not p.is_socket()):
        leaks += _occurrences(path.read_bytes(), str(path.relative_to(home)))
    for column, value in _store_text(home / "orchestra.db"):
        leaks += _occurrences(value, f"the store's {column}")
    for call in fake.calls:
        if call.method != "getUpdates":
            leaks += _occurrences(json.dumps(call.params, ensure_ascii=False), f"Telegram {call.method}")
    for message in fake.sent:
        leaks += _occurrences(message.text + (message.file[1].decode(errors="replace") if message.file else ""),
                              "a sent message")  # fmt: skip
    assert not leaks, "\n".join(leaks)
    # The scenario really ran: the key reached the agent (it printed where it could), and the chat saw the failure.
    assert fake.find(ALICE["id"], "t2 failed") and (home / "tasks" / "t2").is_dir()
    assert "[redacted]" in (home / "tasks" / "t2" / "output.log").read_text(errors="replace")


@pytest.mark.parametrize("secret", [AGENT_KEY])
def test_the_config_knows_its_secret_values(secret: str, monkeypatch: pytest.MonkeyPatch, make_app: Any) -> None:
    monkeypatch.setenv(KEY_ENV, secret)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    app = make_app(agents__standin__env_from={"ANTHROPIC_API_KEY": KEY_ENV}, telegram__token_env=TOKEN_ENV)
    assert {secret, TOKEN} <= set(app.config.secret_values())
