"""Gemini CLI (``gemini --prompt=TASK --output-format stream-json --yolo --skip-trust``), measured on 0.61.0.

Adapter: ``GEMINI_CLI_HOME`` points the CLI at the agent's own config dir, where Orchestra writes
``.gemini/settings.json``: auth pinned to ``gemini-api-key`` (with ``GOOGLE_GEMINI_BASE_URL``
set, 0.61 otherwise picks a ``gateway`` auth that headless mode rejects with exit 41), usage
statistics and auto-update off, and ``general.maxAttempts`` from ``ORCHESTRA_MAX_RETRIES``. An
``env`` entry ``GEMINI_CLI_HOME`` in bots.yaml uses that home instead and nothing is written.
Without ``--yolo`` headless Gemini offers the model no write tool at all.

Permission hook (``settings.hook``): a ``BeforeTool`` hook for every tool (``matcher: "*"``) in
the same settings file, guarded (``core.agents.hooks``), its ``timeout`` in milliseconds. It
stays ``--yolo``: measured on 0.61, the headless default mode offers no shell, edit or fetch
tool, ``auto_edit`` no shell, and allowing the tools by policy (``tools.allowed``) still has the
CLI refuse commands it would ask about (a ``>`` redirect) after the hook said yes; the hook
runs before that policy and its allow cannot lift it. So every call is gated by the hook alone.
A deny is ``{"decision": "deny", "reason": ...}``, which the model reads as ``Tool execution
blocked: <reason>``. The hook gets the CLI's environment (``ORCHESTRA_TASK_DIR``, kept even under
Gemini's strict redaction) through ``bash -c``. With ``env: GEMINI_CLI_HOME`` (your own home)
there is nowhere to write the hook, so ``build`` refuses rather than run unguarded. With the hook
the settings also name Orchestra's ``ask_owner`` MCP server (``ask_owner_server``): the model sees
``mcp_orchestra_ask_owner`` and its questions reach the person like Claude's ``AskUserQuestion``.

Parser (``reference/agent-clis.md`` section 3): ``init`` (session id, model), ``message``
(assistant text arrives as deltas), ``tool_use``/``tool_result``, ``error`` and a final
``result`` with ``status`` and token ``stats``. The exit code on an API error is the HTTP status
mod 256 (401 -> 145). Tokens come only with the final ``result``: there is no live count.
``input_tokens`` is the prompt including cache; ``output_tokens`` leaves out thoughts, which
``total_tokens`` includes. No USD: tokens are priced with genai-prices.

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from core.agents import hooks
from core.agents.base import AgentEvent, AgentResult, AgentSettings, Invocation, PromptMode, Usage
from core.agents.common import (
    MAX_ARG_BYTES,
    MAX_DATA_CHARS,
    api_error,
    as_dict,
    as_int,
    as_str,
    config_dir,
    describe_tool,
    error_event,
    feed_json_line,
    has_flag,
    key_hint,
    max_retries,
    merged_env,
    no_result_reason,
    raw_event,
    shorten,
    stderr_summary,
    usage_event,
)
from core.permissions.ask_owner import SERVER as ASK_OWNER_SERVER
from core.permissions.ask_owner import server_argv as ask_owner_argv
from core.permissions.call import Decision, HookReply, ToolCall
from core.permissions.hook import TASK_DIR_ENV
from core.protocol import EventKind

_EXIT_CODES = {
    41: "authentication is not configured (exit 41)",
    42: "the input was refused (exit 42)",
    52: "the configuration is invalid (exit 52)",
    53: "the turn limit was reached (exit 53)",
    130: "cancelled (exit 130)",
}


class GeminiAdapter:
    """Builds headless ``gemini`` invocations and the settings of the agent's own home."""

    kind = "gemini"

    def build(self, task_text: str, settings: AgentSettings, *, resume: str | None = None) -> Invocation:
        """The task is ``--prompt=TASK`` (one element, even when it starts with ``-``), else stdin."""
        use_stdin = len(task_text.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES or "\0" in task_text
        argv = [settings.command, "--prompt=" if use_stdin else f"--prompt={task_text}"]
        argv += ["--output-format", "stream-json"]
        if not has_flag(settings.args, "--approval-mode", "-y", "--yolo"):
            argv.append("--yolo")
        argv.append("--skip-trust")
        if settings.model and not has_flag(settings.args, "-m", "--model"):
            argv += ["-m", settings.model]
        if resume:
            argv += ["--resume", resume]
        argv += settings.args
        env: dict[str, str] = {}
        files: dict[str, str] = {}
        if settings.hook and "GEMINI_CLI_HOME" in settings.env:
            raise ValueError(
                f"agent {settings.name}: the permission hook goes into Orchestra's own GEMINI_CLI_HOME,"
                " so env GEMINI_CLI_HOME cannot be used with it"
            )
        if "GEMINI_CLI_HOME" not in settings.env:
            home = config_dir(settings)
            env["GEMINI_CLI_HOME"] = home
            files[os.path.join(home, ".gemini", "settings.json")] = gemini_settings(settings)
        prompt_mode: PromptMode = "stdin" if use_stdin else "arg"
        return Invocation(
            argv=argv, env=merged_env(settings, env), prompt_mode=prompt_mode, parser="gemini", files=files
        )

    def version_argv(self, settings: AgentSettings) -> list[str]:
        return [settings.command, "--version"]


def gemini_settings(settings: AgentSettings) -> str:
    data: dict[str, Any] = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    }
    retries = max_retries(settings)
    if retries is not None:
        data["general"]["maxAttempts"] = retries + 1
    if settings.hook:
        hook = {
            "name": "orchestra-permissions",
            "type": "command",
            "command": hooks.guarded_command(settings.hook, settings.hook_timeout_s),
            "timeout": hooks.cli_timeout_s(settings.hook_timeout_s) * 1000,
        }
        data["hooks"] = {"BeforeTool": [{"matcher": "*", "hooks": [hook]}]}
        data["security"]["environmentVariableRedaction"] = {"allowed": ["ORCHESTRA_TASK_DIR"]}
        data["mcpServers"] = ask_owner_server(settings)
    return json.dumps(data, indent=2) + "\n"


