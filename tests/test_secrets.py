"""Known secrets go in, a full scenario runs, and not one byte of them comes out anywhere.

The bot runs as a user starts it (real entry point, real tmux) against the fake Bot API. The
Telegram token, the Slack tokens and signing secret, the webhook secret and two agents' API keys
(``env_from``) are set to known values in the bot's environment; one agent is the stand-in, one is
a CLI that prints its environment and its key in an error (as real CLIs do on a 401). Then the
bot's log, the CLI's output, every file of the data directory (the store's every table included),
and every message sent to Telegram are scanned for the values.

Then the engine on its own: what an agent inherits (an allowlist), how its key reaches it (never a
command line; stderr redacted as written, even when the runner is killed), and a secret pasted
into a task (stored redacted, handed to the agent as sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import ConfigError
from core.models import TaskState
from core.redact import Redactor, StreamRedactor
from tests.conftest import ROOT, orchestra, requires_tmux
from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram

pytestmark = requires_tmux

AGENT_KEY = "sk-ant-api03-KNOWN-secret-value-0042"
OTHER_KEY = "sk-proj-OTHER-agents-key-value-7731"
SLACK_BOT = "xoxb-1111-2222-KNOWN-slack-bot-token"
SLACK_APP = "xapp-1-A111-KNOWN-slack-app-token"
SLACK_SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
WEBHOOK_SECRET = "KNOWN_webhook_secret_token_0042"
KEY_ENV = "ORCH_TEST_AGENT_KEY"
OTHER_ENV = "ORCH_TEST_OTHER_KEY"
TOKEN_ENV = "ORCH_TEST_TELEGRAM_TOKEN"
SECRET_ENV = {
    KEY_ENV: AGENT_KEY,
    OTHER_ENV: OTHER_KEY,
    TOKEN_ENV: TOKEN,
    "ORCH_TEST_SLACK_BOT": SLACK_BOT,
    "ORCH_TEST_SLACK_APP": SLACK_APP,
    "ORCH_TEST_SLACK_SIGNING": SLACK_SIGNING,
    "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
}
SECRETS = (*SECRET_ENV.values(), TOKEN.split(":", 1)[1])
# Where the config names them: two agents' env_from, the chat tokens, the signing secret.
SECRET_CONFIG: dict[str, Any] = {
    "telegram__token_env": TOKEN_ENV,
    "slack__bot_token_env": "ORCH_TEST_SLACK_BOT",
    "slack__app_token_env": "ORCH_TEST_SLACK_APP",
    "slack__signing_secret_env": "ORCH_TEST_SLACK_SIGNING",
    "agents__standin__env_from": {"ANTHROPIC_API_KEY": KEY_ENV},
    "agents__coder": {"kind": "command", "command": "true", "env_from": {"OPENAI_API_KEY": OTHER_ENV}},
}


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
        "args": ["-c", ('echo "starting with key $ANTHROPIC_API_KEY"; env; echo "401 $ANTHROPIC_API_KEY" >&2; env >&2; '
                        f'echo "$TELEGRAM_BOT_TOKEN ${OTHER_ENV} $OPENAI_API_KEY"; exit 1')],
    }  # fmt: skip
    data["agents"]["coder"] = {"kind": "command", "command": "true", "env_from": {"OPENAI_API_KEY": OTHER_ENV}}
    data["slack"] = {"enabled": False, "bot_token_env": "ORCH_TEST_SLACK_BOT", "app_token_env": "ORCH_TEST_SLACK_APP",
                     "signing_secret_env": "ORCH_TEST_SLACK_SIGNING"}  # fmt: skip
    data["telegram"] = {
        "enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV, "allowed_user_ids": [ALICE["id"]],
        "poll_timeout_s": 1, "progress_interval_s": 0.2, "retry_base_s": 0.2, "retry_max_s": 1,
    }  # fmt: skip
    cfg = tmp_path / "bots.yaml"
    cfg.write_text(yaml.safe_dump(data))
    env = {"ORCHESTRA_HOME": str(home), **SECRET_ENV, "TELEGRAM_BOT_TOKEN": TOKEN, "OPENAI_API_KEY": OTHER_KEY}
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
        fake.say(f"@leaky fix the login bug; the staging key is {OTHER_KEY}")  # a secret pasted into a task
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
    output = (home / "tasks" / "t2" / "output.log").read_text(errors="replace")
    assert "ANTHROPIC_API_KEY=[redacted]" in output
    # ... and nothing of the bot's environment but the allowlist: not even the names of its secrets.
    assert not [name for name in (*SECRET_ENV, "TELEGRAM_BOT_TOKEN", "OPENAI_API_KEY") if f"{name}=" in output]


def test_the_config_knows_every_secret_it_names(monkeypatch: pytest.MonkeyPatch, make_app: Any) -> None:
    _set_secrets(monkeypatch)
    app = make_app(**SECRET_CONFIG)
    # Two agents' keys, the Telegram token (and its secret half), Slack's tokens and signing secret, the webhook's.
    assert set(SECRETS) <= set(app.config.secret_values())
    assert TOKEN.split(":")[0] not in app.config.secret_values()  # the bot's id alone is no secret


# -- the engine on its own: the agent's environment, the handoff, the task text ----------------------


def _set_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)  # the usual names too, set but named by no agent
    monkeypatch.setenv("OPENAI_API_KEY", OTHER_KEY)


def _sh(script: str, **more: Any) -> dict[str, Any]:
    return {"kind": "command", "command": "sh", "args": ["-c", script], "max_concurrent": 4, **more}


def _leaks_in(home: Path) -> list[str]:
    """Every known secret value found in any file of the data dir or any text of the store."""
    leaks = []
    for path in sorted(p for p in home.rglob("*") if p.is_file() and not p.is_socket()):
        leaks += _occurrences(path.read_bytes(), str(path.relative_to(home)))
    for column, value in _store_text(home / "orchestra.db"):
        leaks += _occurrences(value, f"the store's {column}")
    return leaks


def _tmux_shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A ``tmux`` first on PATH that records every command line Orchestra gives tmux, then runs the real one.

    It refuses ``new-window`` while the returned marker file exists (a launch that fails).
    """
    real = shutil.which("tmux")
    assert real is not None
    shim = tmp_path / "shim"
    shim.mkdir()
    argv_log, refuse = tmp_path / "tmux-argv.log", tmp_path / "refuse-new-window"
    (shim / "tmux").write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> '{argv_log}'\n"
        f"if [ -e '{refuse}' ]; then case \" $* \" in *' new-window '*) echo refused >&2; exit 1;; esac; fi\n"
        f"exec '{real}' \"$@\"\n"
    )
    (shim / "tmux").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    return argv_log, refuse


