"""Permission latency: a tool call -> its request queued, and Allow tapped -> the tool running.

The engine and the Telegram bridge run in this process as the bot process runs them, against the
fake Bot API server on 127.0.0.1. The agent is the stand-in (kind ``claude``), which runs its
``PreToolUse`` hook as Claude Code does: the real hook program (``python -S``, a process per call)
judges each call with the shipped policy, and asks the engine over its socket for those it asks
about. The stand-in runs N asked commands in turn; each is ``curl ... ; date +%s.%N > ran-I``, so
the moment it starts running is on disk.

* call -> queued: the runner's stamp of the ``tool_use`` line (the stand-in calls its hook right
  after printing it) -> the outbox row of the request (hook start, policy, socket, the engine's
  store transaction and the queued message; the phone is one HTTP request later);
* tap -> running: the fake server queues the callback query -> the command's own ``date`` (the
  bridge's long poll, the tap's handling, the store, the poke, the engine's answer, the hook's
  exit, the CLI starting the command);
* allowed by policy: the hook alone (no engine), for a call the policy allows, as its process time.

Run: ``python benchmarks/bench_permissions.py [--calls N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import ROOT, Verdicts, bench_app, info, percentile, summary_ms

from bot.bridges import start_telegram
from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram

TARGET_P50_MS = 100.0
TOKEN_ENV = "ORCH_BENCH_TELEGRAM_TOKEN"
CHAT = -100900


async def until(probe: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)
    return value


def hook_alone(runs: int, workdir: Path) -> list[float]:
    """The hook program answering an allowed call from the policy, no engine: its whole process."""
    from core.config.permissions import PermissionsConfig
    from core.permissions.policy import Layer, Policy

    folder = workdir / "hook-only"
    folder.mkdir(exist_ok=True)
    lists = PermissionsConfig().model_dump(include={"allow", "ask", "deny"})
    policy = Policy(cwd=str(workdir), layers=(Layer.of("permissions", lists),)).to_dict()
    spec = {"task_id": "t0", "socket": str(folder / "none.sock"), "permissions": policy}
    (folder / "spec.json").write_text(json.dumps(spec))
    payload = json.dumps({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "pytest -q"}})
    argv = [sys.executable, "-S", str(ROOT / "core" / "permissions" / "hook.py"), "claude"]
    env = {"PATH": os.environ["PATH"], "ORCHESTRA_TASK_DIR": str(folder)}
    took = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, input=payload, capture_output=True, text=True, env=env, check=False)
        took.append(time.perf_counter() - start)
        assert done.returncode == 0 and '"allow"' in done.stdout, done
    return took


async def measure(calls: int) -> tuple[list[float], list[float]]:
    os.environ[TOKEN_ENV] = TOKEN
    fake = FakeTelegram().start()
    commands = [f"curl -s http://127.0.0.1:9/ ; date +%s.%N > ran-{i}" for i in range(calls)]
    agents = {
        "standin": {
            "kind": "claude", "command": "{python} -S {orchestra}/core/agents/standin", "max_concurrent": 1,
            "env": {"ORCHESTRA_STANDIN_DELAY": "0", "ORCHESTRA_STANDIN_COMMANDS": json.dumps(commands)},
        }
    }  # fmt: skip
    extra = {
        "notify": {"console": False},
        "digest": {"enabled": False},
        "telegram": {
            "enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV, "allowed_user_ids": [ALICE["id"]],
            "allowed_chat_ids": [CHAT], "notify_chat_ids": [CHAT], "poll_timeout_s": 10, "progress_interval_s": 0,
        },
    }  # fmt: skip
    queued: list[float] = []
    running: list[float] = []
    try:
        async with bench_app(agents, {"max_concurrent": 1}, extra) as bench:
            app = bench.app
            bridge = await start_telegram(app, fatal=lambda reason: None)
            try:
                task_id = app.service.delegate("run the steps", agent="standin", cwd=str(bench.workdir)).task.id
                events = app.home / "tasks" / task_id / "events.jsonl"
                for i in range(calls):
                    ref = f"p{i + 1}"

                    def request_sent(ref: str = ref) -> Any:
                        return [m for m in fake.sent if f"perm_allow:{ref}" in json.dumps(m.markup)]

                    [message] = await until(request_sent, f"request {ref}")
                    sql = "SELECT MIN(created_at) FROM outbox WHERE kind = 'permission' AND dedupe_key LIKE ?"
                    row = app.store._conn.execute(sql, (f"%perm:{i + 1}",)).fetchone()
                    called = _tool_use_ts(events, commands[i])
                    queued.append(float(row[0]) - called)
                    tapped = time.time()
                    fake.tap(message, f"perm_allow:{ref}", user=ALICE)
                    ran = bench.workdir / f"ran-{i}"
                    await until(lambda ran=ran: ran.exists() and ran.read_text().strip(), f"command {i} to run")
                    running.append(float(ran.read_text()) - tapped)
                await app.engine.wait_finished(task_id, timeout=60)
            finally:
                await bridge.stop()
    finally:
        fake.stop()
    return queued, running


def _tool_use_ts(events: Path, command: str) -> float:
    for line in events.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["kind"] == "tool_use" and command in record["text"]:
            return float(record["ts"])
    raise LookupError(f"no tool_use event for {command!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    verdicts = Verdicts()
    queued, running = asyncio.run(measure(args.calls))
    info(f"tool call -> request queued ({len(queued)} calls): {summary_ms(queued)}")
    info(f"Allow tapped -> tool running ({len(running)} taps): {summary_ms(running)}")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        alone = hook_alone(20, Path(tmp))
    info(f"hook alone, a call the policy allows (process start to exit, 20 runs): {summary_ms(alone)}")
    verdicts.check(f"call -> queued p50 {percentile(queued, 50) * 1000:.1f} ms <= {TARGET_P50_MS:g} ms",
                   percentile(queued, 50) * 1000 <= TARGET_P50_MS)  # fmt: skip
    verdicts.check(f"tap -> running p50 {percentile(running, 50) * 1000:.1f} ms <= {TARGET_P50_MS:g} ms",
                   percentile(running, 50) * 1000 <= TARGET_P50_MS)  # fmt: skip
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
