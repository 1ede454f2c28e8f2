"""`orchestra bot` start-up: process spawned -> its first getUpdates (polling), on an empty store.

Each run starts the real bot process as a user does (``<python> -m bot --config X bot``, this
interpreter) on a brand-new data directory, against the fake Bot API server of the tests
(tests/fakes/telegram.py) on 127.0.0.1, and measures from just before the spawn to the moment the
fake server receives the bot's first getUpdates: imports, config, store migrations, the engine,
the scheduler, PTB's initialize (getMe) and the first long poll. Both stamps are taken in this
process (time.time()). Then SIGTERM, and the next run starts from nothing again.

Run: ``python benchmarks/bench_startup.py [--runs N] [--importtime]``
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
from pathlib import Path

from _common import ROOT, Verdicts, info, machine_load, make_config, ms, percentile, proc_cpu_s, summary_ms

from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram

TARGET_P50_S = 1.0
TOKEN_ENV = "ORCH_BENCH_TELEGRAM_TOKEN"


def one_start(tmp: Path, n: int, *, importtime: bool) -> tuple[float, float]:
    """Seconds from the spawn of a fresh bot to its first getUpdates, and the CPU seconds it had used then."""
    socket_name = f"orch-bench-{uuid.uuid4().hex[:10]}"
    fake = FakeTelegram().start()
    data = make_config(socket_name, {}, {})
    data["notify"] = {"console": False}
    data.setdefault("digest", {})["enabled"] = False
    data["telegram"] = {"enabled": True, "api_base_url": fake.url, "token_env": TOKEN_ENV,
                        "allowed_user_ids": [ALICE["id"]], "poll_timeout_s": 10}  # fmt: skip
    config = tmp / f"bots-{n}.yaml"
    config.write_text(json.dumps(data), encoding="utf-8")
    env = {**os.environ, "ORCHESTRA_HOME": str(tmp / f"home-{n}"), TOKEN_ENV: TOKEN, "PYTHONPATH": str(ROOT)}
    env.pop("TMUX", None)
    env.pop("ORCHESTRA_CONFIG", None)
    log = tmp / f"bot-{n}.log"
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "bot", "--config", str(config), "bot"]
    try:
        with log.open("wb") as out:
            spawned = time.time()
            bot = subprocess.Popen(argv, cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            first = fake.wait_for(lambda: next(iter(fake.calls_of("getUpdates", None)), None), timeout=60,
                                  what="the first getUpdates\n" + log.read_text()[-2000:])  # fmt: skip
            cpu = proc_cpu_s(bot.pid)  # all its threads' user+sys, read as soon as the poll came in
            took: float = first.at - spawned
        finally:
            bot.send_signal(signal.SIGTERM)
            try:
                bot.wait(20)
            except subprocess.TimeoutExpired:
                bot.kill()
                bot.wait()
    finally:
        fake.stop()
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, check=False)
    if importtime:
        _print_imports(log.read_text())
    return took, cpu


def _print_imports(output: str, top: int = 20) -> None:
    rows = []
    for line in output.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            self_us, cumulative_us, module = line.removeprefix("import time:").split("|")
            rows.append((int(cumulative_us), int(self_us), module.rstrip()))
    info(f"-X importtime of the bot: {sum(own for _, own, _ in rows) / 1000:.1f} ms of imports in all; the largest:")
    for total, own, name in sorted(rows, reverse=True)[:top]:
        info(f"  {total / 1000:7.1f} ms cumulative {own / 1000:6.1f} ms own {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="bot starts to measure (default 7)")
    parser.add_argument("--importtime", action="store_true", help="also one run under -X importtime, printed")
    args = parser.parse_args()
    verdicts = Verdicts()
    info(f"machine: {os.cpu_count()} cores, load average {machine_load()}; {sys.executable}")
    with tempfile.TemporaryDirectory(prefix="orch-bench-start-") as folder:
        tmp = Path(folder)
        measured = [one_start(tmp, n, importtime=False) for n in range(args.runs)]
        if args.importtime:
            one_start(tmp, args.runs, importtime=True)
    starts, cpus = [wall for wall, _ in measured], [cpu for _, cpu in measured]
    info(f"spawn -> first getUpdates, empty store ({len(starts)} starts): {summary_ms(starts)}")
    info(f"CPU the bot had used by then (user+sys, all threads): {summary_ms(cpus)}")
    info(f"machine: load average {machine_load()} at the end")
    p50 = percentile(starts, 50)
    target = f"{TARGET_P50_S * 1000:.0f} ms"
    verdicts.check(f"`orchestra bot` ready (polling) p50 {ms(p50)} <= {target}", p50 <= TARGET_P50_S)
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
