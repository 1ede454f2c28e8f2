"""Recorded runs of the real CLIs, replayed by a fake CLI through the real engine, tmux and runner.

``tests/fakes/agent_cli.py`` prints a recording from ``tests/data/<cli>/`` and exits as the CLI
did; everything after it (adapter, runner, parser, summary, the completion message, the cost
row) is Orchestra's own code, so these tests check what a user reads in the chat.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from core.models import Task, TaskState
from tests.conftest import ROOT, requires_tmux

pytestmark = requires_tmux

DATA = ROOT / "tests" / "data"
FAKE_CLI = f"{sys.executable} {ROOT / 'tests' / 'fakes' / 'agent_cli.py'}"


def fake_agent(kind: str, recording: Path, exit_code: int = 0, **extra: Any) -> dict[str, Any]:
    env = {"FAKE_CLI_STDOUT": str(recording), "FAKE_CLI_EXIT": str(exit_code), **extra.pop("env", {})}
    return {"kind": kind, "command": FAKE_CLI, "env": env, "max_concurrent": 2, **extra}


async def run_task(app: App, agent: str, cwd: Path) -> tuple[Task, str]:
    """Delegate one task to ``agent``; return it finished and the completion message."""
    assert app.engine.acquire()
    await app.engine.start()
    try:
        delegation = app.service.delegate("Create hello.txt containing hello", agent=agent, cwd=str(cwd))
        task = await app.engine.wait_finished(delegation.task.id, timeout=60)
    finally:
        await app.engine.stop()
    return task, app.store.outbox_queue("console", task_id=task.id)[0].text


@pytest.mark.parametrize("cli", ["codex", "gemini", "qwen", "opencode", "droid"])
async def test_a_run_that_failed_before_any_model_call_cost_nothing(make_app: Any, repo: Path, cli: str) -> None:
    """A 401 on the first call: no tokens, no cost reported. That is $0, not "cost unknown"."""
    meta = (DATA / cli / "error_401.meta.json").read_text()
    exit_code = int(json.loads(meta)["exit_code"])
    app = make_app(agents__fake=fake_agent(cli, DATA / cli / "error_401.jsonl", exit_code))
    task, message = await run_task(app, "fake", repo)

    assert task.state == TaskState.FAILED
    assert task.cost_usd == 0 and task.cost_source != "unknown"
    assert "cost unknown" not in message and "out · $0.00" in message
    assert app.store.cost_sum(0, float("inf")) == (0.0, 1, 0)  # one task, none of unknown cost


async def test_claude_says_why_it_failed_once(make_app: Any, repo: Path) -> None:
    app = make_app(agents__fake=fake_agent("claude", DATA / "claude" / "error_401.jsonl", 1))
    task, message = await run_task(app, "fake", repo)

    assert task.state == TaskState.FAILED
    assert message.count("invalid api key") == 1, message
    assert message.count("401") == 1, message


async def test_a_model_the_cli_names_without_a_price_is_priced_as_the_configured_one(make_app: Any, repo: Path) -> None:
    """Gemini answered as ``gemini-fake-9`` (no price); the agent is configured as gemini-2.0-flash."""
    agent = fake_agent("gemini", DATA / "gemini" / "unpriced_model.jsonl", model="gemini-2.0-flash")
    app = make_app(agents__fake=agent)
    task, message = await run_task(app, "fake", repo)

    assert task.state == TaskState.SUCCEEDED
    assert task.cost_source == "priced" and task.cost_usd == pytest.approx(0.00021)
    assert "$0.00021 (priced as gemini-2.0-flash, the configured model: gemini-fake-9 has no price)" in message

    unconfigured = make_app(agents__fake={**agent, "model": None})
    task, message = await run_task(unconfigured, "fake", repo)
    assert task.cost_usd is None and "cost unknown" in message


async def test_files_lists_the_agents_work_not_its_cache(make_app: Any, repo: Path) -> None:
    """Aider writes its repo-map cache into the repository; that is not the task's work."""
    touched = "hello.txt:.aider.tags.cache.v4/cache.db:.aider.tags.cache.v4/cache.db-wal"
    recording = DATA / "aider" / "success.txt"
    agent = fake_agent("aider", recording, model="openai/fake-coder", env={"FAKE_CLI_TOUCH": touched})
    app = make_app(agents__fake=agent)
    task, message = await run_task(app, "fake", repo)

    assert [f["path"] for f in task.summary["files"]] == ["hello.txt"]
    assert "Files: hello.txt +1" in message and ".aider" not in message
    assert (repo / ".aider.tags.cache.v4" / "cache.db").exists()


async def test_claude_stops_at_the_first_401_instead_of_retrying_for_minutes(make_app: Any, repo: Path) -> None:
    """Claude Code retries a 401 about 11 times over ~3 minutes; the first retry line ends the run."""
    recording = DATA / "claude" / "retrying_401.jsonl"  # init, then "api_retry" lines with error_status 401
    app = make_app(agents__fake=fake_agent("claude", recording, env={"FAKE_CLI_HANG": "170"}))
    started = time.monotonic()
    task, message = await run_task(app, "fake", repo)

    assert time.monotonic() - started < 30
    assert task.state == TaskState.FAILED
    assert task.error == "API error 401: authentication_failed · check ANTHROPIC_API_KEY"
    assert message.count("401") == 1 and "check ANTHROPIC_API_KEY" in message, message


async def test_a_run_whose_tool_calls_failed_and_changed_nothing_says_so(make_app: Any, repo: Path) -> None:
    """Droid rejected the model's ``Execute`` call (no ``riskLevel``), wrote nothing, and still
    reported success with "DONE: created hello.txt". The completion must not read as a plain ✅."""
    agent = fake_agent("droid", DATA / "droid" / "tool_rejected.jsonl", model="gpt-4.1-mini")
    app = make_app(agents__fake=agent)
    task, message = await run_task(app, "fake", repo)

    assert task.state == TaskState.SUCCEEDED  # the agent's own word, kept
    head = message.splitlines()[0]
    assert head.startswith("⚠️ t1 succeeded, but 1 tool call failed and no file changed · fake"), head
    assert "Failed: Execute error: Error: Execute call rejected: missing required parameters" in message
    assert "Files:" not in message


async def test_a_failed_tool_call_beside_real_changes_stays_a_success(make_app: Any, repo: Path) -> None:
    """The same stream, but the file is on disk afterwards: what changed is shown, no warning."""
    agent = fake_agent("droid", DATA / "droid" / "tool_rejected.jsonl", env={"FAKE_CLI_TOUCH": "hello.txt"})
    app = make_app(agents__fake=agent)
    _, message = await run_task(app, "fake", repo)

    assert message.startswith("✅ t1 succeeded · fake") and "Files: hello.txt +1" in message, message
