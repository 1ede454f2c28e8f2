"""The real agent CLIs, driven through Orchestra against the fake model server on 127.0.0.1.

Each test delegates a task (router -> tmux -> runner -> adapter -> parser) to a CLI installed at
its pinned version under ``.agents/`` (``make agents``; CI installs Claude Code and Codex) and
checks what a user would see: the file on disk, the final text, the tokens and the cost computed
from the server's known usage, and that a 401 or a 500 ends ``failed`` with a readable reason.
A missing CLI is skipped with the command that installs it.

``ORCHESTRA_RECORD_FIXTURES=1`` also saves each run's raw stdout under ``tests/data/<cli>/`` for
the fast replay tests (``tests/test_agents_replay.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from core.agents.base import Usage
from core.models import TaskState
from core.pricing import price_usd
from tests.conftest import ROOT, requires_tmux
from tests.fakes.model_server import (
    CACHED_TOKENS,
    FINAL_TEXT,
    OUTPUT_TOKENS,
    PROMPT_TOKENS,
    FakeModelServer,
    Mode,
    Protocol,
)

pytestmark = [pytest.mark.real_cli, requires_tmux]

AGENTS = Path(os.environ.get("ORCHESTRA_AGENTS_DIR") or ROOT / ".agents")
DATA = ROOT / "tests" / "data"
KEY_VAR = "ORCHESTRA_TEST_FAKE_KEY"
TASK = "Create hello.txt containing hello"


@dataclass(frozen=True)
class Case:
    """One CLI as Orchestra runs it in these tests."""

    name: str
    kind: str
    binary: str  # relative to AGENTS
    protocol: Protocol
    model: str
    key_env: str
    env: dict[str, str] = field(default_factory=dict)  # {url} is the fake server's base URL
    args: list[str] = field(default_factory=list)
    cli_cost: float | None = None  # per model call, when the CLI prices the run itself
    counts_cache: bool = True
    counts_side_calls: bool = True  # False: tool-less side calls (titles) are not in its token counts
    error_500: str = "500"  # what the reason of a failed run on a 500 must mention
    slow_500_s: float = 30  # how long the CLI retries a 500 before it gives up (fixed in the CLI)


CASES = [
    Case(
        "claude", "claude", "node_modules/.bin/claude", "anthropic", "claude-haiku-4-5", "ANTHROPIC_API_KEY",
        env={"ANTHROPIC_BASE_URL": "{url}", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
        cli_cost=(800 * 1.0 + 200 * 0.1 + 50 * 5.0) / 1e6,  # Claude Haiku 4.5 list prices, per call
    ),
    Case(
        "codex", "codex", "node_modules/.bin/codex", "responses", "gpt-5", "OPENAI_API_KEY",
        # With bubblewrap installed Codex sandboxes through it, which needs a helper it refuses to
        # make in a CODEX_HOME under the temp dir (the data dir is under /tmp here): another TMPDIR
        # (not /var/tmp, where the hostile test aims: workspace-write lets Codex write its TMPDIR).
        env={"OPENAI_BASE_URL": "{url}/v1", "TMPDIR": "/dev/shm"}, error_500="high demand",
    ),
    Case(
        "gemini", "gemini", "node_modules/.bin/gemini", "gemini", "gemini-2.0-flash", "GEMINI_API_KEY",
        env={"GOOGLE_GEMINI_BASE_URL": "{url}"},
    ),
    Case(
        "qwen", "qwen", "node_modules/.bin/qwen", "chat", "gpt-4.1-mini", "OPENAI_API_KEY",
        env={"OPENAI_BASE_URL": "{url}/v1"}, slow_500_s=150,
    ),
    Case(
        "opencode", "opencode", "node_modules/.bin/opencode", "chat", "gpt-4.1-mini",
        "OPENAI_API_KEY", env={"OPENAI_BASE_URL": "{url}/v1", "OPENCODE_DISABLE_MODELS_FETCH": "1"},
        counts_side_calls=False, slow_500_s=150,
    ),
    Case(
        "droid", "droid", "node_modules/.bin/droid", "chat", "gpt-4.1-mini", "OPENAI_API_KEY",
        env={"OPENAI_BASE_URL": "{url}/v1"}, slow_500_s=400,
    ),
    Case(
        "copilot", "copilot", "node_modules/.bin/copilot", "chat", "gpt-4.1-mini", "COPILOT_PROVIDER_API_KEY",
        env={"COPILOT_OFFLINE": "true", "COPILOT_PROVIDER_BASE_URL": "{url}/v1", "COPILOT_PROVIDER_TYPE": "openai",
             "COPILOT_PROVIDER_WIRE_API": "completions"},
    ),
    Case(
        "aider", "aider", "aider/bin/aider", "chat", "openai/fake-coder", "OPENAI_API_KEY",
        env={"OPENAI_BASE_URL": "{url}/v1"}, args=["--model-metadata-file", "{meta}"],
        cli_cost=(1000 * 2e-6 + 50 * 8e-6), counts_cache=False, slow_500_s=150,
    ),
]  # fmt: skip
INSTALL = {
    "aider": "make agents (python3 -m venv .agents/aider && .agents/aider/bin/pip install aider-chat==0.86.2)",
}
AIDER_META = {
    "openai/fake-coder": {
        "max_input_tokens": 128000,
        "max_output_tokens": 4096,
        "input_cost_per_token": 2e-6,
        "output_cost_per_token": 8e-6,
        "litellm_provider": "openai",
        "mode": "chat",
    }
}


def test_make_agents_leaves_all_seven_runnable_from_one_directory() -> None:
    """``make agents`` links every CLI into ``.agents/node_modules/.bin``, the one directory for PATH."""
    if not (AGENTS / "aider" / "bin" / "aider").exists():
        pytest.skip("only `make agents` installs all seven (aider last)")
    for case in CASES:
        path = AGENTS / "node_modules" / ".bin" / Path(case.binary).name
        assert path.exists(), f"{case.name}: {path} is missing after `make agents`"
        proc = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, f"{case.name}: {proc.stderr[-300:]}"


def _binary(case: Case) -> Path:
    path = AGENTS / case.binary
    if not path.exists():
        pytest.skip(f"{case.name} is not installed at {path}: run `{INSTALL.get(case.name, 'make agents')}`")
    return path


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway HOME for the CLIs (they write state there), and the fake API key."""
    home = tmp_path / "cli-home"
    (home / ".aider" / "caches").mkdir(parents=True)
    # aider fetches litellm's price list when its cached copy is missing or empty ({} counts as
    # empty): a cached copy with one dummy entry keeps it offline.
    prices = home / ".aider" / "caches" / "model_prices_and_context_window.json"
    prices.write_text('{"orchestra-offline-placeholder": {}}')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(KEY_VAR, "sk-orchestra-fake-key")
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(var, raising=False)
    return home


