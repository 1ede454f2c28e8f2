"""Benchmark one Prometheus scrape of the bot over a store of 100,000 tasks (target ≤ 100 ms).

Run from the repository root::

    python benchmarks/bench_metrics.py [--tasks 100000] [--scrapes 50]

It seeds a throw-away SQLite store with a year of finished tasks, their cost rows and their outbox
rows (a console completion, a Telegram acknowledgement and completion each, some waiting and some
given up), starts the metrics endpoint on 127.0.0.1 (a free port) with the store connection of its
own that ``orchestra bot`` gives it, and times ``GET /metrics`` over real HTTP, one scrape after
another, as Prometheus would: p50 and p99 of ``--scrapes`` scrapes, after one warm-up.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_metrics.py` without an installed package
    sys.path.insert(0, str(ROOT))

from _common import Verdicts, info, percentile  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from core.clock import SystemClock  # noqa: E402
from core.metrics import Metrics, MetricsServer, TransportHealth  # noqa: E402
from core.store import Store  # noqa: E402

TARGET_MS = 100.0
AGENTS = ["claude", "codex", "gemini", "aider", "opencode"]
CATEGORIES = ["architecture", "backend", "frontend", "tests", "docs", "bugfix", "refactor", "devops"]
FINISHED = [*["succeeded"] * 85, *["failed"] * 8, *["cancelled"] * 3, *["over_budget"] * 2, "timed_out", "rejected"]


def seed(store: Store, count: int, now: float, rng: random.Random) -> int:
    """``count`` finished tasks over the last year with cost and outbox rows; returns the outbox rows."""
    tasks: list[dict[str, Any]] = []
    costs: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    for num in range(1, count + 1):
        finished_at = now - rng.random() * 365 * 86400
        agent, category, state = rng.choice(AGENTS), rng.choice(CATEGORIES), rng.choice(FINISHED)
        input_tokens, output_tokens = rng.randint(5_000, 400_000), rng.randint(200, 20_000)
        cost = round(input_tokens * 2e-6 + output_tokens * 1e-5, 4) if rng.random() > 0.01 else None
        task_id = f"t{num}"
        tasks.append({"num": num, "id": task_id, "text": f"task {num}", "agent": agent, "category": category,
                      "rule": "bench", "state": state, "cwd": "/tmp", "created_at": finished_at - 600,
                      "started_at": finished_at - 540, "finished_at": finished_at, "updated_at": finished_at,
                      "cost_usd": cost, "input_tokens": input_tokens, "output_tokens": output_tokens})  # fmt: skip
        costs.append({"task_id": task_id, "ts": finished_at, "agent": agent, "category": category, "model": "m",
                      "input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_read_tokens": input_tokens // 2, "cache_write_tokens": 0, "cost_usd": cost,
                      "source": "cli"})  # fmt: skip
        for channel, kind, at, message_id in (
            ("telegram", "ack", finished_at - 600, f"{num}1"),
            ("console", "completion", finished_at, None),
            ("telegram", "completion", finished_at, f"{num}2"),
        ):
            outbox.append({"dedupe_key": f"{channel}:{task_id}:{kind}", "channel": channel, "kind": kind,
                           "task_id": task_id, "text": f"{task_id} {state}", "payload_json": "{}", "created_at": at,
                           "attempts": 1, "next_attempt_at": at, "sent_at": at + 0.2, "chat_id": "42",
                           "message_id": message_id})  # fmt: skip
    for i in range(300):  # a backlog: a Telegram outage's worth waiting, some refused for good
        at = now - 900 + i
        outbox.append({"dedupe_key": f"telegram:wait:{i}", "channel": "telegram", "kind": "completion",
                       "task_id": None, "text": "waiting", "payload_json": "{}", "created_at": at, "attempts": 3,
                       "next_attempt_at": now + 30, "chat_id": "42",
                       "failed_at": at + 1 if i % 10 == 0 else None})  # fmt: skip
    store.db.execute("BEGIN")  # one transaction: seeding is not what is measured
    store.db.table("tasks").insert_all(tasks, batch_size=2000)
    store.db.table("costs").insert_all(costs, batch_size=2000)
    store.db.table("outbox").insert_all(outbox, batch_size=2000)
    store.db.execute("COMMIT")
    return len(outbox)


def scrape(url: str) -> tuple[float, str]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read().decode()
    return time.perf_counter() - start, body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    verdicts = Verdicts()
    clock = SystemClock()
    with tempfile.TemporaryDirectory(prefix="orchestra-bench-metrics-") as tmp:
        path = Path(tmp) / "orchestra.db"
        writer = Store(path)
        t0 = time.perf_counter()
        rows = seed(writer, args.tasks, clock.now(), random.Random(9464))
        info(f"seeded {args.tasks:,} tasks, {args.tasks:,} cost rows and {rows:,} outbox rows "
             f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        scrape_store = Store(path)  # the scrape thread's own connection, as `orchestra bot` opens it
        metrics = Metrics(scrape_store, clock, channels=["console", "telegram"], transports=["telegram"])
        metrics.watch_transport("telegram", lambda: TransportHealth(True, 3.0))
        server = MetricsServer(metrics, "127.0.0.1", 0)
        server.start()
        try:
            first, body = scrape(server.url)
            times = [scrape(server.url)[0] for _ in range(args.scrapes)]
        finally:
            server.stop()
            scrape_store.close()
            writer.close()
    families = {family.name: family for family in text_string_to_metric_families(body)}
    tasks = sum(sample.value for sample in families["orchestra_tasks"].samples)
    runs = sum(sample.value for sample in families["orchestra_runs"].samples)
    info(f"scrape: {len(body):,} bytes, {len(families)} families; {tasks:,.0f} tasks and {runs:,.0f} runs reported")
    info(f"  first scrape (cold page cache of the new connection): {first * 1000:.1f} ms")
    p50, p99 = percentile(times, 50), percentile(times, 99)
    verdicts.check(
        f"one scrape, GET /metrics over HTTP: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {max(times) * 1000:.1f} ms over {len(times)} scrapes (target p99 <= {TARGET_MS:.0f} ms)",
        p99 * 1000 <= TARGET_MS,
    )
    verdicts.check(f"the scrape reports every seeded task: {tasks:,.0f} of {args.tasks:,}", tasks == args.tasks)
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
