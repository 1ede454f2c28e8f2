"""Benchmark the web dashboard: 10 viewers watching 10 running tasks, and the bot with nobody watching.

Run from the repository root::

    python benchmarks/bench_web.py [--viewers 10] [--tasks 10] [--seconds 10]

It starts a real ``orchestra bot`` (web on, no chat transport) on a throw-away data directory and
a private tmux server, delegates ``--tasks`` tasks to a stand-in program that prints the time it
writes each line (every 100 ms, flushed), signs ``--viewers`` aiohttp WebSocket clients in through
one-time links, each watching every task, and measures, for ``--seconds``:

- the delay from a line written by the agent to that line at the client (target p50 ≤ 100 ms on
  loopback): through the runner's pipe, ``output.log``, the bot's one tailer per task, the socket;
- the bot process's CPU (utime+stime from /proc) while they watch; the same tasks running with no
  viewer; and the idle bot (nothing running, nobody watching) with web on and with web off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_web.py` without an installed package
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from _common import Verdicts, info, percentile, proc_cpu_s, summary_ms  # noqa: E402

from bot.app import open_app  # noqa: E402
from bot.web.auth import CLI_USER  # noqa: E402
from core.service import LOCAL  # noqa: E402

TARGET_P50_MS = 100.0
STAMPER = """
import os, sys, time
stop = os.path.join(os.environ["STAMP_DIR"], "stop")
while not os.path.exists(stop):
    print(f"\\x1b[36mline\\x1b[0m {time.time():.6f}", flush=True)
    time.sleep(0.1)
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(root: Path, port: int, socket_name: str, web: bool) -> Path:
    data: dict[str, Any] = yaml.safe_load((ROOT / "bots.yaml").read_text())
    (root / "stamper.py").write_text(STAMPER)
    (root / "stamps").mkdir(exist_ok=True)
    data["tmux"] = {"socket_name": socket_name, "session": "bench", "config_file": "/dev/null"}
    data["agents"]["stamper"] = {"kind": "command", "command": sys.executable, "max_concurrent": 32,
                                 "args": ["-u", str(root / "stamper.py"), "{task}"],
                                 "env": {"STAMP_DIR": str(root / "stamps")}}  # fmt: skip
    data["limits"]["max_concurrent"] = 32
    data["web"] = {"enabled": web, "port": port}
    data["notify"] = {"console": False}
    path = root / "bots.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Bot:
    """A real `orchestra bot` process on its own data directory."""

    def __init__(self, root: Path, web: bool) -> None:
        self.root = root
        self.port = free_port()
        self.socket_name = f"orch-bench-{uuid.uuid4().hex[:8]}"
        self.config = write_config(root, self.port, self.socket_name, web)
        env = {**os.environ, "ORCHESTRA_HOME": str(root / "home"), "XDG_CACHE_HOME": str(root / "cache")}
        env.pop("TMUX", None)
        self.env = env
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(self.config), "bot"], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("web:" if web else "orchestra engine:"):
                break
        os.environ.update(ORCHESTRA_HOME=self.env["ORCHESTRA_HOME"], XDG_CACHE_HOME=self.env["XDG_CACHE_HOME"])
        self.cli = open_app(self.config)

    def cpu_over(self, seconds: float) -> float:
        """The bot's CPU as a share of one core over ``seconds`` (sleeping meanwhile)."""
        before, wall = proc_cpu_s(self.proc.pid), time.monotonic()
        time.sleep(seconds)
        return (proc_cpu_s(self.proc.pid) - before) / (time.monotonic() - wall)

    def stop(self) -> None:
        (self.root / "stamps" / "stop").write_text("")
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(20)
        self.cli.close()
        subprocess.run(["tmux", "-L", self.socket_name, "kill-server"], capture_output=True, check=False)


async def viewer(bot: Bot, tasks: list[str], until: float, delays: list[float]) -> int:
    url = f"http://127.0.0.1:{bot.port}"
    token = bot.cli.service.web_link(CLI_USER, actor=LOCAL).split("#", 1)[1]
    frames = 0
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{url}/api/login", json={"token": token}, headers={"Origin": url}) as r:
            assert r.status == 200, r.status
        async with http.ws_connect(f"{url}/ws", headers={"Origin": url}) as ws:
            await ws.send_str(json.dumps({"watch": tasks}))
            while (left := until - time.monotonic()) > 0:
                try:
                    message = await ws.receive(timeout=left)
                except TimeoutError:
                    break
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.time()
                data = json.loads(message.data)
                frames += 1
                if data["t"] != "out" or data.get("reset"):
                    continue
                for line in data["d"].splitlines():
                    stamp = line.rpartition(" ")[2]
                    with contextlib.suppress(ValueError):
                        delays.append(now - float(stamp))
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    verdicts = Verdicts()
    with tempfile.TemporaryDirectory(prefix="orch-bench-web-") as scratch:
        (Path(scratch) / "off").mkdir()
        off = Bot(Path(scratch) / "off", web=False)
        try:
            idle_off = off.cpu_over(args.seconds)
        finally:
            off.stop()
        (Path(scratch) / "on").mkdir()
        bot = Bot(Path(scratch) / "on", web=True)
        try:
            idle_on = bot.cpu_over(args.seconds)
            ids = [
                bot.cli.service.delegate(f"stamp {n}", agent="stamper", cwd=scratch).task.id for n in range(args.tasks)
            ]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(bot.cli.service.running()) < args.tasks:
                time.sleep(0.1)
            info(f"{len(bot.cli.service.running())} tasks running")
            unwatched = bot.cpu_over(args.seconds)
            delays: list[float] = []

            async def watch_all() -> tuple[list[int], float]:
                until = time.monotonic() + args.seconds
                before, wall = proc_cpu_s(bot.proc.pid), time.monotonic()
                frames = await asyncio.gather(*(viewer(bot, ids, until, delays) for _ in range(args.viewers)))
                return list(frames), (proc_cpu_s(bot.proc.pid) - before) / (time.monotonic() - wall)

            frames, watched = asyncio.run(watch_all())
            after = bot.cpu_over(min(args.seconds, 5.0))
        finally:
            bot.stop()
    info(f"idle bot, web off: CPU {idle_off:.2%} of a core")
    info(f"idle bot, web on, no viewer: CPU {idle_on:.2%} of a core")
    info(f"{args.tasks} tasks running, no viewer: CPU {unwatched:.2%}; after the viewers left: {after:.2%}")
    info(f"{args.viewers} viewers x {args.tasks} tasks: bot CPU {watched:.2%} of a core, {sum(frames)} frames, "
         f"{len(delays)} lines seen")  # fmt: skip
    if not delays:
        verdicts.check("a line reached a viewer", False)
        return verdicts.exit_code
    info(f"line written -> line at the client: {summary_ms(delays)}")
    p50_ms = percentile(delays, 50) * 1000
    verdicts.check(f"p50 {p50_ms:.1f} ms <= {TARGET_P50_MS:.0f} ms", p50_ms <= TARGET_P50_MS)
    return verdicts.exit_code


if __name__ == "__main__":
    sys.exit(main())
