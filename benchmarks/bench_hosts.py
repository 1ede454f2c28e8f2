"""Tasks on a host over SSH: dispatch latency over the established connection, and the delay of each event.

The host is this machine through its own sshd on 127.0.0.1 (``tests/sshd.py``: its own host key,
a throwaway client key, a throwaway user with ``/bin/sh`` where users can be made), with its own
data directory and tmux server. ``orchestra hosts setup`` runs first, so the master connection is up.

* dispatch latency: from ``service.delegate(..., host=...)`` returning to ``agent_started_at`` in the
  task's ``started`` event (time.time() in the runner on the host right after the agent was exec'd:
  the same clock here, loopback). Tasks go one at a time, each waited for.
* per-event delay: from an event's ``ts`` (the runner there stamps it as it writes it) to the engine
  ingesting it (a listener stamps time.time()), for every event of a task printing a line every 20 ms.

Run: ``python benchmarks/bench_hosts.py [--tasks N]``
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from _common import Verdicts, bench_app, command_agent, info, ms, percentile, summary_ms

from tests.sshd import remove_user, sshd_available, start_sshd, throwaway_user  # _common put the checkout on the path

TARGET_DISPATCH_P50_MS = 100.0
TARGET_EVENT_P50_MS = 20.0
_CHATTY = "for i in $(seq 100); do echo line $i; sleep 0.02; done"


class Arrivals:
    """Every ingested event's arrival time, per task, in the order the engine ingested them."""

    def __init__(self) -> None:
        self.by_task: dict[str, list[tuple[str, float]]] = {}

    def __call__(self, task_id: str, kind: str, data: dict[str, Any]) -> None:
        import time

        if kind not in ("dispatched", "finished", "permission"):
            self.by_task.setdefault(task_id, []).append((kind, time.time()))


async def _watch_copy(path: Path) -> list[float]:
    """When each line reached the local copy of a task's events.jsonl (polled every millisecond until cancelled)."""
    import time

    seen: list[float] = []
    try:
        while True:
            if path.exists():
                lines = path.read_bytes().count(b"\n")
                seen += [time.time()] * (lines - len(seen))
            await asyncio.sleep(0.001)
    except asyncio.CancelledError:
        return seen


async def run(tasks: int) -> int:
    if not sshd_available():
        info("skipped: openssh-server is not installed (apt-get install openssh-server)")
        return 0
    verdicts = Verdicts()
    base = Path(tempfile.mkdtemp(prefix="orch-bench-hosts-"))
    base.chmod(0o755)
    user = throwaway_user(base / "remote")
    if user is None:
        (base / "remote").mkdir()
    sshd = start_sshd(base / "sshd", user)
    info(f"sshd on 127.0.0.1:{sshd.port}, logged in as {sshd.user}")
    host = sshd.host_config(base / "remote" / "data", tmux_socket=f"orch-bench-remote-{uuid.uuid4().hex[:6]}")
    host["agents"] = ["fast", "chatty"]
    agents = {"fast": command_agent("true"), "chatty": command_agent("sh", ["-c", _CHATTY])}
    try:
        async with bench_app(agents, {"max_concurrent": 4}, {"hosts": {"box": host}}) as bench:
            service, engine, rec = bench.app.service, bench.app.engine, bench.recorder
            for fine, line in service.setup_host("box"):
                info(f"  setup: {'ok' if fine else 'FAILED'} {line}")
            arrivals = Arrivals()
            engine.listeners.append(arrivals)
            returned: dict[str, float] = {}
            calls: list[float] = []
            for i in range(tasks):
                import time

                t0 = time.time()
                d = service.delegate(f"bench host task {i}", agent="fast", cwd=str(bench.workdir), host="box")
                returned[d.task.id] = time.time()
                calls.append(returned[d.task.id] - t0)
                await engine.wait_finished(d.task.id, timeout=60)
            chatty = service.delegate("bench host events", agent="chatty", cwd=str(bench.workdir), host="box")
            copied = asyncio.create_task(_watch_copy(bench.app.home / "tasks" / chatty.task.id / "events.jsonl"))
            await engine.wait_finished(chatty.task.id, timeout=60)
            await asyncio.sleep(0.3)
            stored = bench.app.store.events(chatty.task.id)
            seen = arrivals.by_task.get(chatty.task.id, [])
            delays = [arrived - float(e["ts"]) for e, (_, arrived) in zip(stored, seen, strict=False)]
            copied.cancel()
            copy_delays = [arrived - float(e["ts"]) for e, arrived in zip(stored, await copied, strict=False)]
            states = [bench.app.store.get_task(i).state.value for i in returned]
            missing = [i for i in returned if i not in rec.started]
            if missing:
                info(f"error: {len(missing)} tasks have no started event: {missing[:5]}")
                return 2
            dispatch = [float(rec.started[i]["agent_started_at"]) - returned[i] for i in returned]
            chatty_state = bench.app.store.get_task(chatty.task.id).state.value
            service.hosts.get("box").disconnect()
    finally:
        sshd.stop()
        remove_user(user)
        shutil.rmtree(base, ignore_errors=True)
    succeeded = sum(1 for s in states if s == "succeeded")
    info(f"tasks: {tasks} of agent `true` on host box ({succeeded} succeeded), one at a time")
    p50, p95 = percentile(dispatch, 50), percentile(dispatch, 95)
    verdicts.check(
        f"dispatch latency to the host: p50 {ms(p50)}, p95 {ms(p95)}, max {ms(max(dispatch))} over {tasks} tasks "
        f"(target p50 <= {TARGET_DISPATCH_P50_MS:.0f})",
        p50 * 1000 <= TARGET_DISPATCH_P50_MS,
    )
    info(f"  detail, delegate() returned -> agent exec'd there: {summary_ms(dispatch)}")
    info(f"  detail, delegate() call itself (route, host check, store): {summary_ms(calls)}")
    if delays:
        e50, e95 = percentile(delays, 50), percentile(delays, 95)
        verdicts.check(
            f"per-event delay, written there -> ingested here: p50 {ms(e50)}, p95 {ms(e95)} over {len(delays)} "
            f"events (target p50 <= {TARGET_EVENT_P50_MS:.0f}; task {chatty_state})",
            e50 * 1000 <= TARGET_EVENT_P50_MS,
        )
    else:
        verdicts.check("per-event delay: no events arrived", False)
    if copy_delays:
        info(f"  detail, written there -> in the local copy of events.jsonl (the tail -F follower): "
             f"{summary_ms(copy_delays)}")  # fmt: skip
    if succeeded != tasks:
        verdicts.check(f"all tasks succeeded: {succeeded} of {tasks}", False)
    return verdicts.exit_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=50)
    args = parser.parse_args()
    return asyncio.run(run(args.tasks))


if __name__ == "__main__":
    sys.exit(main())
