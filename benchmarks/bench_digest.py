"""Benchmark the digest over a store of 100,000 tasks: build it (target ≤ 200 ms), then draw its chart.

Run from the repository root::

    python benchmarks/bench_digest.py [--tasks 100000] [--repeat 20]

It seeds a throw-away SQLite store (a year of finished tasks with their cost rows, plus tasks
waiting for approval or review and running ones), then times, in this fresh process:

- the first build, which also pays for importing genai-prices (the bot process preloads it at
  start, so its digests never do) and the warm builds that follow;
- the budget check every ``delegate`` makes, and the ``orchestra cost`` report;
- the PNG chart, drawn apart from the build (matplotlib's import is paid on first use).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_digest.py` without an installed package
    sys.path.insert(0, str(ROOT))

from core.config import Config, parse_config  # noqa: E402
from core.costs import CostTracker, cost_report  # noqa: E402
from core.digest import build_digest, render_chart_png  # noqa: E402
from core.store import Store  # noqa: E402

TARGET_MS = 200.0
AGENTS = ["claude", "codex", "gemini", "aider", "opencode"]
CATEGORIES = ["architecture", "backend", "frontend", "tests", "docs", "bugfix", "refactor", "devops"]
MODELS = {"claude": "claude-sonnet-4-5", "codex": "gpt-5", "gemini": "gemini-2.5-pro", "aider": "claude-opus-4-1",
          "opencode": "gpt-5"}  # fmt: skip
FINISHED = [
    *["succeeded"] * 85, *["failed"] * 6, *["cancelled"] * 3, *["over_budget"] * 2, *["timed_out"] * 2,
    "approved", "rejected",
]  # fmt: skip


class FixedClock:
    def __init__(self, ts: float) -> None:
        self.ts = ts

    def now(self) -> float:
        return self.ts


def config() -> Config:
    data: dict[str, Any] = yaml.safe_load((ROOT / "bots.yaml").read_text())
    data["budgets"].update(per_day_usd=40, per_month_usd=600)
    return parse_config(data)


def seed(store: Store, count: int, now: float, rng: random.Random) -> None:
    """``count`` tasks over the last year, most finished with a cost row; some waiting and running."""
    tasks, costs = [], []
    for num in range(1, count + 1):
        finished_at = now - rng.random() * 365 * 86400
        agent, category = rng.choice(AGENTS), rng.choice(CATEGORIES)
        state = rng.choice(FINISHED)
        input_tokens, output_tokens = rng.randint(5_000, 400_000), rng.randint(200, 20_000)
        cost = round(input_tokens * 2e-6 + output_tokens * 1e-5, 4) if rng.random() > 0.01 else None
        tasks.append({"num": num, "id": f"t{num}", "text": f"task {num}: change {category} code for {agent}",
                      "agent": agent, "category": category, "rule": "bench", "state": state, "cwd": "/tmp",
                      "created_at": finished_at - 600, "started_at": finished_at - 540, "finished_at": finished_at,
                      "updated_at": finished_at, "cost_usd": cost, "input_tokens": input_tokens,
                      "output_tokens": output_tokens,
                      "error": "exited with code 1" if state == "failed" else None})  # fmt: skip
        costs.append({"task_id": f"t{num}", "ts": finished_at, "agent": agent, "category": category,
                      "model": MODELS[agent], "input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_read_tokens": input_tokens // 2, "cache_write_tokens": 0, "cost_usd": cost,
                      "source": "cli"})  # fmt: skip
    for offset, (state, n) in enumerate([("awaiting_approval", 20), ("needs_review", 10), ("running", 8)]):
        for i in range(n):
            num = count + 1 + offset * 100 + i
            tasks.append({"num": num, "id": f"t{num}", "text": f"open task {num}", "agent": "claude",
                          "category": "backend", "rule": "bench", "state": state, "cwd": "/tmp",
                          "created_at": now - 3600, "started_at": now - 1800 if state == "running" else None,
                          "updated_at": now - 60, "live_cost_usd": 0.4 if state == "running" else None,
                          "estimate_usd": 0.6})  # fmt: skip
    store.db.table("tasks").insert_all(tasks, batch_size=2000)
    store.db.table("costs").insert_all(costs, batch_size=2000)


def timed(func: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func()
    return (time.perf_counter() - start) * 1000, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    cfg = config()
    tz = cfg.digest.zone()
    morning = datetime.now(tz).replace(hour=8, minute=0, second=0, microsecond=0)
    clock = FixedClock(morning.timestamp())
    with tempfile.TemporaryDirectory(prefix="orchestra-bench-digest-") as tmp:
        store = Store(Path(tmp) / "orchestra.db")
        t0 = time.perf_counter()
        seed(store, args.tasks, clock.now(), random.Random(6))
        yesterday = (morning - timedelta(days=1)).timestamp()
        store.record_digest((morning - timedelta(days=1)).date().isoformat(), yesterday, yesterday - 86400,
                            yesterday, 0)  # fmt: skip
        print(f"seeded {args.tasks:,} tasks and cost rows in {time.perf_counter() - t0:.1f} s", flush=True)

        first_ms, digest = timed(lambda: build_digest(store, cfg, clock))
        warm = [timed(lambda: build_digest(store, cfg, clock))[0] for _ in range(args.repeat)]
        tracker = CostTracker(store, cfg, clock)
        admission = [timed(tracker.admission)[0] for _ in range(args.repeat)]
        report = [timed(lambda: cost_report(tracker))[0] for _ in range(args.repeat)]
        chart_first_ms, png = timed(lambda: render_chart_png(digest.chart))
        chart_warm = [timed(lambda: render_chart_png(digest.chart))[0] for _ in range(5)]
        store.close()

    lines = digest.text.splitlines()
    print(f"digest: {len(lines)} lines, {len(digest.text)} chars, {len(digest.button_task_ids)} tasks with buttons")
    print("\n".join(f"  | {line}" for line in [*lines[:3], "…", *lines[-4:]]))
    warm_ms = statistics.median(warm)
    print(f"digest build, first in this process (with the genai-prices import): {first_ms:.1f} ms")
    print(f"digest build, warm: median {warm_ms:.1f} ms, max {max(warm):.1f} ms over {args.repeat} builds")
    print(f"budget check per delegate: median {statistics.median(admission):.2f} ms")
    print(f"`orchestra cost` report: median {statistics.median(report):.1f} ms")
    print(f"chart PNG ({len(png):,} bytes): first {chart_first_ms:.0f} ms (with the matplotlib import), "
          f"then median {statistics.median(chart_warm):.0f} ms")  # fmt: skip
    ok = max(first_ms, warm_ms) <= TARGET_MS
    print(f"digest over {args.tasks:,} tasks ≤ {TARGET_MS:.0f} ms: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
