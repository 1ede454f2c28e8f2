"""The CLI a person types all day: wall time of `status`, `show`, `route` and `cost` on 10,000 tasks.

A throw-away ``ORCHESTRA_HOME`` gets 10,000 tasks through the real Store API (finished ones over
the last 60 days, each with its cost row and a summary), plus a few running tasks (their runners
are live processes, as the engine checks them) and a few queued ones. Each command then runs
as a user runs it, ``<python> -m bot --config X <command>`` with this interpreter
(``sys.executable``, never a pyenv shim), in N paired rounds: ``<python> -c pass`` right before
each run, so the ratio compares the two in the same moment of the same machine.

By default a bot holds the engine lock (this process takes it), as when a person checks on the
tasks the bot runs; ``--no-engine`` leaves it free, so `status` and `show` check the runners
themselves. ``--importtime`` also prints what `status` spends its imports on.

Run: ``python benchmarks/bench_cli.py [--rounds N] [--tasks N] [--no-engine] [--importtime]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import ROOT, Verdicts, info, machine_load, make_config, ms, percentile

from core.engine.lock import EngineLock
from core.protocol import task_dir
from core.store import Store

TARGET_P50_MS = 150.0
TARGET_RATIO = 4.0
COMMANDS = {
    "status": ["status"],
    "show": ["show", "t5000"],
    "route": ["route", "add a React login form"],
    "cost": ["cost"],
}
_AGENTS = [("claude", "backend"), ("codex", "frontend"), ("gemini", "docs"), ("standin", "tests")]
_RUNNING, _QUEUED = 3, 3


def build_store(home: Path, count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` tasks through the Store API; returns the live stand-ins for the running tasks' runners."""
    store = Store(home / "orchestra.db")
    now = time.time()
    rng = random.Random(13)
    finished = count - _RUNNING - _QUEUED
    with store.atomic():  # one transaction: the seeding is not what is measured
        for n in range(1, finished + 1):
            agent, category = _AGENTS[n % len(_AGENTS)]
            created = now - (finished - n) * (60 * 86400 / finished) - 120
            cost = round(rng.uniform(0.01, 0.9), 4)
            text = f"task {n}: add a field to the User model and its tests"
            state = "succeeded" if n % 10 else "failed"
            summary = {
                "task_id": f"t{n}", "task": text, "status": state, "agent": agent, "category": category,
                "digest": ["Added the field", "Updated the tests"], "files": [{"path": "user.py", "added": 9,
                "removed": 1}], "tokens": {"input": 12000, "output": 300}, "cost_usd": cost, "duration_s": 95.0,
            }  # fmt: skip
            task = store.create_task({
                "text": text, "agent": agent, "category": category, "rule": "default", "route_reason": "the default",
                "state": state, "cwd": str(home), "requester": "local", "source": "cli", "created_at": created,
                "queued_at": created, "started_at": created + 1, "finished_at": created + 96, "cost_usd": cost,
                "summary_json": json.dumps(summary),
            })  # fmt: skip
            store.record_cost({"task_id": task.id, "ts": created + 96, "agent": agent, "category": category,
                               "cost_usd": cost, "input_tokens": 12000, "output_tokens": 300})  # fmt: skip
        runners = []
        for n in range(_RUNNING + _QUEUED):
            running = n < _RUNNING
            fields = {"text": f"live task {n}", "agent": "standin", "category": "backend", "rule": "default",
                      "route_reason": "the default", "state": "running" if running else "queued", "cwd": str(home),
                      "requester": "local", "source": "cli", "created_at": now - 60, "queued_at": now - 60}  # fmt: skip
            task = store.create_task(fields)
            if running:  # a runner the engine would find alive: its command line names the task directory
                folder = task_dir(home, task.id)
                folder.mkdir(parents=True)
                runner = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(3600)", str(folder)])
                runners.append(runner)
                store.update_task(task.id, started_at=now - 50, runner_pid=runner.pid)
    store.close()
    return runners


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds of one run of ``argv``, and the CPU seconds (user+sys) it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[-3:])} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_breakdown(cli: list[str], env: dict[str, str], top: int = 25) -> None:
    """The modules `status` spends the most import time on (cumulative, from ``-X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *cli[1:], *COMMANDS["status"]], env=env,
                          cwd=str(ROOT), capture_output=True, text=True, check=False)  # fmt: skip
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, module = line.removeprefix("import time:").split("|")
        rows.append((int(cumulative_us), int(self_us), module.rstrip()))
    info(f"-X importtime of status: {sum(own for _, own, _ in rows) / 1000:.1f} ms of imports in all; the largest:")
    for total, own, name in sorted(rows, reverse=True)[:top]:
        info(f"  {total / 1000:7.1f} ms cumulative {own / 1000:6.1f} ms own {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="paired runs per command (default 15)")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--no-engine", action="store_true", help="no engine holds the lock while the CLI reads")
    parser.add_argument("--importtime", action="store_true", help="print the -X importtime breakdown of status")
    args = parser.parse_args()
    verdicts = Verdicts()
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-cli-"))
    home = tmp / "home"
    home.mkdir(mode=0o700)
    config = tmp / "bots.yaml"
    config.write_text(json.dumps(make_config(f"orch-bench-{uuid.uuid4().hex[:10]}", {}, {})), encoding="utf-8")
    env = {**os.environ, "ORCHESTRA_HOME": str(home), "PYTHONPATH": str(ROOT)}
    for name in ("TMUX", "ORCHESTRA_CONFIG"):
        env.pop(name, None)
    info(f"machine: {os.cpu_count()} cores, load average {machine_load()}; {sys.executable}")
    started = time.monotonic()
    runners = build_store(home, args.tasks)
    info(f"store: {args.tasks:,} tasks ({_RUNNING} running, {_QUEUED} queued) and their cost rows "
         f"in {time.monotonic() - started:.1f} s")  # fmt: skip
    lock = EngineLock(home)
    if not args.no_engine and not lock.acquire(role="bot"):
        raise RuntimeError("could not take the engine lock of a fresh data directory")
    info("engine: " + ("none (status and show check the runners)" if args.no_engine else "a bot holds the lock"))
    bare = [sys.executable, "-c", "pass"]
    # What a person types: the `orchestra` script pip installed next to this interpreter (else `-m bot`).
    script = Path(sys.executable).with_name("orchestra")
    entry = [str(script)] if script.is_file() else [sys.executable, "-m", "bot"]
    info(f"command: {' '.join(entry)}")
    cli = [*entry, "--config", str(config)]
    try:
        for argv in COMMANDS.values():
            timed([*cli, *argv], env)  # warm the page cache and the store's WAL once
        for name, argv in COMMANDS.items():
            passes, runs, cpus, floor_cpus = [], [], [], []
            for _ in range(args.rounds):
                wall, cpu = timed(bare, env)
                passes.append(wall)
                floor_cpus.append(cpu)
                wall, cpu = timed([*cli, *argv], env)
                runs.append(wall)
                cpus.append(cpu)
            p50, p90, floor = percentile(runs, 50), percentile(runs, 90), percentile(passes, 50)
            ratio = p50 / floor
            info(f"{name:<6} ({' '.join(argv)}): p50 {ms(p50)}, p90 {ms(p90)}; `-c pass` p50 {ms(floor)}; "
                 f"{ratio:.1f}x ({args.rounds} paired runs); CPU p50 {ms(percentile(cpus, 50))} "
                 f"vs {ms(percentile(floor_cpus, 50))}")  # fmt: skip
            verdicts.check(f"{name} p50 {ms(p50)} <= {TARGET_P50_MS:.0f} ms", p50 * 1000 <= TARGET_P50_MS)
            verdicts.check(f"{name} p50 {ratio:.1f}x `python -c pass` <= {TARGET_RATIO:.0f}x", ratio <= TARGET_RATIO)
        if args.importtime:
            import_breakdown(cli, env)
    finally:
        lock.release()
        for runner in runners:
            runner.kill()
            runner.wait()
        info(f"machine: load average {machine_load()} at the end")
        shutil.rmtree(tmp, ignore_errors=True)
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
