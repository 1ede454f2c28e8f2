"""Benchmark what a task's worktree adds to dispatch on a 10,000-file repository (target ≤ 50 ms p50).

Run from the repository root::

    python benchmarks/bench_worktree.py [--files 10000] [--repeat 15]

It generates a throw-away git repository (``--files`` small files in 100 folders, one commit) and
times, each ``--repeat`` times in this process:

- ``prepare()`` with a spare worktree ready (what dispatch does once the repository has had a task:
  the spare is moved into place and switched to the new branch; the spare itself is made after the
  window opens, off the dispatch path). This is the figure the target is for;
- ``prepare()`` with no spare: a plain ``git worktree add -b`` (the first task on a repository);
- the same ``git worktree add`` with ``-c checkout.workers=0`` (parallel checkout, one worker per core);
- the git baseline dispatch takes of the main checkout without isolation (``git stash create`` and
  the untracked files): a worktree's baseline is its base commit, so isolation saves this;
- housekeeping's disk use of one worktree (``core.housekeeping.disk_use``: an ``os.scandir`` walk),
  and ``usage()`` of all the worktrees made (what ``orchestra worktrees`` and doctor read).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_worktree.py` without an installed package
    sys.path.insert(0, str(ROOT))

from core import housekeeping, worktrees  # noqa: E402
from core.summary import git_baseline  # noqa: E402

TARGET_MS = 50.0


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def make_repo(where: Path, files: int) -> Path:
    repo = where / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for n in range(files):
        folder = repo / f"pkg{n % 100}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{n}.py").write_text(f'"""Module {n}."""\n\nVALUE = {n}\n' * 8)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "init")
    return repo


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, times: list[float]) -> float:
    p50, p90 = pct(times, 0.5), pct(times, 0.9)
    print(f"{name:<46} p50 {p50:7.1f} ms  p90 {p90:7.1f} ms  (n={len(times)})", flush=True)
    return p50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch-bench-wt-") as scratch:
        where = Path(scratch)
        started = time.perf_counter()
        repo = make_repo(where, args.files)
        print(f"repository: {args.files:,} files, made in {time.perf_counter() - started:.1f} s", flush=True)
        home = where / "data"
        spare_ms, plain_ms, workers_ms, baseline_ms = [], [], [], []
        for n in range(args.repeat):
            worktrees.add_spare(repo, home)  # made after the previous launch, off the dispatch path
            t0 = time.perf_counter()
            tree = worktrees.prepare(repo, f"t{n}", "Add the login page", None, home)
            spare_ms.append((time.perf_counter() - t0) * 1000)
            assert (tree.path / "pkg0" / "mod0.py").exists() and not worktrees.spares(repo, home)
            t0 = time.perf_counter()
            worktrees.prepare(repo, f"p{n}", "Add the login page", None, home)
            plain_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            git(repo, "-c", "checkout.workers=0", "worktree", "add", "-q", "-b", f"w{n}", str(where / f"w{n}"), "main")
            workers_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            git_baseline(str(repo))
            baseline_ms.append((time.perf_counter() - t0) * 1000)
        median = report("prepare(), a spare ready (dispatch)", spare_ms)
        report("prepare(), no spare (git worktree add)", plain_ms)
        report("git -c checkout.workers=0 worktree add", workers_ms)
        report("git baseline of the main checkout (saved)", baseline_ms)
        disk_ms = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            used = housekeeping.disk_use(tree.path)
            disk_ms.append((time.perf_counter() - t0) * 1000)
        report(f"disk_use() of one worktree ({used / 1e6:.0f} MB)", disk_ms)
        t0 = time.perf_counter()
        rows = housekeeping.usage(home)
        count = sum(len(row.worktrees) + len(row.spares) for row in rows)
        print(f"usage() of {count} worktrees: {(time.perf_counter() - t0) * 1000:.0f} ms", flush=True)
        print(f"spread of the spare path: stdev {statistics.pstdev(spare_ms):.1f} ms", flush=True)
        ok = median <= TARGET_MS
        print(f"prepare() p50 {median:.1f} ms <= {TARGET_MS:.0f} ms: {'PASS' if ok else 'FAIL'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
