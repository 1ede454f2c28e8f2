"""``ask_owner``: the MCP tool through which an agent without a question tool of its own asks its owner.

The server is driven over its real stdio transport (JSON-RPC, one message per line), and the pinned
Codex (``.agents/``) starts it from the config Orchestra writes: the fake model calls the tool, the
question becomes a request in the store with its options, a person answers ``2`` from the terminal,
and the model's next request carries the answer.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.models import TaskState
from core.permissions.ask_owner import server_argv
from tests.conftest import requires_tmux
from tests.fakes.model_server import STEPS_DONE, FakeModelServer
from tests.test_real_clis import CASES, _agent, _binary, cli_home  # noqa: F401 - cli_home: a fixture

CODEX = next(c for c in CASES if c.name == "codex")
QUESTION: dict[str, Any] = {"question": "Which database?", "options": ["Postgres", "SQLite"], "header": "DB"}
ASK = ("mcp__orchestra.ask_owner", QUESTION)
# How the model calls it (measured): Gemini CLI 0.61 declares it as mcp_orchestra_ask_owner; Qwen Code
# 0.24 defers MCP tools, so the model calls it through tool_call by its deferred name.
ASKS: dict[str, tuple[str, dict[str, Any]]] = {
    "gemini": ("mcp_orchestra_ask_owner", QUESTION),
    "qwen": ("tool_call", {"name": "mcp__orchestra__ask_owner", "arguments": QUESTION}),
    "opencode": ("orchestra_ask_owner", QUESTION),
    "copilot": ("orchestra-ask_owner", QUESTION),
}


def _session(*messages: dict[str, Any], env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    lines = "".join(json.dumps(m) + "\n" for m in messages) + "not json\n"
    done = subprocess.run(
        server_argv("codex"), input=lines.encode(), capture_output=True, timeout=20, env=env or {}, check=True
    )
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def test_the_server_speaks_mcp_over_stdio() -> None:
    replies = _session(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-03-26"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "ping"},
        {"jsonrpc": "2.0", "id": 4, "method": "resources/list"},
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "rm_rf", "arguments": {}}},
    )
    by_id = {r.get("id"): r for r in replies}
    assert by_id[1]["result"]["protocolVersion"] == "2025-03-26", "the client's version is kept"
    assert by_id[1]["result"]["capabilities"] == {"tools": {}}
    [tool] = by_id[2]["result"]["tools"]
    assert tool["name"] == "ask_owner" and tool["inputSchema"]["required"] == ["question"]
    assert by_id[3]["result"] == {}
    assert by_id[4]["error"]["code"] == -32601
    assert by_id[5]["error"]["code"] == -32602, "only ask_owner is served"
    assert by_id[None]["error"]["code"] == -32700, "a line that is not JSON gets a parse error"
    assert len(replies) == 6, "a notification gets no reply"


def test_outside_a_task_the_model_is_told_to_decide_alone() -> None:
    call = {"name": "ask_owner", "arguments": {"question": "Which database?"}}
    replies = _session({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call})
    [reply] = [r for r in replies if r.get("id") == 7]
    assert reply["result"]["isError"] is True
    assert "decide on your own" in reply["result"]["content"][0]["text"]


@pytest.mark.real_cli
@requires_tmux
@pytest.mark.usefixtures("cli_home")
async def test_codex_asks_through_mcp_and_the_answer_reaches_the_model(make_app: Any, repo: Path) -> None:
    _binary(CODEX)
    with FakeModelServer(workdir=str(repo), steps=[ASK]) as server:
        agent = {**_agent(CODEX, server, repo.parent), "permissions": {"allow": ["Read(*)"]}}
        app = make_app(workspace=str(repo), agents__codex=agent, notify={"console": False}, digest={"enabled": False})
        assert app.engine.acquire()
        await app.engine.start()
        try:
            task_id = app.service.delegate("pick the storage", agent="codex", cwd=str(repo)).task.id
            for _ in range(1200):
                if requests := app.store.task_permissions(task_id):
                    break
                await asyncio.sleep(0.1)
            [request] = requests
            assert (request.tool, request.subject, request.state) == ("Question", "Which database?", "pending")
            assert "Postgres" in request.detail and "SQLite" in request.detail
            assert "(t1): SQLite" in app.service.answer_question(task_id, "2", actor="alice")
            task = await app.engine.wait_finished(task_id, timeout=120)
        finally:
            await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    assert STEPS_DONE in (task.final_text or "")
    last = json.dumps(server.model_calls("responses")[-1].body)
    assert "The person answered 'Which database?': SQLite" in last, "the answer reached the model"
    assert app.store.audit_search(task_id, action="answer"), "the answer is audited"


@pytest.mark.real_cli
@requires_tmux
@pytest.mark.usefixtures("cli_home")
@pytest.mark.parametrize("name", sorted(ASKS))
async def test_the_other_clis_ask_through_mcp_too(make_app: Any, repo: Path, name: str) -> None:
    case = next(c for c in CASES if c.name == name)
    _binary(case)
    with FakeModelServer(workdir=str(repo), steps=[ASKS[name]]) as server:
        agent = {**_agent(case, server, repo.parent), "permissions": {"allow": ["Read(*)"]}}
        app = make_app(
            workspace=str(repo), **{f"agents__{name}": agent}, notify={"console": False}, digest={"enabled": False}
        )
        assert app.engine.acquire()
        await app.engine.start()
        try:
            task_id = app.service.delegate("pick the storage", agent=name, cwd=str(repo)).task.id
            for _ in range(1200):
                if requests := app.store.task_permissions(task_id):
                    break
                await asyncio.sleep(0.1)
            [request] = requests
            assert (request.tool, request.subject, request.state) == ("Question", "Which database?", "pending")
            assert "(t1): SQLite" in app.service.answer_question(task_id, "2", actor="alice")
            task = await app.engine.wait_finished(task_id, timeout=180)
        finally:
            await app.engine.stop()
    assert task.state == TaskState.SUCCEEDED, task.error
    assert len(app.store.task_permissions(task_id)) == 1, "the question is not also judged as a tool call"
    last = json.dumps(server.model_calls(case.protocol)[-1].body)
    assert "The person answered 'Which database?': SQLite" in last, "the answer reached the model"