def _agent(case: Case, server: FakeModelServer, tmp_path: Path) -> dict[str, Any]:
    meta = tmp_path / "aider-models.json"
    meta.write_text(json.dumps(AIDER_META))
    env = {key: value.replace("{url}", server.url) for key, value in case.env.items()}
    env["ORCHESTRA_MAX_RETRIES"] = "0"
    return {
        "kind": case.kind,
        "command": str(_binary(case)),
        "model": case.model,
        "args": [arg.replace("{meta}", str(meta)) for arg in case.args],
        "env": env,
        "env_from": {case.key_env: KEY_VAR},
        "max_concurrent": 2,
    }


async def _run(
    make_app: Any, case: Case, mode: Mode, repo: Path, tmp_path: Path, *, record: bool = True
) -> tuple[App, Any, FakeModelServer]:
    with FakeModelServer(workdir=str(repo), mode=mode) as server:
        app = make_app(**{f"agents__{case.name}": _agent(case, server, tmp_path)})
        assert app.engine.acquire()
        await app.engine.start()
        try:
            delegation = app.service.delegate(TASK, agent=case.name, cwd=str(repo))
            assert delegation.decision.agent == case.name
            timeout = 240 + (case.slow_500_s if mode == "500" else 0)
            task = await app.engine.wait_finished(delegation.task.id, timeout=timeout)
        finally:
            await app.engine.stop()
    if record and os.environ.get("ORCHESTRA_RECORD_FIXTURES"):
        _record(app, case, task, "success" if mode == "ok" else f"error_{mode}")
    return app, task, server


