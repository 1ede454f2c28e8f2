"""An agent that prints 100 MB: the engine's memory stays flat, the task log stops at its cap."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.app import App
from core.models import TaskState
from tests.conftest import requires_tmux

pytestmark = requires_tmux

MB = 1024 * 1024
FLOOD = "import sys\nline = b'x' * 1023 + b'\\n'\nfor _ in range(100 * 1024):\n    sys.stdout.buffer.write(line)\n"


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def test_a_100_mb_output_leaves_memory_flat_and_the_log_capped(make_app: Any, tmp_path: Path) -> None:
    flood = {"kind": "command", "command": "{python}", "args": ["-c", FLOOD], "max_concurrent": 1}
    app: App = make_app(agents__flood=flood, limits__log_max_bytes=2 * MB, limits__task_timeout_s=300)
    assert app.engine.acquire()
    await app.engine.start()
    baseline, peak = _rss(), 0
    try:
        d = app.service.delegate("print a lot", agent="flood", cwd=str(tmp_path))
        waiting = asyncio.ensure_future(app.engine.wait_finished(d.task.id, timeout=240))
        while not waiting.done():
            peak = max(peak, _rss())
            await asyncio.sleep(0.05)
        task = waiting.result()
    finally:
        await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    log = app.engine.task_dir(task.id) / "output.log"
    assert 2 * MB <= log.stat().st_size < 2 * MB + 4096
    assert log.read_bytes().endswith(b"[orchestra: log capped here]\n")
    assert peak - baseline < 50 * MB, f"the engine grew by {(peak - baseline) / MB:.0f} MB"
    store_size = sum(p.stat().st_size for p in app.store.path.parent.glob("orchestra.db*"))
    assert store_size < 20 * MB, f"the store grew to {store_size / MB:.0f} MB"