def _command_lines() -> list[bytes]:
    """What ``ps`` shows of every process: its argv."""
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" "))
    return lines


async def _until(check: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _agent_env(app: Any, agent: str, cwd: Path) -> dict[str, str]:
    """Run one task of an agent that prints ``env``; its variables as the output log has them."""
    assert app.engine.acquire()
    await app.engine.start()
    try:
        task = app.service.delegate("show your environment", agent=agent, cwd=str(cwd)).task
        await app.engine.wait_finished(task.id, timeout=30)
    finally:
        await app.engine.stop()
    lines = (app.home / "tasks" / task.id / "output.log").read_text().splitlines()
    return {line.partition("=")[0]: line.partition("=")[2] for line in lines}


async def test_an_agent_inherits_only_the_allowlist_and_its_own_variables(
    make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_secrets(monkeypatch)
    monkeypatch.setenv("ORCH_TEST_NOT_PASSED", "kept-from-agents")
    monkeypatch.setenv("LC_TIME", "C.UTF-8")
    dump = _sh("env; env >&2", env={"MY_SETTING": "on"}, env_from={"ANTHROPIC_API_KEY": KEY_ENV})
    app = make_app(agents__dump=dump, **SECRET_CONFIG)
    seen = await _agent_env(app, "dump", tmp_path)
    assert seen["ANTHROPIC_API_KEY"] == "[redacted]"  # its own key, redacted in what Orchestra keeps
    assert seen["MY_SETTING"] == "on" and seen["LC_TIME"] == "C.UTF-8"
    assert seen["PATH"] == os.environ["PATH"] and seen["HOME"] == os.environ["HOME"]
    inherited = [name for name in (*SECRET_ENV, "TELEGRAM_BOT_TOKEN", "OPENAI_API_KEY", "ORCH_TEST_NOT_PASSED")
                 if name in seen]  # fmt: skip
    assert not inherited, f"the agent inherited {inherited}"
    assert "ANTHROPIC_API_KEY=[redacted]" in (app.home / "tasks" / "t1" / "stderr.log").read_text()
    assert not _leaks_in(app.home)


async def test_env_pass_names_more_variables_one_agent_gets(
    make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_TEST_PASSED", "passed-on-by-name")
    monkeypatch.setenv("ORCH_TEST_NOT_PASSED", "kept-from-agents")
    app = make_app(agents__dump=_sh("env", env_pass=["ORCH_TEST_PASSED"]))
    seen = await _agent_env(app, "dump", tmp_path)
    assert seen["ORCH_TEST_PASSED"] == "passed-on-by-name" and "ORCH_TEST_NOT_PASSED" not in seen


def test_env_pass_takes_names_only(make_app: Any) -> None:
    with pytest.raises(ConfigError, match=r"agents\.dump\.env_pass"):
        make_app(agents__dump=_sh("env", env_pass=["NOT A NAME=1"]))


async def test_the_agents_key_is_on_no_command_line_and_stderr_is_redacted_as_written(
    make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_secrets(monkeypatch)
    argv_log, _ = _tmux_shim(tmp_path, monkeypatch)
    # The key once in one write, once cut across two writes (the runner reads them apart).
    script = (
        'echo "401 unauthorized: $ANTHROPIC_API_KEY" >&2; K=$ANTHROPIC_API_KEY; '
        'printf "again: %s" "${K%-*}" >&2; sleep 0.3; echo "-${K##*-}" >&2; echo ready; exec sleep 60'
    )
    slow = _sh(script, env_from={"ANTHROPIC_API_KEY": KEY_ENV})
    app = make_app(agents__slow=slow, **SECRET_CONFIG)
    assert app.engine.acquire()
    await app.engine.start()
    try:
        task = app.service.delegate("wait a while", agent="slow", cwd=str(tmp_path)).task
        task_dir = app.home / "tasks" / task.id
        stderr_log = task_dir / "stderr.log"
        await _until(lambda: stderr_log.exists() and b"again" in stderr_log.read_bytes(), "the agent's stderr")
        await _until(lambda: app.store.task_field(task.id, "runner_pid"), "the runner's start")
        # While it runs: stderr.log is written redacted, the handoff is gone, no argv holds a secret.
        await _until(lambda: stderr_log.read_text().count("\n") == 2, "the second write")
        assert stderr_log.read_text() == "401 unauthorized: [redacted]\nagain: [redacted]\n"
        assert not (task_dir / "launch.bin").exists()
        leaks = [hit for line in _command_lines() for hit in _occurrences(line, f"the command line {line[:60]!r}")]
        leaks += _occurrences(argv_log.read_bytes(), "a tmux command line")
        assert not leaks, "\n".join(leaks)
        # A runner killed outright leaves nothing behind to scrub.
        os.kill(int(app.store.task_field(task.id, "runner_pid")), signal.SIGKILL)
        app.engine.sweep()
        await app.engine.wait_finished(task.id, timeout=30)
    finally:
        for event in app.store.events(task.id, kinds=["started"]):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(event["data"]["pid"]), signal.SIGKILL)
        await app.engine.stop()
    assert stderr_log.read_text() == "401 unauthorized: [redacted]\nagain: [redacted]\n"
    assert not _leaks_in(app.home)


async def test_a_launch_that_fails_leaves_no_secret_file(
    make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_secrets(monkeypatch)
    _, refuse = _tmux_shim(tmp_path, monkeypatch)
    app = make_app(agents__echo=_sh('echo "$1"', args=["-c", 'echo "$1"', "sh", "{task}"]), **SECRET_CONFIG)
    assert app.engine.acquire()
    await app.engine.start()  # the session exists before new-window is refused
    refuse.touch()
    try:
        task = app.service.delegate(f"deploy with key {OTHER_KEY}", agent="echo", cwd=str(tmp_path)).task
        task = await app.engine.wait_finished(task.id, timeout=30)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.FAILED and "could not start" in task.error
    assert not (app.home / "tasks" / task.id / "launch.bin").exists()
    assert not _leaks_in(app.home)


@pytest.mark.parametrize(
    ("mode", "args"),
    [
        ("arg", ["-c", 'printf %s "$1" > "$0.got"', "{out}", "{task}"]),
        ("stdin", ["-c", 'cat > "$0.got"', "{out}"]),
        ("file", ["-c", 'cat "$1" > "$0.got"', "{out}", "{task_file}"]),
    ],
)
async def test_a_secret_pasted_into_a_task_reaches_the_agent_and_nothing_else(
    mode: str, args: list[str], make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_secrets(monkeypatch)
    out = tmp_path / "outside" / "agent"  # outside the data dir: what the agent was given
    out.parent.mkdir()
    agent = {"kind": "command", "command": "sh", "args": [a.replace("{out}", str(out)) for a in args]}
    app = make_app(agents__paste=agent, **SECRET_CONFIG)
    text = f"deploy with OPENAI_API_KEY={OTHER_KEY} and the bot token {TOKEN}, then report"
    assert app.engine.acquire()
    await app.engine.start()
    try:
        task = app.service.delegate(text, agent="paste", cwd=str(tmp_path)).task
        task = await app.engine.wait_finished(task.id, timeout=30)
    finally:
        await app.engine.stop()
    assert Path(f"{out}.got").read_text() == text  # the agent got the text as it was sent
    assert task.state == TaskState.SUCCEEDED
    assert task.text == "deploy with OPENAI_API_KEY=[redacted] and the bot token [redacted], then report"
    task_dir = app.home / "tasks" / task.id
    assert (task_dir / "task.md").read_text() == task.text
    completion = app.store.outbox_queue("console", task_id=task.id)[0].text
    assert "deploy with OPENAI_API_KEY=[redacted] and the bot token [redacted]" in completion
    assert not _leaks_in(app.home)
    if mode == "arg":  # a retry hands the agent the text as it was first sent, too
        Path(f"{out}.got").unlink()
        assert app.engine.acquire()
        await app.engine.start()
        try:
            retry = app.service.retry(task.id).task
            retry = await app.engine.wait_finished(retry.id, timeout=30)
        finally:
            await app.engine.stop()
        assert Path(f"{out}.got").read_text() == text and retry.text == task.text
        assert not _leaks_in(app.home)


# -- the agent's parents: its runner, the tmux server, the on-demand engine ----------------------------


def _snoop(out: Path, socket_name: str) -> dict[str, Any]:
    """An agent that saves its parent's (the runner's) environment, tmux's global and session ones, and its own."""
    script = (
        'cat /proc/$PPID/environ > "$0/parent.env"; '
        f'tmux -L {socket_name} show-environment -g > "$0/tmux.env" 2>&1; '
        f'tmux -L {socket_name} show-environment -t test >> "$0/tmux.env" 2>&1; env > "$0/agent.env"'
    )
    return _sh(script, args=["-c", script, str(out)], env_from={"ANTHROPIC_API_KEY": KEY_ENV})


def _server_environ(socket_name: str) -> bytes:
    pid = subprocess.run(["tmux", "-L", socket_name, "display-message", "-p", "#{pid}"], capture_output=True,
                         text=True, check=True).stdout.strip()  # fmt: skip
    return Path(f"/proc/{pid}/environ").read_bytes()


def _assert_snooped_clean(out: Path, socket_name: str) -> None:
    """Nothing of the agent's parents holds a secret; the agent itself holds its own key and no other."""
    parent, tmux_env = (out / "parent.env").read_bytes(), (out / "tmux.env").read_bytes()
    assert b"PATH=" in parent and b"PATH=" in tmux_env  # it really read them
    leaks = _occurrences(parent, "the runner's environment") + _occurrences(tmux_env, "tmux's environment")
    leaks += _occurrences(_server_environ(socket_name), "the tmux server's environment")
    own = (out / "agent.env").read_text()
    assert f"ANTHROPIC_API_KEY={AGENT_KEY}\n" in own
    leaks += _occurrences(own.replace(AGENT_KEY, ""), "the agent's environment")
    assert not leaks, "\n".join(leaks)


async def test_no_secret_reaches_an_agent_through_its_runner_or_tmux(
    make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, socket_name: str
) -> None:
    _set_secrets(monkeypatch)
    out = tmp_path / "outside"
    out.mkdir()
    app = make_app(agents__snoop=_snoop(out, socket_name), **SECRET_CONFIG)
    assert app.engine.acquire()
    await app.engine.start()  # the engine in this process, which holds every secret, starts tmux
    try:
        task = app.service.delegate("look around", agent="snoop", cwd=str(tmp_path)).task
        task = await app.engine.wait_finished(task.id, timeout=30)
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED
    _assert_snooped_clean(out, socket_name)


def test_the_on_demand_engine_gets_its_keys_and_tmux_none(
    make_app: Any, tmp_path: Path, home: Path, socket_name: str
) -> None:
    out = tmp_path / "outside"
    out.mkdir()
    make_app(agents__snoop=_snoop(out, socket_name), **SECRET_CONFIG)  # writes bots.yaml
    abandoned = home / "engine-env-1-1.bin"  # a handoff whose engine was killed before it read it
    abandoned.write_text(f"{KEY_ENV}={AGENT_KEY}")
    os.utime(abandoned, (time.time() - 120, time.time() - 120))
    env = {**SECRET_ENV, "TELEGRAM_BOT_TOKEN": TOKEN, "OPENAI_API_KEY": OTHER_KEY}
    done = orchestra("delegate", "--task", "@snoop look around", config=tmp_path / "bots.yaml", env=env)
    assert done.returncode == 0, done.stderr
    engine = subprocess.run(["tmux", "-L", socket_name, "list-panes", "-t", "test:=_engine", "-F", "#{pane_pid}"],
                            capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    assert engine, "no on-demand engine window"
    cmdline = Path(f"/proc/{engine}/cmdline").read_bytes()
    assert b"engine" in cmdline and not _occurrences(cmdline, "the engine's command line")
    _wait_state(home, "t1", "succeeded")
    _assert_snooped_clean(out, socket_name)  # the engine still gave the agent its key
    assert not list(home.glob("engine-env-*")) and not _leaks_in(home)


def test_an_engine_window_that_fails_leaves_no_key_handoff(
    make_app: Any, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, refuse = _tmux_shim(tmp_path, monkeypatch)
    refuse.touch()
    make_app(**SECRET_CONFIG)
    env = {**SECRET_ENV, "TELEGRAM_BOT_TOKEN": TOKEN, "OPENAI_API_KEY": OTHER_KEY}
    done = orchestra("delegate", "--task", "write the docs", config=tmp_path / "bots.yaml", env=env)
    assert done.returncode == 1 and "is queued but cannot start" in done.stderr
    assert not list(home.glob("engine-env-*")) and not _leaks_in(home)


def test_redaction_takes_the_longest_secret_and_puts_each_back_by_name() -> None:
    redactor = Redactor({"SHORT": "abcdef123456", "LONG": "abcdef123456-and-more", "QUOTED": 'pa"ss\\word'})
    text = 'use abcdef123456-and-more, then abcdef123456; json {"k": "pa\\"ss\\\\word"} and pa"ss\\word'
    clean, refs = redactor.redact_refs(text)
    assert clean == 'use [redacted], then [redacted]; json {"k": "[redacted]"} and [redacted]'
    assert [name for _, name in refs] == ["LONG", "SHORT", "QUOTED"]  # the JSON-escaped one has no name to restore
    environ = {"SHORT": "abcdef123456", "LONG": "abcdef123456-and-more", "QUOTED": 'pa"ss\\word'}
    assert Redactor.restore(clean, refs, environ) == text.replace('"pa\\"ss\\\\word"', '"[redacted]"')
    assert Redactor.restore(clean, refs, {}) == clean  # a variable we no longer have stays redacted


def test_a_stream_is_redacted_whatever_the_reads_cut() -> None:
    stream = StreamRedactor(Redactor({"KEY": AGENT_KEY}))
    data = f"401: {AGENT_KEY}\nagain {AGENT_KEY}".encode()
    out = b"".join(stream.feed(data[i : i + 1]) for i in range(len(data))) + stream.flush()
    assert out == b"401: [redacted]\nagain [redacted]"
