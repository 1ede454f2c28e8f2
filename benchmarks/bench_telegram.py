"""Telegram: update received -> acknowledgement sent, on loopback, through the real bot process.

The bot runs as a user starts it (``python -m bot --config X bot``) against the fake Bot API server
of the tests (tests/fakes/telegram.py) on 127.0.0.1. For each message the fake server stamps the
moment it hands the update out in a getUpdates answer and the moment the bot's sendMessage with
the acknowledgement arrives (one clock: both stamps are taken in this process). In between: the
long poll returns, PTB dispatches the update, the gate, the command layer, routing, the store, the
dispatch of the task into tmux, the outbox row, the delivery loop and the HTTP request.

* ``delegate``: "Create User model" routed to an agent that exits at once; each task is waited
  for, so every acknowledgement includes starting a tmux window (the ack follows the dispatch).
* ``status``: ``/status``, no task started: the floor of the path.

Run: ``python benchmarks/bench_telegram.py [--messages N] [--git]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from _common import ROOT, Verdicts, info, machine_load, make_config, ms, percentile, summary_ms

from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram

TARGET_P50_MS = 50.0
TOKEN_ENV = "ORCH_BENCH_TELEGRAM_TOKEN"


def measure(fake: FakeTelegram, text: str, count: int, *, wait_done: bool) -> list[float]:
    latencies: list[float] = []
    for n in range(count):
        before = len(fake.sent)
        update_id = fake.say(text)
        message_id = fake_message_id(fake, update_id)
        call = fake.wait_for(partial(ack_call, fake, message_id), timeout=30, what=f"ack of message {n}")
        latencies.append(call.at - fake.update_handed_out[update_id])
        if wait_done:
            fake.wait_for(partial(sent_at_least, fake, before + 2), timeout=30, what="the completion")
        time.sleep(0.05)
    return latencies


def sent_at_least(fake: FakeTelegram, count: int) -> bool:
    return len(fake.sent) >= count


def fake_message_id(fake: FakeTelegram, update_id: int) -> int:
    return int(fake.history[update_id]["message"]["message_id"])


def ack_call(fake: FakeTelegram, message_id: int) -> Any:
    for call in fake.calls_of("sendMessage"):
        if (call.params.get("reply_parameters") or {}).get("message_id") == message_id:
            return call
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--git", action="store_true", help="work in a git repository (adds the git snapshot)")
    args = parser.parse_args()
    verdicts = Verdicts()
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-tg-"))
    socket_name = f"orch-bench-{uuid.uuid4().hex[:10]}"
    work = tmp / "work"
    work.mkdir()
    if args.git:
        subprocess.run(["git", "init", "-q", str(work)], check=True)
    agents = {"fast": {"kind": "command", "command": "true", "args": ["{task}"], "max_concurrent": 4}}
    data = make_config(socket_name, agents, {"max_concurrent": 4})
    data["routing"]["default_agent"] = "fast"
    data["routing"]["categories"] = {c: "fast" for c in data["routing"]["categories"]}
    data["workspace"] = str(work)
    data["notify"] = {"console": False}
    data.setdefault("digest", {})["enabled"] = False
    fake = FakeTelegram().start()
    data["telegram"] = {
        "enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV, "allowed_user_ids": [ALICE["id"]],
        "poll_timeout_s": 10, "rate_limit_per_minute": 10_000,
    }  # fmt: skip
    config = tmp / "bots.yaml"
    config.write_text(json.dumps(data))
    env = {**os.environ, "ORCHESTRA_HOME": str(tmp / "home"), TOKEN_ENV: TOKEN}
    env.pop("TMUX", None)
    log = tmp / "bot.log"
    info(f"machine: {os.cpu_count()} cores, load average {machine_load()}; tmux -L {socket_name}")
    bot = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(config), "bot"], cwd=str(ROOT), env=env,
                           stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    try:
        fake.wait_for(lambda: fake.calls_of("getUpdates", None), timeout=30, what="the bot polling")
        measure(fake, "/status", 5, wait_done=False)  # warm up: imports, first queries, connections
        status = measure(fake, "/status", args.messages, wait_done=False)
        delegate = measure(fake, "Create User model", args.messages, wait_done=True)
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            bot.wait(20)
        except subprocess.TimeoutExpired:
            bot.kill()
        fake.stop()
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, check=False)
    where = "a git repository" if args.git else "a plain directory"
    info(f"/status -> reply ({len(status)} messages): {summary_ms(status)}")
    info(f"'Create User model' -> acknowledgement, task dispatched into tmux, in {where} ({len(delegate)} messages): "
         f"{summary_ms(delegate)}")  # fmt: skip
    p50 = percentile(delegate, 50)
    verdicts.check(f"update received -> acknowledgement sent p50 {ms(p50)} <= {TARGET_P50_MS:.0f} ms",
                   p50 * 1000 <= TARGET_P50_MS)  # fmt: skip
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
