"""Shared setup for the benchmarks: a throw-away data dir, a private tmux server, the real engine.

Every benchmark gets its own temporary ``ORCHESTRA_HOME`` and its own tmux server
(``tmux -L orch-bench-<random> -f /dev/null``), runs the engine in this process exactly as
``tests/test_engine.py`` does, and kills that tmux server and removes the temporary files at the
end, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/NAME.py` without an installed package
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bot.app import App, open_app  # noqa: E402
from core.protocol import EventKind  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- results ------------------------------------------------------------------------------------
class Verdicts:
    """Collects PASS/FAIL lines; ``exit_code`` is 1 when any target was missed."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def check(self, line: str, ok: bool) -> bool:
        print(f"{line}: {'PASS' if ok else 'FAIL'}", flush=True)
        if not ok:
            self.failed.append(line)
        return ok

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def info(line: str) -> None:
    print(line, flush=True)


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (numpy's default method)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def summary_ms(values: Sequence[float]) -> str:
    """``p50 12.3 ms, p99 25.0 ms, max 40.1 ms`` for a list of durations in seconds."""
    return (
        f"p50 {ms(percentile(values, 50))}, p90 {ms(percentile(values, 90))}, "
        f"p99 {ms(percentile(values, 99))}, max {ms(max(values))}"
    )


# -- CPU and memory -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CpuSample:
    """CPU seconds (user+sys) of this process, of its reaped children, and of the tmux server."""

    wall: float
    self_s: float
    children_s: float
    tmux_s: float


def proc_cpu_s(pid: int) -> float:
    """utime+stime of a process from /proc/<pid>/stat, in seconds (0 if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw.rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of the stat line): utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    rss = hwm = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, hwm


def cpu_sample(tmux_pid: int | None) -> CpuSample:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSample(
        wall=time.monotonic(),
        self_s=me.ru_utime + me.ru_stime,
        children_s=kids.ru_utime + kids.ru_stime,
        tmux_s=proc_cpu_s(tmux_pid) if tmux_pid else 0.0,
    )


# -- events -------------------------------------------------------------------------------------
@dataclass
class Recorder:
    """An ``Engine.listeners`` entry: stamps the arrival (time.time()) of every event in the engine."""

    dispatched_at: dict[str, float] = field(default_factory=dict)
    started: dict[str, dict[str, Any]] = field(default_factory=dict)
    result_at: dict[str, float] = field(default_factory=dict)
    result: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished_at: dict[str, float] = field(default_factory=dict)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __call__(self, task_id: str, kind: str, data: dict[str, Any]) -> None:
        now = time.time()
        self.counts[(task_id, kind)] += 1
        if kind == EventKind.DISPATCHED:
            self.dispatched_at[task_id] = now
        elif kind == EventKind.STARTED:
            self.started[task_id] = {**data, "_arrived": now}
        elif kind == EventKind.RESULT:
            self.result_at[task_id] = now
            self.result[task_id] = data
        elif kind == EventKind.FINISHED:
            self.finished_at[task_id] = now


# -- the app ------------------------------------------------------------------------------------
@dataclass
class Bench:
    app: App
    socket_name: str
    tmp: Path
    workdir: Path
    recorder: Recorder

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket_name, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=10, check=False)  # fmt: skip

    def tmux_server_pid(self) -> int | None:
        out = self.tmux("display-message", "-p", "#{pid}")
        try:
            return int(out.stdout.strip())
        except ValueError:
            return None

    def agent_pids(self) -> list[int]:
        return [int(d["pid"]) for d in self.recorder.started.values() if d.get("pid")]

    def runner_pids(self) -> list[int]:
        return [int(d["runner_pid"]) for d in self.recorder.started.values() if d.get("runner_pid")]


def command_agent(command: str, args: Iterable[str] = (), *, max_concurrent: int = 4) -> dict[str, Any]:
    return {"kind": "command", "command": command, "args": list(args), "max_concurrent": max_concurrent}


def make_config(
    socket_name: str, agents: dict[str, dict[str, Any]], limits: dict[str, Any], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """bots.yaml as shipped, on a private tmux socket, with the benchmark's agents, limits and other sections."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "bots.yaml").read_text(encoding="utf-8"))
    data["tmux"] = {"socket_name": socket_name, "session": "bench", "config_file": "/dev/null"}
    data["agents"].update(agents)
    data["limits"].update(limits)
    data.update(extra or {})
    return data


@contextlib.asynccontextmanager
async def bench_app(
    agents: dict[str, dict[str, Any]], limits: dict[str, Any], extra: dict[str, Any] | None = None
) -> AsyncIterator[Bench]:
    """Open the app on a fresh home and tmux server, run the engine in this process, clean up."""
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    socket_name = f"orch-bench-{uuid.uuid4().hex[:10]}"
    home = tmp / "home"
    workdir = tmp / "work"  # not inside a git repository: no git snapshots in the measured path
    workdir.mkdir()
    saved = {k: os.environ.get(k) for k in ("ORCHESTRA_HOME", "ORCHESTRA_CONFIG", "TMUX")}
    os.environ["ORCHESTRA_HOME"] = str(home)
    os.environ.pop("ORCHESTRA_CONFIG", None)
    os.environ.pop("TMUX", None)
    config_path = tmp / "bots.yaml"
    config_path.write_text(yaml.safe_dump(make_config(socket_name, agents, limits, extra)), encoding="utf-8")
    app = open_app(config_path)
    recorder = Recorder()
    info(f"machine: {os.cpu_count()} cores, load average {machine_load()} at start; tmux -L {socket_name}")
    bench = Bench(app, socket_name, tmp, workdir, recorder)
    try:
        if not app.engine.acquire():
            raise RuntimeError("could not take the engine lock of a fresh data directory")
        app.engine.listeners.append(recorder)
        await app.engine.start()
        try:
            yield bench
        finally:
            # The engine checks a hung-up runner 0.5 s after it hangs up; let those checks run first.
            await asyncio.sleep(0.6)
            await app.engine.stop()
    finally:
        info(f"machine: load average {machine_load()} at the end of the measurements")
        app.close()
        bench.tmux("kill-server")
        # tmux 3.3a leaves the socket file of a killed server behind; it is ours, remove it
        tmpdir = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
        with contextlib.suppress(OSError):
            (tmpdir / socket_name).unlink()
        commands = {Path(str(a.get("command", ""))).name for a in agents.values()}
        for pid in bench.agent_pids():  # agents run in their own sessions: make sure none outlives us
            if _is_agent(pid, commands):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(tmp, ignore_errors=True)


def machine_load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure here."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _is_agent(pid: int, commands: set[str]) -> bool:
    """True if ``pid`` still is one of our agents (a session leader running a configured command)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    session = int(stat.rsplit(")", 1)[1].split()[3])  # field 6 of the stat line
    return session == pid and Path(argv0).name in commands


__all__ = [
    "ROOT",
    "Bench",
    "CpuSample",
    "Recorder",
    "Verdicts",
    "bench_app",
    "command_agent",
    "cpu_sample",
    "info",
    "machine_load",
    "ms",
    "percentile",
    "proc_cpu_s",
    "proc_rss_mb",
    "summary_ms",
]
