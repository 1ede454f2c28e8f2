"""Benchmark Claude Code's stream parser on a long run: its cost must grow with the lines, not their square.

A run of many API calls (each an ``assistant`` line with its usage) is what a long agent session
prints; the runner parses every line as it arrives, so a parser that re-sums all earlier calls
per line makes the runner itself the bottleneck.

Run from the repository root::

    python benchmarks/bench_parse.py [--messages 10000]

Target: 10,000 messages parse in under 2 s, and five times the messages take under ten times as long.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.agents.claude import ClaudeParser  # noqa: E402


def stream(messages: int) -> list[str]:
    lines = [json.dumps({"type": "system", "subtype": "init", "session_id": "s", "model": "claude-sonnet-4-5"})]
    for n in range(messages):
        usage = {"input_tokens": 10, "output_tokens": 5}
        text = [{"type": "text", "text": f"line {n}"}]
        message = {"id": f"m{n}", "model": "claude-sonnet-4-5", "role": "assistant", "content": text, "usage": usage}
        lines.append(json.dumps({"type": "assistant", "message": message}))
    return lines


def parse_seconds(messages: int) -> float:
    lines, parser = stream(messages), ClaudeParser()
    started = time.perf_counter()
    for line in lines:
        parser.feed(line)
    elapsed = time.perf_counter() - started
    usage, _ = parser.live_usage()
    assert usage.input_tokens == 10 * messages and usage.output_tokens == 5 * messages, usage
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    small, big = parse_seconds(args.messages), parse_seconds(5 * args.messages)
    print(f"claude parser: {args.messages:,} messages in {small:.2f} s; {5 * args.messages:,} in {big:.2f} s "
          f"({big / small:.1f}× the time for 5× the lines; target < 10×, and < 2 s for 10,000)")  # fmt: skip
    return 0 if small < 2.0 and big < 10 * small else 1


if __name__ == "__main__":
    sys.exit(main())
