"""CPU and memory of the engine while 50 agents sit idle, against polling their panes.

50 command agents ``sleep 3600`` run at once (limits.max_concurrent 50). Once all have started:

1. idle: for 60 s the engine (this process, its asyncio loop serving the runners' socket) does
   nothing but wait; its CPU time (user+sys from getrusage: itself plus any tmux client calls it
   made and reaped, e.g. the 30 s sweep) is reported as % of one core, with its peak RSS. The
   tmux server's own CPU time over the same 60 s is read from /proc/<pid>/stat and shown too.
2. polling, for comparison: for 60 s the same 50 panes are captured with
   ``tmux -L <sock> capture-pane -p -t <window>`` at 2 Hz each (100 calls/s), as a pane-polling
   design would; its CPU is this process + its reaped children + the tmux server.

Then every task is cancelled and waited for, and the tmux server is killed.

Run: ``python benchmarks/bench_idle.py [--agents N] [--seconds S]``
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

from _common import Bench, CpuSample, Verdicts, bench_app, command_agent, cpu_sample, info, proc_cpu_s, proc_rss_mb

TARGET_CPU_PCT = 2.0
TARGET_RSS_MB = 150.0


def pct(cpu_s: float, wall_s: float) -> float:
    return 100.0 * cpu_s / wall_s if wall_s > 0 else float("nan")


def describe(before: CpuSample, after: CpuSample) -> tuple[float, float, float, float]:
    """(wall, this process incl. reaped children, of which children, tmux server) deltas."""
    wall = after.wall - before.wall
    own = (after.self_s - before.self_s) + (after.children_s - before.children_s)
    return wall, own, after.children_s - before.children_s, after.tmux_s - before.tmux_s


def poll_panes(socket_name: str, windows: list[str], seconds: float, hz_per_pane: float) -> tuple[int, float]:
    """Capture every pane ``hz_per_pane`` times a second, spread evenly; (calls made, wall time)."""
    interval = 1.0 / (len(windows) * hz_per_pane)
    start = time.monotonic()
    end = start + seconds
    calls = 0
    while True:
        due = start + calls * interval
        if due >= end:
            break
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        subprocess.run(["tmux", "-L", socket_name, "capture-pane", "-p", "-t", windows[calls % len(windows)]],
                       capture_output=True, check=False)  # fmt: skip
        calls += 1
    return calls, time.monotonic() - start


def _maps_have(pid: int, name: str) -> bool:
    try:
        return name in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


async def idle_for(seconds: float, rss_samples: list[float]) -> None:
    """Sleep while the engine serves, reading VmRSS every 5 s (a /proc read: microseconds)."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(5.0, left))
        rss_samples.append(proc_rss_mb()[0])


