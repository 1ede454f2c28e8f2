"""``orchestra bot`` starting and stopping as a user runs it: a clean start logs nothing alarming.

Both chat bridges against their fakes on 127.0.0.1 (tests/fakes/telegram.py, tests/fakes/slack.py),
a brand-new data directory and a digest whose time has passed: nothing at WARNING or above.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, requires_tmux
from tests.fakes.slack import ALICE as SLACK_ALICE
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.fakes.telegram import ALICE, TOKEN, FakeTelegram

pytestmark = requires_tmux


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    server = FakeTelegram().start()
    yield server
    server.stop()


async def _wait_until(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_a_clean_start_and_stop_on_a_fresh_store_logs_no_warning(
    tmp_path: Path, home: Path, config_data: dict[str, Any], telegram: FakeTelegram
) -> None:
    async with FakeSlack() as slack:
        data = {**config_data}
        two_hours_ago = time.gmtime(time.time() - 7200)
        data["digest"] = {**data["digest"], "timezone": "UTC", "time": time.strftime("%H:%M", two_hours_ago),
                          "grace_s": 600}  # fmt: skip
        data["telegram"] = {"enabled": True, "api_base_url": telegram.url, "token_env": "ORCH_T_TG",
                            "allowed_user_ids": [ALICE["id"]], "poll_timeout_s": 1}  # fmt: skip
        data["slack"] = {"enabled": True, "api_base_url": slack.api_url, "mode": "socket",
                         "allowed_user_ids": [SLACK_ALICE["id"]]}  # fmt: skip
        path = tmp_path / "bots.yaml"
        path.write_text(yaml.safe_dump(data))
        env = {**os.environ, "ORCHESTRA_HOME": str(home), "ORCH_T_TG": TOKEN, "SLACK_BOT_TOKEN": BOT_TOKEN,
               "SLACK_APP_TOKEN": APP_TOKEN}  # fmt: skip
        env.pop("TMUX", None)
        log = tmp_path / "bot.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "--config", str(path), "bot",
                cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            await _wait_until(
                lambda: "slack: @" in log.read_text() and "is listening (socket mode)" in log.read_text(),
                "both bridges listening\n" + log.read_text()[-2000:],
            )
            await asyncio.sleep(2.5)  # the scheduler's first runs, a poll or two
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert "telegram: @orchestra_test_bot is listening (polling)" in output
    alarming = [line for line in output.splitlines() if any(w in line for w in (" WARNING ", " ERROR ", "Traceback"))]
    assert not alarming, "\n".join(alarming)
