"""500 instant tasks through the queue: none lost, none run twice, and how fast it drains.

500 tasks of a command agent ``true`` are delegated in one burst with limits.max_concurrent 4;
the engine starts 4 and dispatches the next each time a result comes in. Afterwards the store
must show every task ``succeeded``, exactly one ``started`` and one ``result`` event per task in
the events table, and exactly one row per task in the ``costs`` table (with cost NULL: ``true``
reports no cost).

Run: ``python benchmarks/bench_queue.py [--tasks N]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

from _common import Verdicts, bench_app, command_agent, cpu_sample, info, summary_ms

TIMEOUT_S = 300.0


async def run(n: int) -> int:
    verdicts = Verdicts()
    agents = {"instant": command_agent("true", ["{task}"], max_concurrent=4)}
    async with bench_app(agents, {"max_concurrent": 4}) as bench:
        app = bench.app
        cpu0, sys0 = cpu_sample(None), system_cpu()
        t0 = time.time()
        ids = [app.service.delegate(f"queued task {i}", agent="instant", cwd=str(bench.workdir)).task.id
               for i in range(n)]  # fmt: skip
        burst = time.time() - t0
        try:
            await asyncio.wait_for(asyncio.gather(*(app.engine.wait_finished(i) for i in ids)), TIMEOUT_S)
        except TimeoutError:
            info(f"warning: not all tasks finished within {TIMEOUT_S:g} s; counting what is there")
        cpu1, sys1 = cpu_sample(None), system_cpu()
        rec = bench.recorder
        finished = [rec.finished_at[i] for i in ids if i in rec.finished_at]
        done = [i for i in ids if i in rec.finished_at and i in rec.started and i in rec.dispatched_at]
        phases = {
            "engine start_window returned -> agent exec'd (runner start-up)": [
                float(rec.started[i]["agent_started_at"]) - rec.dispatched_at[i] for i in done
            ],
            "agent exec'd -> agent exit seen by the runner": [
                float(rec.result[i]["exited_at"]) - float(rec.started[i]["agent_started_at"]) for i in done
            ],
            "agent exit -> result ingested by the engine": [
                rec.result_at[i] - float(rec.result[i]["exited_at"]) for i in done
            ],
            "result ingested -> finalized": [rec.finished_at[i] - rec.result_at[i] for i in done],
        }
        wall = (max(finished) - t0) if finished else float("nan")
        db = app.store.db
        states = Counter(app.store.get_task(i).state.value for i in ids)
        started = dict(db.execute("SELECT task_id, COUNT(*) FROM events WHERE kind = 'started' GROUP BY task_id")
                       .fetchall())  # fmt: skip
        results = dict(db.execute("SELECT task_id, COUNT(*) FROM events WHERE kind = 'result' GROUP BY task_id")
                       .fetchall())  # fmt: skip
        costs = dict(db.execute("SELECT task_id, COUNT(*) FROM costs GROUP BY task_id").fetchall())
        priced = db.execute("SELECT COUNT(*) FROM costs WHERE cost_usd IS NOT NULL").fetchone()[0]
        total_tasks = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        outbox = dict(db.execute("SELECT task_id, COUNT(*) FROM outbox WHERE kind = 'completion' GROUP BY task_id")
                      .fetchall())  # fmt: skip
    info(f"{n} tasks of agent `true` delegated in {burst:.2f} s, limits.max_concurrent 4")
    info(f"  states: {dict(states)}; tasks in the store: {total_tasks}")
    lost = [i for i in ids if started.get(i, 0) == 0 or results.get(i, 0) == 0]
    verdicts.check(
        f"none lost: {states.get('succeeded', 0)} of {n} succeeded, {len(lost)} without a started+result event",
        states.get("succeeded", 0) == n and not lost and total_tasks == n,
    )
    dup_started = sum(1 for i in ids if started.get(i, 0) > 1)
    dup_results = sum(1 for i in ids if results.get(i, 0) > 1)
    dup_costs = sum(1 for i in ids if costs.get(i, 0) > 1)
    no_cost = sum(1 for i in ids if costs.get(i, 0) == 0)
    dup_notes = sum(1 for i in ids if outbox.get(i, 0) > 1)
    verdicts.check(
        f"none duplicated: {dup_started} tasks with more than one started event, {dup_results} with more than one "
        f"result event, {dup_costs} with more than one costs row ({no_cost} with none; {priced} rows priced, "
        f"as expected 0), {dup_notes} with more than one completion notice",
        dup_started == 0 and dup_results == 0 and dup_costs == 0 and no_cost == 0 and dup_notes == 0,
    )
    info(f"queue throughput: {n / wall:.1f} tasks/s, {wall:.2f} s wall from the first delegate to the last "
         "completion")  # fmt: skip
    span = cpu1.wall - cpu0.wall
    busy, total = sys1[0] - sys0[0], sys1[1] - sys0[1]
    info(f"  engine process CPU: {(cpu1.self_s - cpu0.self_s) / span * 100:.0f}% of one core "
         f"({(cpu1.self_s - cpu0.self_s) / n * 1000:.1f} ms per task); whole machine busy "
         f"{busy / total * 100 if total else 0:.0f}% of {os.cpu_count()} cores")  # fmt: skip
    for name, values in phases.items():
        info(f"  {name}: {summary_ms(values)}")
    return verdicts.exit_code


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=500)
    args = parser.parse_args()
    return asyncio.run(run(args.tasks))


if __name__ == "__main__":
    sys.exit(main())