def _record(app: App, case: Case, task: Any, label: str) -> None:
    """Keep the run's raw stdout (and aider's analytics log) as replay fixtures."""
    task_dir = app.home / "tasks" / task.id
    folder = DATA / case.name
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".txt" if case.kind == "aider" else ".jsonl"
    shutil.copyfile(task_dir / "output.log", folder / f"{label}{suffix}")
    spec = json.loads((task_dir / "spec.json").read_text())
    result = json.loads((task_dir / "result.json").read_text())
    meta = {"exit_code": result["result"]["exit_code"], "cwd": task.cwd, "parser": spec["parser"].split(" ")[0]}
    if case.kind == "copilot":  # its tokens are only in the session's events file
        home = json.loads(spec["parser"].split(" ", 1)[1])["home"]
        events = Path(home) / "session-state" / str(result["result"]["session_id"]) / "events.jsonl"
        shutil.copyfile(events, folder / f"{label}.events.jsonl")
    if case.kind == "aider":
        analytics = json.loads(spec["parser"].split(" ", 1)[1])["analytics"]
        shutil.copyfile(analytics, folder / f"{label}.analytics.jsonl")
    (folder / f"{label}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def _usage_of(case: Case, calls: int) -> Usage:
    """What ``calls`` model calls of the fake server add up to, as this CLI counts them."""
    return Usage(
        input_tokens=PROMPT_TOKENS * calls,
        output_tokens=OUTPUT_TOKENS * calls,
        cache_read_tokens=CACHED_TOKENS * calls if case.counts_cache else 0,
    )


def _assert_cost(case: Case, task: Any, expected: Usage, calls: int) -> None:
    if case.cli_cost is not None:
        assert task.cost_source == "cli"
        assert task.cost_usd == pytest.approx(case.cli_cost * calls, rel=1e-6)
    else:
        assert task.cost_source == "priced"
        assert task.cost_usd == pytest.approx(price_usd(expected, case.model.rsplit("/", 1)[-1]), rel=1e-9)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_real_cli_writes_the_file_and_reports_tokens_and_cost(
    make_app: Any, repo: Path, tmp_path: Path, cli_home: Path, case: Case
) -> None:
    _binary(case)
    app, task, server = await _run(make_app, case, "ok", repo, tmp_path)

    assert task.state == TaskState.SUCCEEDED, task.error
    assert (repo / "hello.txt").read_text() == "hello\n"
    assert task.final_text.strip().endswith(FINAL_TEXT)
    calls = len([c for c in server.model_calls(case.protocol) if case.counts_side_calls or c.reply != "text"])
    assert calls >= 1
    expected = _usage_of(case, calls)
    assert (task.input_tokens, task.output_tokens, task.cache_read_tokens) == (
        expected.input_tokens,
        expected.output_tokens,
        expected.cache_read_tokens,
    )
    _assert_cost(case, task, expected, calls)
    summary = task.summary
    assert [f["path"] for f in summary["files"]] == ["hello.txt"], "the agent's work, not the CLI's own files"
    assert FINAL_TEXT in app.store.outbox_queue("console", task_id=task.id)[0].text


@pytest.mark.parametrize("mode", ["401", "500"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_real_cli_api_error_fails_with_a_reason(
    make_app: Any, repo: Path, tmp_path: Path, cli_home: Path, case: Case, mode: Mode
) -> None:
    _binary(case)
    if mode == "500" and case.slow_500_s > 60 and not os.environ.get("ORCHESTRA_REAL_CLI_SLOW"):
        pytest.skip(f"{case.name} retries a 500 for minutes whatever it is told; `make real-clis` runs this")
    app, task, _ = await _run(make_app, case, mode, repo, tmp_path)

    assert task.state == TaskState.FAILED
    expected = "401" if mode == "401" else case.error_500
    assert expected in task.error, task.error
    assert not (repo / "hello.txt").exists()
    assert task.cost_usd == 0 and task.cost_source != "unknown", "no model call answered: $0, known"
    assert expected in app.store.outbox_queue("console", task_id=task.id)[0].text


async def test_unpriced_model_costs_unknown_not_zero(make_app: Any, repo: Path, tmp_path: Path, cli_home: Path) -> None:
    """A model neither the CLI nor genai-prices can price ends with cost unknown."""
    case = next(c for c in CASES if c.name == "aider")
    unpriced = Case(**{**case.__dict__, "model": "openai/unpriced-coder", "args": [], "cli_cost": None})
    _, task, _ = await _run(make_app, unpriced, "ok", repo, tmp_path, record=False)
    assert task.state == TaskState.SUCCEEDED, task.error
    assert task.input_tokens == PROMPT_TOKENS
    assert task.cost_usd is None and task.cost_source == "unknown"


async def test_gemini_answering_as_an_unpriced_model_is_priced_as_the_configured_one(
    make_app: Any, repo: Path, tmp_path: Path, cli_home: Path
) -> None:
    """Gemini names the model that answered (``modelVersion``); when that has no price but the
    configured ``model:`` has one, the run is priced as the configured model, and says so."""
    case = next(c for c in CASES if c.name == "gemini")
    _binary(case)
    with FakeModelServer(workdir=str(repo), model="gemini-fake-9") as server:
        app = make_app(**{f"agents__{case.name}": _agent(case, server, tmp_path)})
        assert app.engine.acquire()
        await app.engine.start()
        try:
            task = app.service.delegate(TASK, agent=case.name, cwd=str(repo)).task
            task = await app.engine.wait_finished(task.id, timeout=240)
        finally:
            await app.engine.stop()
        calls = len(server.model_calls(case.protocol))
    if os.environ.get("ORCHESTRA_RECORD_FIXTURES"):
        _record(app, case, task, "unpriced_model")
    assert task.state == TaskState.SUCCEEDED, task.error
    assert task.cost_source == "priced"
    assert task.cost_usd == pytest.approx(price_usd(_usage_of(case, calls), case.model), rel=1e-9)
    message = app.store.outbox_queue("console", task_id=task.id)[0].text
    assert f"priced as {case.model}, the configured model: gemini-fake-9 has no price" in message, message


KEY_HINTS = {"claude": "check ANTHROPIC_API_KEY", "codex": "check OPENAI_API_KEY"}
RETRYING_401 = [c for c in CASES if c.name in KEY_HINTS]


@pytest.mark.parametrize("case", RETRYING_401, ids=[c.name for c in RETRYING_401])
async def test_a_401_fails_in_seconds_whatever_the_cli_retry_setting(
    make_app: Any, repo: Path, tmp_path: Path, cli_home: Path, case: Case
) -> None:
    """Left to itself Claude Code retries a 401 for about 3 minutes and Codex 5 times; an
    authentication error will not heal, so the run ends at the first retry and names the key."""
    _binary(case)
    with FakeModelServer(workdir=str(repo), mode="401") as server:
        agent = _agent(case, server, tmp_path)
        del agent["env"]["ORCHESTRA_MAX_RETRIES"]
        app = make_app(**{f"agents__{case.name}": agent})
        assert app.engine.acquire()
        await app.engine.start()
        started = time.monotonic()
        try:
            task = app.service.delegate(TASK, agent=case.name, cwd=str(repo)).task
            task = await app.engine.wait_finished(task.id, timeout=240)
        finally:
            await app.engine.stop()
        requests = len([c for c in server.calls if c.status == 401])
    assert time.monotonic() - started < 30
    assert task.state == TaskState.FAILED
    assert "401" in task.error and KEY_HINTS[case.name] in task.error, task.error
    assert requests <= 3


async def test_a_rejected_tool_call_that_changed_nothing_is_not_a_plain_success(
    make_app: Any, repo: Path, tmp_path: Path, cli_home: Path
) -> None:
    """Droid with a gpt-style model offers ``Execute`` and rejects a call without its required
    ``riskLevel``; the run still ends as the agent's success. The completion says what happened."""
    case = next(c for c in CASES if c.name == "droid")
    _binary(case)
    with FakeModelServer(workdir=str(repo), careless=True) as server:
        app = make_app(**{f"agents__{case.name}": _agent(case, server, tmp_path)})
        assert app.engine.acquire()
        await app.engine.start()
        try:
            task = app.service.delegate(TASK, agent=case.name, cwd=str(repo)).task
            task = await app.engine.wait_finished(task.id, timeout=240)
        finally:
            await app.engine.stop()
        asked = [c.reply for c in server.model_calls(case.protocol)]
    if os.environ.get("ORCHESTRA_RECORD_FIXTURES"):
        _record(app, case, task, "tool_rejected")
    assert "tool:Execute" in asked, asked
    assert not (repo / "hello.txt").exists()
    message = app.store.outbox_queue("console", task_id=task.id)[0].text
    assert "succeeded, but 1 tool call failed and no file changed" in message, message
    assert message.startswith("⚠️") and "Files:" not in message


RESUMING = [c for c in CASES if c.kind not in ("aider", "droid")]  # aider has no sessions; droid BYOK can't resume


@pytest.mark.parametrize("case", RESUMING, ids=[c.name for c in RESUMING])
async def test_real_cli_retry_resumes_the_same_session(
    make_app: Any, repo: Path, tmp_path: Path, cli_home: Path, case: Case
) -> None:
    """``retry`` with feedback continues the agent's own session; only the new run is counted."""
    _binary(case)
    with FakeModelServer(workdir=str(repo)) as server:
        app = make_app(**{f"agents__{case.name}": _agent(case, server, tmp_path)})
        assert app.engine.acquire()
        await app.engine.start()
        try:
            first = app.service.delegate(TASK, agent=case.name, cwd=str(repo)).task
            first = await app.engine.wait_finished(first.id, timeout=240)
            assert first.state == TaskState.SUCCEEDED, first.error
            before = len(server.model_calls(case.protocol))
            (repo / "hello.txt").unlink()
            second = app.service.retry(first.id, feedback="write it again").task
            second = await app.engine.wait_finished(second.id, timeout=240)
        finally:
            await app.engine.stop()
    assert second.state == TaskState.SUCCEEDED, second.error
    assert (repo / "hello.txt").exists()
    assert first.session_id and second.session_id == first.session_id
    calls = [c for c in server.model_calls(case.protocol)[before:] if case.counts_side_calls or c.reply != "text"]
    expected = _usage_of(case, len(calls))
    assert (second.input_tokens, second.output_tokens, second.cache_read_tokens) == (
        expected.input_tokens,
        expected.output_tokens,
        expected.cache_read_tokens,
    ), f"{len(calls)} model calls in the resumed run: {[c.reply for c in calls]}"
    _assert_cost(case, second, expected, len(calls))
    recorded = app.store.cost_sum(0, float("inf"))[0]
    assert recorded == pytest.approx((first.cost_usd or 0) + (second.cost_usd or 0), rel=1e-6)


SHELL_POLICIES = [c for c in CASES if c.name in ("claude", "codex", "copilot")]


@pytest.mark.parametrize("hook", [False, True], ids=["unattended", "hooked"])
@pytest.mark.parametrize("case", SHELL_POLICIES, ids=[c.name for c in SHELL_POLICIES])
async def test_a_hostile_model_cannot_run_a_shell_command_outside_the_policy(
    make_app: Any, repo: Path, tmp_path: Path, cli_home: Path, case: Case, hook: bool
) -> None:
    """Comparable bridges shipped sandboxes that did not bind Bash. With the permission hook off,
    Orchestra's unattended modes bind it: Claude Code with ``--permission-mode acceptEdits`` (file
    edits yes, shell commands no), Codex with ``-s workspace-write`` and Copilot with ``--allow-tool
    write``. With it on, the ``touch`` is asked and a question no one answers is a denial. Either
    way a model that asks only to ``touch`` a file outside the workspace gets nothing done, and the
    user is told it was denied."""
    _binary(case)
    scratch = Path(tempfile.mkdtemp(prefix="orchestra-escape-test-", dir=_outside_tmp()))
    outside = scratch / "escaped"
    try:
        await _escape(make_app, case, repo, tmp_path, outside, hook=hook)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _outside_tmp() -> Path:
    """A writable folder outside /tmp and $TMPDIR: Codex's workspace-write lets agents write those by design."""
    tmp_roots = [Path("/tmp").resolve(), Path(tempfile.gettempdir()).resolve()]
    for candidate in (Path("/var/tmp"), Path("/dev/shm"), ROOT):
        where = candidate.resolve()
        outside = not any(where == root or root in where.parents for root in tmp_roots)
        if outside and os.access(where, os.W_OK):
            return where
    pytest.skip("no writable folder outside /tmp to aim the hostile command at")


async def _escape(make_app: Any, case: Case, repo: Path, tmp_path: Path, outside: Path, *, hook: bool) -> None:
    with FakeModelServer(workdir=str(repo), escape_to=str(outside)) as server:
        agent = {**_agent(case, server, tmp_path), "hook": hook}
        app = make_app(**{f"agents__{case.name}": agent, "permissions__ask_timeout_s": 2})
        assert app.engine.acquire()
        await app.engine.start()
        try:
            delegation = app.service.delegate(TASK, agent=case.name, cwd=str(repo))
            task = await app.engine.wait_finished(delegation.task.id, timeout=240)
        finally:
            await app.engine.stop()
        shell_calls = [c for c in server.model_calls(case.protocol) if c.reply.startswith("tool:")]
    assert shell_calls, "the model asked for the shell"
    assert not outside.exists(), f"{case.name} ran a shell command outside the workspace"
    assert task.state.finished
    messages = [m.text for m in app.store.outbox_queue("console", task_id=task.id)]
    notice = next(text for text in messages if not text.startswith("🔐"))  # the completion, not the question
    assert "touch" in notice and "denied" in notice.lower(), notice
    assert hook == any(text.startswith("🔐") for text in messages), messages
