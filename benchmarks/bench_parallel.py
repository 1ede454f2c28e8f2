"""Three independent 3 s tasks run in parallel: wall time with concurrency 3 against concurrency 1.

Command agents ``sleep 3``: ``par`` may run 3 at once, ``seq`` only 1 (limits.max_concurrent 3).
Wall time is from the first ``delegate`` to the last completion (the engine's ``finished``
notification, stamped by a listener). Both runs happen in the same process, one after the other.

Run: ``python benchmarks/bench_parallel.py``
"""

from __future__ import annotations

import asyncio
import sys
import time

from _common import Bench, Verdicts, bench_app, command_agent, info

TASK_S = 3.0
TARGET_S = 3.5
N = 3


async def batch(bench: Bench, agent: str) -> tuple[float, list[str]]:
    app = bench.app
    t0 = time.time()
    ids = [app.service.delegate(f"{agent} sleeper {i}", agent=agent, cwd=str(bench.workdir)).task.id
           for i in range(N)]  # fmt: skip
    tasks = await asyncio.wait_for(asyncio.gather(*(app.engine.wait_finished(i) for i in ids)), 60)
    wall = max(bench.recorder.finished_at[i] for i in ids) - t0
    return wall, [t.state.value for t in tasks]


async def run() -> int:
    verdicts = Verdicts()
    agents = {
        "par": command_agent("sleep", [f"{TASK_S:g}"], max_concurrent=N),
        "seq": command_agent("sleep", [f"{TASK_S:g}"], max_concurrent=1),
    }
    async with bench_app(agents, {"max_concurrent": N}) as bench:
        par, par_states = await batch(bench, "par")
        seq, seq_states = await batch(bench, "seq")
    states = par_states + seq_states
    info(f"{N} tasks `sleep {TASK_S:g}`: sequential (max_concurrent 1) {seq:.2f} s, parallel (max_concurrent {N}) "
         f"{par:.2f} s, speed-up {seq / par:.2f}x")  # fmt: skip
    verdicts.check(
        f"parallel wall time: {par:.2f} s for {N} x {TASK_S:g} s tasks, sequential {seq:.2f} s "
        f"(target parallel <= {TARGET_S:g} s)",
        par <= TARGET_S,
    )
    if any(s != "succeeded" for s in states):
        verdicts.check(f"all tasks succeeded: {states}", False)
    return verdicts.exit_code


def main() -> int:
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
