"""Chat latency of the real bot process with the real Claude Code: acknowledgement, end to end, overhead.

The bot runs as a user starts it (``python -m bot --config X bot``) against the fake Bot API server
(tests/fakes/telegram.py) on 127.0.0.1; its default agent is the real ``claude`` CLI (installed under
``.agents/``, ``make agents``), pointed at the fake model server (tests/fakes/model_server.py, in a
process of its own): two model calls per run, a Write of ``hello.txt`` and the final text. For each "Create User model"
message the fake Telegram server stamps when it hands the update out and when the bot's
acknowledgement and completion arrive (one clock, this process's). The store and the runner's
files (events, ``result.json``, the task's files) say where the time in between went:

* ack path: update handed out -> journalled -> acknowledgement queued -> received;
* queue + dispatch: handed out -> task stored -> launch began (``task.md`` written) -> files and git
  baseline done (``baseline.json``) -> agent spawned (the launcher's stamp, after tmux opened the window);
* the agent's own run: spawned -> exit, as the runner saw it;
* result -> completion: exit -> ``result.json`` written -> completion queued -> received.

"Agent alone" runs the same ``claude -p`` argv with the same environment (from the task's
``spec.json``, as Orchestra builds it) in the same directory against the same fake model, alternating
with the messages so both see the same machine load. Overhead is end to end minus agent alone.

Run: ``python benchmarks/bench_chat.py [--messages N] [--plain] [--profile OUT.json]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import ROOT, Verdicts, info, machine_load, make_config

from core.agents.common import agent_env
from tests.fakes.model_server import FILE_NAME
from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram

ACK_TARGET_MS = 20.0
OVERHEAD_TARGET_MS = 100.0
TEXT = "Create User model"
TOKEN_ENV = "ORCH_BENCH_TELEGRAM_TOKEN"
KEY_ENV = "ORCH_BENCH_ANTHROPIC_KEY"
KEY = "sk-orchestra-bench-fake-key"
CLAUDE = Path(os.environ.get("ORCHESTRA_AGENTS_DIR") or ROOT / ".agents") / "node_modules" / ".bin" / "claude"
_TASK_ID = re.compile(r"\b(t\d+)\b")


@dataclass
class Message:
    """The stamps of one message (seconds since the epoch, all on this machine's clock)."""

    task_id: str
    handed_out: float
    ack_at: float
    done_at: float
    stamps: dict[str, float]
    claude_s: float  # the run as Claude Code timed it itself (its result's duration_ms)


# -- the chat side --------------------------------------------------------------------------------
def send_and_wait(fake: FakeTelegram, n: int, work: Path) -> tuple[str, float, float, float]:
    """Say the task; return its id, when the update went out, when the ack and the completion arrived."""
    (work / FILE_NAME).unlink(missing_ok=True)  # every run creates the file (the fake model's Write)
    update_id = fake.say(TEXT)
    message_id = int(fake.history[update_id]["message"]["message_id"])
    ack = fake.wait_for(lambda: _ack(fake, message_id), timeout=60, what=f"the acknowledgement of message {n}")
    found = _TASK_ID.search(str(ack.params.get("text", "")))
    if found is None:
        raise RuntimeError(f"no task id in the acknowledgement: {ack.params.get('text')!r}")
    task_id = found.group(1)
    done = fake.wait_for(lambda: _completion(fake, task_id, ack), timeout=240, what=f"the completion of {task_id}")
    text = str(done.params.get("text", ""))
    if "succeeded" not in text.splitlines()[0]:
        raise RuntimeError(f"{task_id} did not succeed: {text[:300]!r}")
    return task_id, fake.update_handed_out[update_id], ack.at, done.at


def _ack(fake: FakeTelegram, message_id: int) -> Any:
    for call in fake.calls_of("sendMessage"):
        if (call.params.get("reply_parameters") or {}).get("message_id") == message_id:
            return call
    return None


def _completion(fake: FakeTelegram, task_id: str, ack: Any) -> Any:
    for call in fake.calls_of("sendMessage"):
        head = str(call.params.get("text", "")).split("\n", 1)[0]
        if call is not ack and call.at >= ack.at and re.search(rf"\b{task_id}\b", head) and "·" in head:
            return call
    return None


# -- the records ----------------------------------------------------------------------------------
def stamps_of(home: Path, task_id: str) -> dict[str, float]:
    """What the store and the task's files say about one task's way through Orchestra."""
    task_dir = home / "tasks" / task_id
    db = sqlite3.connect(f"file:{home / 'orchestra.db'}?mode=ro", uri=True, timeout=10)
    try:
        created, source_ref = db.execute("SELECT created_at, source_ref FROM tasks WHERE id = ?", (task_id,)).fetchone()
        received = db.execute("SELECT received_at FROM inbound WHERE key = ?", (source_ref,)).fetchone()
        rows = db.execute(
            "SELECT kind, created_at, sent_at, payload_json FROM outbox WHERE task_id = ? ORDER BY id", (task_id,)
        ).fetchall()
    finally:
        db.close()
    events = [json.loads(line) for line in (task_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    started = next(e for e in events if e["kind"] == "started")
    sent = next(e for e in events if e["kind"] == "result")
    result = json.loads((task_dir / "result.json").read_text())
    ack_row = next(r for r in rows if r[0] == "ack")
    completion = [r for r in rows if r[0] == "completion"]
    return {
        "journalled": float(received[0]),
        "ack_queued": float(ack_row[1]),
        "created": float(created),
        "launch_began": (task_dir / "task.md").stat().st_mtime,
        "baseline_done": (task_dir / "baseline.json").stat().st_mtime,
        "agent_spawned": float(started["data"]["agent_started_at"]),
        "runner_up": float(started["ts"]),
        "agent_exited": float(result["exited_at"]),
        "result_sent": float(sent["ts"]),
        "completion_queued": min(float(r[1]) for r in completion),
    }


# -- the agent alone ------------------------------------------------------------------------------
def alone_invocation(home: Path, task_id: str, bot_env: dict[str, str]) -> tuple[list[str], dict[str, str], str]:
    """The argv, environment and directory Orchestra gave the agent of ``task_id``.

    ``spec.json`` has the argv and the adapter's and agent's ``env``; the inherited part is
    ``agent_env`` of the bot's environment, and ``env_from`` adds the key (not on disk: a secret).
    """
    task_dir = home / "tasks" / task_id
    spec = json.loads((task_dir / "spec.json").read_text())
    argv = [a.replace(spec["task_file_marker"], str(task_dir / "task.md")) for a in spec["argv"]]
    env = {**agent_env(bot_env), **spec["env"], "ANTHROPIC_API_KEY": KEY}
    if spec["prompt_mode"] != "arg":
        raise RuntimeError(f"the task went to claude by {spec['prompt_mode']}; this benchmark passes it in argv")
    return argv, env, spec["cwd"]


def run_alone(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """One direct run, as the launcher starts it (own session, stdin /dev/null, output piped): its wall
    seconds, and the seconds Claude Code reports for it itself."""
    (Path(cwd) / FILE_NAME).unlink(missing_ok=True)
    started = time.time()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=240, start_new_session=True, check=False)  # fmt: skip
    took = time.time() - started
    if proc.returncode != 0 or '"type":"result"' not in proc.stdout:
        raise RuntimeError(f"claude alone failed (exit {proc.returncode}): {proc.stderr[-500:] or proc.stdout[-500:]}")
    return took, claude_seconds(proc.stdout)


def claude_seconds(stream: str) -> float:
    """``duration_ms`` of the last result line of a stream-json output, in seconds."""
    results = [r for line in stream.splitlines() if '"type":"result"' in line and (r := json.loads(line))]
    return float(results[-1].get("duration_ms", math.nan)) / 1000 if results else math.nan


# -- the report -----------------------------------------------------------------------------------
def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def span(messages: list[Message], start: str, end: str) -> float:
    """Median of ``end - start`` in ms over the messages (``handed_out``, ``ack``, ``done`` or a stamp)."""

    def at(m: Message, name: str) -> float:
        return {"handed_out": m.handed_out, "ack": m.ack_at, "done": m.done_at}.get(name) or m.stamps[name]

    return median_ms([at(m, end) - at(m, start) for m in messages])


STEPS: list[tuple[str, str, str]] = [
    ("ack: handed out -> journalled (long poll returns, PTB)", "handed_out", "journalled"),
    ("ack: journalled -> task stored (gate, command pool, route)", "journalled", "created"),
    ("ack: task stored -> ack queued (poke, answer, outbox row)", "created", "ack_queued"),
    ("ack: ack queued -> ack received (delivery loop, HTTP)", "ack_queued", "ack"),
    ("dispatch: task stored -> launch began (poke, engine dispatch)", "created", "launch_began"),
    ("dispatch: launch began -> baseline done (files, git)", "launch_began", "baseline_done"),
    ("dispatch: baseline done -> agent spawned (tmux window, launcher)", "baseline_done", "agent_spawned"),
    ("agent: spawned -> exited (the agent's own run, in the runner)", "agent_spawned", "agent_exited"),
    ("result: exited -> result sent to the engine (runner)", "agent_exited", "result_sent"),
    ("result: sent -> completion queued (engine, summary's git diff)", "result_sent", "completion_queued"),
    ("result: completion queued -> received (delivery loop, HTTP)", "completion_queued", "done"),
]


def report(messages: list[Message], runs: list[tuple[float, float]], verdicts: Verdicts) -> None:
    alone = [wall for wall, _ in runs]
    ack = span(messages, "handed_out", "ack")
    end_to_end = span(messages, "handed_out", "done")
    agent_alone = median_ms(alone)
    overhead = end_to_end - agent_alone
    own = [m.stamps["agent_spawned"] - m.handed_out + m.done_at - m.stamps["agent_exited"] for m in messages]
    info(f"medians of {len(messages)} messages and {len(alone)} direct runs:")
    info(f"  acknowledgement (update handed out -> ack received): {ack:.1f} ms")
    info(f"  end to end (update handed out -> completion received): {end_to_end:.1f} ms")
    info(f"  agent alone (the same claude -p run directly): {agent_alone:.1f} ms")
    info(f"  agent inside Orchestra (spawned -> exited): {span(messages, 'agent_spawned', 'agent_exited'):.1f} ms")
    info(f"  overhead (end to end - agent alone): {overhead:.1f} ms")
    info(f"  Claude Code's own timing (duration_ms): {median_ms([m.claude_s for m in messages]):.1f} ms in Orchestra, "
         f"{median_ms([c for _, c in runs]):.1f} ms alone")  # fmt: skip
    info(f"  Orchestra's own path (handed out -> agent spawned, agent exited -> completion): {median_ms(own):.1f} ms")
    info("  where the time went (medians, ms):")
    for label, start, end in STEPS:
        info(f"    {label}: {span(messages, start, end):.1f}")
    info(f"    queue + dispatch: handed out -> agent spawned: {span(messages, 'handed_out', 'agent_spawned'):.1f}")
    info(f"    result -> completion: exited -> completion received: {span(messages, 'agent_exited', 'done'):.1f}")
    info("  each message (ms): ack / end to end / agent in Orchestra, and agent alone:")
    for m, a in zip(messages, alone, strict=False):
        info(f"    {m.task_id}: {(m.ack_at - m.handed_out) * 1000:.1f} / {(m.done_at - m.handed_out) * 1000:.1f} / "
             f"{(m.stamps['agent_exited'] - m.stamps['agent_spawned']) * 1000:.1f}; alone {a * 1000:.1f}")  # fmt: skip
    verdicts.check(f"acknowledgement p50 {ack:.1f} ms <= {ACK_TARGET_MS:.0f} ms", ack <= ACK_TARGET_MS)
    verdicts.check(f"overhead over the agent's own run p50 {overhead:.1f} ms <= {OVERHEAD_TARGET_MS:.0f} ms",
                   overhead <= OVERHEAD_TARGET_MS)  # fmt: skip


# -- set-up ---------------------------------------------------------------------------------------
def config(socket_name: str, work: Path, model_url: str, telegram_url: str) -> dict[str, Any]:
    agent = {
        "kind": "claude", "command": str(CLAUDE), "model": "claude-haiku-4-5", "max_concurrent": 2,
        "env": {"ANTHROPIC_BASE_URL": model_url, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
        "env_from": {"ANTHROPIC_API_KEY": KEY_ENV},
    }  # fmt: skip
    data = make_config(socket_name, {"claude": agent}, {"max_concurrent": 4})
    data["routing"]["default_agent"] = "claude"
    data["routing"]["categories"] = {c: "claude" for c in data["routing"]["categories"]}
    data["workspace"] = str(work)
    data["notify"] = {"console": False}
    data.setdefault("digest", {})["enabled"] = False
    data["telegram"] = {
        "enabled": True, "api_base_url": telegram_url, "token_env": TOKEN_ENV, "allowed_user_ids": [ALICE["id"]],
        "poll_timeout_s": 10, "rate_limit_per_minute": 10_000,
    }  # fmt: skip
    return data


def workspace(path: Path, *, git: bool) -> None:
    path.mkdir()
    if git:  # a repository with one commit: the baseline and the summary's diff are in the measured path
        (path / "README.md").write_text("bench\n")
        for args in (["init", "-q"], ["add", "."], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "i"]):
            subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)


def model_server(work: Path, log: Path) -> subprocess.Popen[bytes]:
    """The fake model in a process of its own: sharing this one's interpreter with the fake Telegram
    server would slow its answers while the bot talks to Telegram, and only then (not alone)."""
    script = ROOT / "tests" / "fakes" / "model_server.py"
    argv = [sys.executable, str(script), "--workdir", str(work), "--seconds", "3600"]
    return subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def model_url(log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        first = log.read_text().partition("\n")[0] if log.exists() else ""
        if first.startswith("http://"):
            return first
        time.sleep(0.05)
    raise RuntimeError(f"the fake model server did not start: {log.read_text()[-500:]}")


def stop(bot: subprocess.Popen[bytes]) -> None:
    bot.send_signal(signal.SIGTERM)
    try:
        bot.wait(20)
    except subprocess.TimeoutExpired:
        bot.kill()
        bot.wait(5)


def measure(messages: int, *, git: bool, profile: str | None = None) -> int:
    verdicts = Verdicts()
    if not CLAUDE.exists():
        info(f"claude is not installed at {CLAUDE}: run `make agents`")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-chat-"))
    socket_name = f"orch-bench-{uuid.uuid4().hex[:10]}"
    work = tmp / "work"
    workspace(work, git=git)
    (tmp / "cli-home").mkdir()
    home = tmp / "home"
    env = {**os.environ, "ORCHESTRA_HOME": str(home), TOKEN_ENV: TOKEN, KEY_ENV: KEY, "HOME": str(tmp / "cli-home")}
    env.pop("TMUX", None)
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env.pop(var, None)
    fake = FakeTelegram().start()
    log = tmp / "bot.log"
    info(f"machine: {os.cpu_count()} cores, load average {machine_load()} at start; tmux -L {socket_name}")
    model = model_server(work, tmp / "model.log")
    try:
        model_at = model_url(tmp / "model.log")
        (tmp / "bots.yaml").write_text(json.dumps(config(socket_name, work, model_at, fake.url)))
        bot = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(tmp / "bots.yaml"), "bot"],
                               cwd=str(ROOT), env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
        spy: subprocess.Popen[bytes] | None = None
        try:
            fake.wait_for(lambda: fake.calls_of("getUpdates", None), timeout=30, what="the bot polling")
            warm_id, *_ = send_and_wait(fake, 0, work)  # imports, first queries, claude's first start
            argv, agent_env_, cwd = alone_invocation(home, warm_id, env)
            run_alone(argv, agent_env_, cwd)
            spy = _py_spy(bot.pid, profile) if profile else None
            results: list[Message] = []
            alone: list[tuple[float, float]] = []
            for n in range(1, messages + 1):
                task_id, handed_out, ack_at, done_at = send_and_wait(fake, n, work)
                claude_s = claude_seconds((home / "tasks" / task_id / "output.log").read_text(errors="replace"))
                results.append(Message(task_id, handed_out, ack_at, done_at, stamps_of(home, task_id), claude_s))
                time.sleep(0.2)
                alone.append(run_alone(argv, agent_env_, cwd))
                time.sleep(0.2)
        finally:
            stop(bot)
            if spy is not None:
                spy.wait(30)
        info(f"machine: load average {machine_load()} at the end; {'a git repository' if git else 'a plain directory'}")
        report(results, alone, verdicts)
    except Exception:
        info(f"bot log ({log}), the run's files kept in {tmp}:\n{log.read_text(errors='replace')[-3000:]}")
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        fake.stop()
        model.terminate()
        model.wait(10)
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, check=False)
        # tmux 3.3a leaves the socket file of a killed server behind; it is ours, remove it
        (Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}" / socket_name).unlink(missing_ok=True)
    return verdicts.exit_code


def _py_spy(pid: int, out: str) -> subprocess.Popen[bytes]:
    """Sample the bot process until it exits (py-spy from PATH: ``pip install py-spy``), every thread."""
    argv = ["py-spy", "record", "--pid", str(pid), "--rate", "500", "--threads", "--format", "speedscope", "-o", out]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=7)
    parser.add_argument("--plain", action="store_true", help="work in a plain directory (no git baseline or diff)")
    parser.add_argument("--profile", metavar="OUT", help="record the bot process with py-spy into OUT (speedscope)")
    args = parser.parse_args()
    return measure(args.messages, git=not args.plain, profile=args.profile)


if __name__ == "__main__":
    sys.exit(main())
