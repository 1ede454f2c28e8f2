"""Dispatch and completion latency of the engine, over 200 tasks of an agent that runs 0.1 s.

* dispatch latency: from ``service.delegate(...)`` returning (time.time() right after the call)
  to ``agent_started_at`` in the task's ``started`` event (time.time() in the runner right after
  the agent process was exec'd). Tasks go one at a time, each waited for, so no queueing counts.
* completion latency: from ``exited_at`` (time.time() in the runner when the agent exited) to the
  engine ingesting the ``result`` event (an ``Engine.listeners`` entry stamps time.time()).

Run: ``python benchmarks/bench_dispatch.py [--tasks N]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from _common import Verdicts, bench_app, command_agent, info, ms, percentile, summary_ms

TARGET_P50_MS = 30.0
TARGET_P99_MS = 80.0
TARGET_DONE_P99_MS = 100.0


async def run(tasks: int) -> int:
    verdicts = Verdicts()
    # A 0.1 s agent: the runner is already waiting on its output when it exits, as with a real one.
    agents = {"fast": command_agent("sleep", ["0.1"], max_concurrent=4)}
    async with bench_app(agents, {"max_concurrent": 4}) as bench:
        service, engine, rec = bench.app.service, bench.app.engine, bench.recorder
        called: dict[str, float] = {}
        returned: dict[str, float] = {}
        deadline = time.monotonic() + 240
        for i in range(tasks):
            t0 = time.time()
            d = service.delegate(f"bench dispatch task {i}", agent="fast", cwd=str(bench.workdir))
            t1 = time.time()
            called[d.task.id], returned[d.task.id] = t0, t1
            await engine.wait_finished(d.task.id, timeout=max(1.0, deadline - time.monotonic()))
        ids = list(returned)
        states = [bench.app.store.get_task(i).state.value for i in ids]
        missing = [i for i in ids if i not in rec.started or i not in rec.result_at]
        if missing:
            info(f"error: {len(missing)} tasks have no started/result event: {missing[:5]}")
            return 2
        dispatch = [float(rec.started[i]["agent_started_at"]) - returned[i] for i in ids]
        from_call = [float(rec.started[i]["agent_started_at"]) - called[i] for i in ids]
        delegate_call = [returned[i] - called[i] for i in ids]
        completion = [rec.result_at[i] - float(rec.result[i]["exited_at"]) for i in ids]
        written = [float(rec.result[i]["written_at"]) - float(rec.result[i]["exited_at"]) for i in ids]
        in_flight = [rec.result_at[i] - float(rec.result[i]["written_at"]) for i in ids]

    ok_states = sum(1 for s in states if s == "succeeded")
    info(f"tasks: {tasks} of agent `sleep 0.1` ({ok_states} succeeded), one at a time, max_concurrent 4")
    p50, p99 = percentile(dispatch, 50), percentile(dispatch, 99)
    verdicts.check(
        f"dispatch latency: p50 {ms(p50)}, p99 {ms(p99)}, max {ms(max(dispatch))} over {tasks} tasks "
        f"(target p50 <= {TARGET_P50_MS:.0f}, p99 <= {TARGET_P99_MS:.0f})",
        p50 * 1000 <= TARGET_P50_MS and p99 * 1000 <= TARGET_P99_MS,
    )
    info(f"  detail, delegate() returned -> agent exec'd: {summary_ms(dispatch)}, min {ms(min(dispatch))}")
    info(f"  detail, delegate() called   -> agent exec'd: {summary_ms(from_call)}")
    info(f"  detail, delegate() call itself (route, store, tmux new-window): {summary_ms(delegate_call)}")
    c50, c99 = percentile(completion, 50), percentile(completion, 99)
    verdicts.check(
        f"completion latency: p50 {ms(c50)}, p99 {ms(c99)}, max {ms(max(completion))} over {tasks} tasks "
        f"(target p99 <= {TARGET_DONE_P99_MS:.0f})",
        c99 * 1000 <= TARGET_DONE_P99_MS,
    )
    info(f"  detail, agent exit -> result.json written (runner): {summary_ms(written)}")
    info(f"  detail, result.json written -> event ingested (socket + engine loop): {summary_ms(in_flight)}")
    if ok_states != tasks:
        verdicts.check(f"all tasks succeeded: {ok_states} of {tasks}", False)
    return verdicts.exit_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    return asyncio.run(run(args.tasks))


if __name__ == "__main__":
    sys.exit(main())
