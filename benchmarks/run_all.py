"""Run every benchmark in sequence, print their output, exit non-zero if any target was missed.

Runs every script in ``SCRIPTS``, each as its own ``python benchmarks/NAME.py`` process
with a time limit, and ends with one line per script.

Run: ``python benchmarks/run_all.py``
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_routing.py",
    "bench_dispatch.py",
    "bench_parallel.py",
    "bench_queue.py",
    "bench_idle.py",
    "bench_telegram.py",
    "bench_chat.py",
    "bench_permissions.py",
    "bench_digest.py",
    "bench_metrics.py",
    "bench_web.py",
    "bench_parse.py",
    "bench_cli.py",
    "bench_startup.py",
    "bench_worktree.py",
    "bench_hosts.py",
]
LIMIT_S = 600


def run(script: Path) -> tuple[int, float]:
    print(f"\n=== {script.name} ===", flush=True)
    started = time.monotonic()
    try:
        code = subprocess.run([sys.executable, str(script)], cwd=str(HERE.parent), timeout=LIMIT_S,
                              check=False).returncode  # fmt: skip
    except subprocess.TimeoutExpired:
        print(f"{script.name}: did not finish within {LIMIT_S} s", flush=True)
        code = 124
    return code, time.monotonic() - started


def main() -> int:
    outcomes: list[tuple[str, int, float]] = []
    for name in SCRIPTS:
        script = HERE / name
        if not script.exists():
            if name != "bench_routing.py":
                outcomes.append((name, 127, 0.0))
                print(f"\n=== {name} === missing", flush=True)
            continue
        code, took = run(script)
        outcomes.append((name, code, took))
    print("\n=== summary ===")
    for name, code, took in outcomes:
        verdict = "PASS" if code == 0 else ("FAIL" if code == 1 else f"ERROR (exit {code})")
        print(f"{name}: {verdict} in {took:.1f} s")
    return 0 if all(code == 0 for _, code, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