def ask_owner_server(settings: AgentSettings) -> dict[str, Any]:
    """The ``mcpServers`` entry that offers the model ``ask_owner`` (``core.permissions.ask_owner``), in
    the settings format Gemini CLI and Qwen Code share: ``trust`` skips the CLI's own confirmation (the
    call is a question to the person, not an action), ``timeout`` in milliseconds covers the wait for
    the answer, and the task's directory is passed on by name."""
    command, *args = ask_owner_argv(settings.kind)
    timeout_ms = max(60, int(settings.hook_timeout_s)) * 1000  # as for Codex: an answer takes a while
    env = {TASK_DIR_ENV: "$" + TASK_DIR_ENV}
    return {ASK_OWNER_SERVER: {"command": command, "args": args, "env": env, "trust": True, "timeout": timeout_ms}}


def hook_call(payload: dict[str, Any]) -> ToolCall | None:
    """A ``BeforeTool`` payload (``tool_name``, ``tool_input``, ``cwd``) as a neutral call."""
    return hooks.generic_call("gemini", payload)


def hook_reply(decision: Decision) -> HookReply:
    return hooks.generic_reply("gemini", decision)


class GeminiParser:
    """Parses Gemini CLI's stream-json output; one instance per run, fed line by line."""

    def __init__(self) -> None:
        self._session_id: str | None = None
        self._model: str | None = None
        self._cwd = os.getcwd()
        self._result: dict[str, Any] | None = None
        self._usage = Usage()
        self._reply: list[str] = []
        self._last_reply = ""
        self._tools: dict[str, str] = {}
        self._errors: list[str] = []
        self._denials: list[str] = []
        self._pending = ""

    def feed(self, line: str) -> list[AgentEvent]:
        return feed_json_line(line, self._dispatch)

    def _dispatch(self, obj: dict[str, Any], line: str) -> list[AgentEvent]:
        kind = obj.get("type")
        if kind == "init":
            self._session_id = as_str(obj.get("session_id")) or self._session_id
            self._model = as_str(obj.get("model")) or self._model
            data: dict[str, Any] = {"session_id": self._session_id, "model": self._model}
            return [AgentEvent(EventKind.INIT, f"session {self._session_id or '?'} · model {self._model or '?'}", data)]
        if kind == "message":
            if obj.get("role") != "assistant":
                return []
            chunk = as_str(obj.get("content")) or ""
            if obj.get("delta") is not True:
                self._reply = []
            self._reply.append(chunk)
            self._last_reply = "".join(self._reply)
            self._pending += chunk
            if len(self._pending) > MAX_DATA_CHARS:
                events, self._pending = _text(self._pending), ""
                return events
            if "\n" not in self._pending:
                return []
            # Deltas are a few words each: show whole lines, not one event per delta.
            done, _, self._pending = self._pending.rpartition("\n")
            return _text(done)
        events = _text(self._pending)
        self._pending = ""
        return events + self._dispatch_other(kind, obj, line)

    def _dispatch_other(self, kind: Any, obj: dict[str, Any], line: str) -> list[AgentEvent]:
        if kind == "tool_use":
            self._reply = []
            name = as_str(obj.get("tool_name")) or "tool"
            tool_id = as_str(obj.get("tool_id")) or ""
            self._tools[tool_id] = name
            tool_input = as_dict(obj.get("parameters"))
            data = {"id": tool_id, "name": name, "input": tool_input}
            return [AgentEvent(EventKind.TOOL_USE, describe_tool(name, tool_input, self._cwd), data)]
        if kind == "tool_result":
            return [self._tool_result(obj)]
        if kind == "error":
            message = as_str(obj.get("message")) or as_str(as_dict(obj.get("error")).get("message")) or "error"
            severity = as_str(obj.get("severity")) or "error"
            if severity == "warning":
                return [raw_event(line, f"warning: {message}")]
            self._errors.append(api_error(message))
            return [error_event(api_error(message))]
        if kind == "result":
            return self._on_result(obj)
        return [raw_event(line)]

    def _tool_result(self, obj: dict[str, Any]) -> AgentEvent:
        tool_id = as_str(obj.get("tool_id")) or ""
        name = self._tools.get(tool_id, "tool")
        failed = obj.get("status") != "success"
        error = as_dict(obj.get("error"))
        detail = as_str(error.get("message")) or as_str(obj.get("output")) or ("failed" if failed else "done")
        if failed and any(word in detail.lower() for word in ("permission", "denied", "not allowed", "rejected")):
            self._denials.append(f"{name}: {shorten(detail, 120)}")
        first = detail.strip().splitlines()[0] if detail.strip() else detail
        text = f"{name} error: {first}" if failed else f"{name}: {first}"
        return AgentEvent(
            EventKind.TOOL_RESULT, shorten(text), {"tool_use_id": tool_id, "name": name, "is_error": failed}
        )

    def _on_result(self, obj: dict[str, Any]) -> list[AgentEvent]:
        self._result = obj
        stats = as_dict(obj.get("stats"))
        self._usage = gemini_usage(stats)
        models = as_dict(stats.get("models"))
        if models:  # the key is the response's modelVersion, which is what was billed
            self._model = max(models, key=lambda m: as_int(as_dict(models[m]).get("input_tokens")))
        events = [usage_event(self._usage, self._model, final=True)]
        if obj.get("status") != "success":
            message = as_str(as_dict(obj.get("error")).get("message")) or "the agent reported an error"
            events.append(error_event(api_error(message)))
        return events

    def live_usage(self) -> tuple[Usage, str | None]:
        return Usage(**self._usage.to_dict()), self._model

    def live_cost_usd(self) -> float | None:
        return None

    def finish(self, exit_code: int, stderr_tail: str) -> AgentResult:
        result = self._result
        errors: list[str] = []
        if result is None:
            errors.append(_exit_reason(exit_code) or no_result_reason(exit_code))
            errors += self._errors[-1:]
        elif result.get("status") != "success":
            message = as_str(as_dict(result.get("error")).get("message")) or "the agent reported an error"
            errors.append(key_hint(api_error(message), "GEMINI_API_KEY"))
        elif exit_code != 0:
            errors.append(_exit_reason(exit_code) or f"agent exited with code {exit_code}")
        if errors and exit_code != 0 and result is None:
            summary = stderr_summary(stderr_tail)
            if summary:
                errors.append(f"stderr: {summary}")
        return AgentResult(
            status="failed" if errors else "succeeded",
            final_text=self._last_reply,
            usage=Usage(**self._usage.to_dict()),
            cost_usd=None,
            cost_source="unknown",
            session_id=self._session_id,
            model=self._model,
            errors=errors,
            permission_denials=list(self._denials),
            exit_code=exit_code,
        )


def _text(text: str) -> list[AgentEvent]:
    return [AgentEvent(EventKind.TEXT, shorten(text), {"text": text[:MAX_DATA_CHARS]})] if text.strip() else []


def gemini_usage(stats: dict[str, Any]) -> Usage:
    """``result.stats`` to ``Usage``: thoughts are the part of ``total`` that is neither in nor out."""
    prompt = as_int(stats.get("input_tokens"))
    output = as_int(stats.get("output_tokens"))
    total = as_int(stats.get("total_tokens"))
    return Usage(
        input_tokens=prompt,
        output_tokens=max(output, total - prompt),
        cache_read_tokens=as_int(stats.get("cached")),
        cache_write_tokens=0,
    )


def _exit_reason(exit_code: int) -> str | None:
    if exit_code in _EXIT_CODES:
        return _EXIT_CODES[exit_code]
    for status in (exit_code + 256, exit_code + 512):  # process.exit(401) arrives as 145
        if 400 <= status < 600:
            return f"API error {status} (exit code {exit_code})"
    return None
