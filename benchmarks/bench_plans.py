"""A plan of one step, then three independent 3 s steps, then one step, on the stand-in agent:
wall time as a plan (the three in parallel) against the same five steps in a row.

Two stand-in agents: ``quick`` (``ORCHESTRA_STANDIN_DURATION`` 0) for the first and last steps,
``slow`` (3 s) for the middle three. The same process runs both plans, one after the other,
through ``Service.delegate_plan`` and the engine (the dispatcher moves plans on after each run).
Wall time is from ``delegate_plan`` to the plan's end as stored.

Run: ``python benchmarks/bench_plans.py``
"""

from __future__ import annotations

import asyncio
import sys
import time

from _common import Bench, Verdicts, bench_app, info

from core import plans as planning

STEP_S = 3.0
TARGET_S = 10.0
SPEED_UP = 2.5


def standin(duration: float) -> dict[str, object]:
    return {"kind": "claude", "command": "{python} -S {orchestra}/core/agents/standin", "max_concurrent": 3,
            "env": {"ORCHESTRA_STANDIN_DURATION": f"{duration:g}"}}  # fmt: skip


def steps(parallel: bool) -> list[dict[str, object]]:
    """Five steps: the middle three wait for the first (as a plan) or each for the one before (in a row)."""
    middle: list[dict[str, object]] = []
    for i in (1, 2, 3):
        after = [1] if parallel else [i]  # step i + 1 waits for step 1, or for step i
        middle.append({"title": f"part {i}", "text": f"Write part {i}", "agent": "slow", "after": after})
    last: dict[str, object] = {
        "title": "wrap up",
        "text": "Write the summary",
        "agent": "quick",
        "after": [2, 3, 4] if parallel else [4],
    }
    return [{"title": "plan it", "text": "Write the outline", "agent": "quick"}, *middle, last]


async def run_plan(bench: Bench, parallel: bool) -> tuple[float, str]:
    app = bench.app
    spec = planning.from_data(steps(parallel), "bench")
    t0 = time.time()
    made = app.service.delegate_plan(spec, "benchmark plan", cwd=str(bench.workdir))
    for _ in range(600):
        plan = app.service.get_plan(made.plan.id)
        if plan.finished or plan.state == "paused":
            break
        await asyncio.sleep(0.05)
    return (plan.finished_at or time.time()) - t0, plan.state


async def run() -> int:
    verdicts = Verdicts()
    async with bench_app({"quick": standin(0), "slow": standin(STEP_S)}, {"max_concurrent": 4}) as bench:
        par, par_state = await run_plan(bench, parallel=True)
        seq, seq_state = await run_plan(bench, parallel=False)
    info(f"plan 1 → 3 x {STEP_S:g} s ∥ → 1 on the stand-in: as a plan {par:.2f} s; the same five in a row "
         f"{seq:.2f} s; {seq / par:.2f}x faster")  # fmt: skip
    verdicts.check(
        f"plan wall time {par:.2f} s (target <= {TARGET_S:g} s)", par <= TARGET_S and par_state == "succeeded"
    )
    verdicts.check(
        f"speed-up {seq / par:.2f}x (target >= {SPEED_UP:g}x)", seq / par >= SPEED_UP and seq_state == "succeeded"
    )
    return verdicts.exit_code


def main() -> int:
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
