"""Benchmark task routing: time per task and category accuracy with the default rules.

Run from the repository root::

    python benchmarks/bench_routing.py [--repeat 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.routing import CATEGORIES, Router, load_default_rules  # noqa: E402

DATA = ROOT / "tests" / "data"


def load_set(name: str) -> list[tuple[str, str]]:
    data = yaml.safe_load((DATA / name).read_text(encoding="utf-8"))
    return [(str(item["text"]), str(item["category"])) for item in data]


def accuracy(router: Router, labelled: list[tuple[str, str]]) -> tuple[float, dict[str, str]]:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for text, want in labelled:
        total[want] += 1
        right[want] += router.route(text).category == want
    per_category = {c: f"{right[c]}/{total[c]}" for c in CATEGORIES if total[c]}
    return sum(right.values()) / len(labelled), per_category


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1000, help="times each labelled task is routed")
    args = parser.parse_args()

    start = time.perf_counter()
    rules = load_default_rules()
    router = Router(rules, category_agents={}, default_agent="claude")
    setup_ms = (time.perf_counter() - start) * 1000
    labelled = load_set("routing_labelled.yaml")
    holdout = load_set("routing_holdout.yaml")

    texts = [text for text, _ in labelled]
    timings: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(args.repeat):
        for text in texts:
            begin = clock()
            router.route(text)
            timings.append(clock() - begin)
    timings.sort()
    median_us = statistics.median(timings) / 1000
    p99_us = timings[int(len(timings) * 0.99)] / 1000
    mean_chars = statistics.mean(len(text) for text in texts)

    # 200-character texts (labelled tasks glued together and cut), denser in keywords than real tasks
    rng = random.Random(0)
    long_texts = [" ".join(rng.sample(texts, 6))[:200] for _ in range(200)]
    long_timings: list[float] = []
    for _ in range(max(1, args.repeat // 4)):
        for text in long_texts:
            begin = clock()
            router.route(text)
            long_timings.append(clock() - begin)
    long_median_us = statistics.median(long_timings) / 1000

    print(f"rules: {len(rules)} default rules loaded and compiled in {setup_ms:.1f} ms")
    print(
        f"routing: {len(texts)} tasks, median {median_us:.1f} µs, p99 {p99_us:.1f} µs per task "
        f"({args.repeat} rounds, {len(timings)} routes, mean {mean_chars:.0f} chars)"
    )
    print(f"routing: 200-char texts, median {long_median_us:.1f} µs per task")
    for name, labelled_set in (("labelled", labelled), ("holdout", holdout)):
        score, per_category = accuracy(router, labelled_set)
        right = round(score * len(labelled_set))
        detail = ", ".join(f"{c} {v}" for c, v in per_category.items())
        print(f"accuracy {name}: {right}/{len(labelled_set)} = {score:.1%}  ({detail})")


if __name__ == "__main__":
    main()