async def wait_started(bench: Bench, ids: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(i not in bench.recorder.started for i in ids):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def run(agents_n: int, seconds: float, poll_seconds: float) -> int:
    verdicts = Verdicts()
    agents = {"idler": command_agent("sleep", ["3600"], max_concurrent=agents_n)}
    async with bench_app(agents, {"max_concurrent": agents_n}) as bench:
        app = bench.app
        t0 = time.monotonic()
        ids = [app.service.delegate(f"idle agent {i}", agent="idler", cwd=str(bench.workdir)).task.id
               for i in range(agents_n)]  # fmt: skip
        if not await wait_started(bench, ids, 60):
            info(f"error: only {len(bench.recorder.started)} of {agents_n} agents started within 60 s")
            app.service.cancel_all()
            return 2
        took = time.monotonic() - t0
        info(f"{agents_n} agents `sleep 3600` running, all started {took:.1f} s after the first delegate")
        tmux_pid = bench.tmux_server_pid()
        if tmux_pid is None:
            info("error: could not find the tmux server's pid")
            return 2
        windows = [str(app.store.task_field(i, "window_id") or "") for i in ids]
        await asyncio.sleep(1.0)  # let the last started events and window set-up settle

        # -- 1. idle --------------------------------------------------------------------------
        rss: list[float] = [proc_rss_mb()[0]]
        runners = bench.runner_pids()
        runners_cpu0 = sum(proc_cpu_s(p) for p in runners)
        before = cpu_sample(tmux_pid)
        await idle_for(seconds, rss)
        after = cpu_sample(tmux_pid)
        runners_cpu = sum(proc_cpu_s(p) for p in runners) - runners_cpu0
        wall, own, kids, tmux_s = describe(before, after)
        rss_max = max(rss)
        hwm = proc_rss_mb()[1]
        runners_rss = sum(proc_rss_mb(p)[0] for p in runners)
        priced = sum(1 for p in runners if _maps_have(p, "pydantic_core"))

        # -- 2. polling -----------------------------------------------------------------------
        before_poll = cpu_sample(tmux_pid)
        calls, _ = await asyncio.to_thread(poll_panes, bench.socket_name, windows, poll_seconds, 2.0)
        after_poll = cpu_sample(tmux_pid)
        p_wall, p_own, p_kids, p_tmux = describe(before_poll, after_poll)

        # -- clean up -------------------------------------------------------------------------
        still = sum(1 for i in ids if app.store.get_task(i).state.value == "running")
        app.service.cancel_all()
        try:
            await asyncio.wait_for(asyncio.gather(*(app.engine.wait_finished(i) for i in ids)), 30)
        except TimeoutError:
            info("warning: not every task ended within 30 s of cancel_all; the tmux server is killed anyway")

    info(f"idle: {wall:.1f} s with {still} agents still running at its end")
    verdicts.check(
        f"idle engine CPU: {pct(own, wall):.3f}% of one core ({own * 1000:.0f} ms CPU in {wall:.1f} s, of which "
        f"{kids * 1000:.0f} ms in tmux client calls it made) (target <= {TARGET_CPU_PCT:g}%)",
        pct(own, wall) <= TARGET_CPU_PCT,
    )
    info(f"  tmux server during idle: {pct(tmux_s, wall):.3f}% of one core ({tmux_s * 1000:.0f} ms CPU)")
    info(f"  engine + tmux server during idle: {pct(own + tmux_s, wall):.3f}% of one core")
    info(f"  {len(runners)} runners during idle: {pct(runners_cpu, wall):.3f}% of one core together, "
         f"{runners_rss:.0f} MB RSS together ({runners_rss / max(1, len(runners)):.1f} MB each, shared pages counted "
         "in each)")  # fmt: skip
    info(f"  runners that loaded genai-prices/pydantic (the pricing preload thread): {priced} of {len(runners)}")
    verdicts.check(
        f"idle engine RSS: max {rss_max:.1f} MB over {len(rss)} samples (peak VmHWM since start {hwm:.1f} MB) "
        f"(target <= {TARGET_RSS_MB:g} MB)",
        rss_max <= TARGET_RSS_MB,
    )
    rate = calls / p_wall if p_wall else 0.0
    info(
        f"polling for comparison: {calls} capture-pane calls in {p_wall:.1f} s ({rate:.1f}/s, asked "
        f"{2 * len(windows)}/s = {len(windows)} panes x 2 Hz): {pct(p_own + p_tmux, p_wall):.1f}% of one core"
    )
    info(f"  poller process (fork/exec + wait): {pct(p_own - p_kids, p_wall):.1f}%, tmux client processes: "
         f"{pct(p_kids, p_wall):.1f}%, tmux server: {pct(p_tmux, p_wall):.1f}%")  # fmt: skip
    idle_total = pct(own + tmux_s, wall)
    poll_total = pct(p_own + p_tmux, p_wall)
    ratio = f"{poll_total / idle_total:.0f}x" if idle_total > 0 else "n/a (idle measured 0)"
    info(f"  event-driven idle (engine + tmux server) {idle_total:.3f}% vs polling {poll_total:.1f}%: {ratio}")
    return verdicts.exit_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="idle measurement (default 60)")
    parser.add_argument("--poll-seconds", type=float, default=60.0, help="polling measurement (default 60)")
    args = parser.parse_args()
    return asyncio.run(run(args.agents, args.seconds, args.poll_seconds))


if __name__ == "__main__":
    sys.exit(main())
