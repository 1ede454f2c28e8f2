"""GitHub Copilot CLI (``copilot --prompt=TASK --output-format json``), measured on 1.0.102.

Adapter: ``COPILOT_HOME`` points the CLI at the agent's own config dir (its settings, logs and
``session-state/<id>/events.jsonl``); an ``env`` entry ``COPILOT_HOME`` in bots.yaml uses that one
instead (e.g. ``~/.copilot`` for a GitHub login) and nothing is written. Any model server works
without a GitHub login through the agent's ``env``: ``COPILOT_OFFLINE=true``,
``COPILOT_PROVIDER_BASE_URL``, ``COPILOT_PROVIDER_TYPE`` (openai, azure, anthropic),
``COPILOT_PROVIDER_WIRE_API`` (completions, responses) and the key ``COPILOT_PROVIDER_API_KEY``
through ``env_from``. Updates are off (``--no-auto-update``) and so is the ``ask_user`` tool, which
would wait for an answer no one types.

Permissions: never ``--allow-all-tools``. With the hook (``settings.hook``) a ``preToolUse`` hook
in ``settings.json`` gates every call (``core.agents.copilot_hooks``): its allow runs a call
without any ``--allow-tool``, so the policy alone decides. With ``hook: false``, ``--allow-tool
write``: file edits in the working folder (and the temp dir, Copilot's path check) run, and every
shell command is refused, since ``-p`` mode has no one to ask. ``--allow-tool``/``--deny-tool``
patterns (``shell(git:*)``) in ``args`` go on top of either; they cannot say "ask a person".

Parser: stdout is one JSON event per line (``assistant.message`` with the text and
``toolRequests``, ``tool.execution_start``/``_complete``, ``session.error``) and a last ``result``
line with ``sessionId`` and ``exitCode`` but no tokens. Tokens are read at the end from the
session's ``events.jsonl``: ``session.shutdown`` → ``modelMetrics[model].usage`` (``inputTokens``
includes cache reads, ``outputTokens`` includes reasoning, as ``Usage`` counts). Those are the
session's totals, so a resumed run (``--resume=ID`` appends to the same file) counts the last
shutdown minus the one before it. No USD for BYOK (``requests.cost`` is 0): tokens are priced
with genai-prices. No live token count.

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from core.agents import hooks
from core.agents.base import AgentEvent, AgentResult, AgentSettings, Invocation, PromptMode, Usage, parser_ref
from core.agents.common import (
    MAX_ARG_BYTES,
    MAX_DATA_CHARS,
    as_dict,
    as_int,
    as_str,
    config_dir,
    describe_tool,
    error_event,
    feed_json_line,
    has_flag,
    key_hint,
    load_json,
    merged_env,
    no_result_reason,
    raw_event,
    shorten,
    stderr_summary,
)
from core.agents.copilot_hooks import hook_call, hook_reply
from core.permissions.ask_owner import SERVER as ASK_OWNER_SERVER
from core.permissions.ask_owner import server_argv as ask_owner_argv
from core.permissions.hook import TASK_DIR_ENV
from core.protocol import EventKind

__all__ = ["CopilotAdapter", "CopilotParser", "hook_call", "hook_reply", "session_usage"]
KEY_VAR = "COPILOT_PROVIDER_API_KEY"
_PERMISSION_FLAGS = ("--allow-tool", "--allow-all-tools", "--allow-all", "--yolo")
# Ephemeral progress lines that carry nothing a person or the result needs.
_QUIET = frozenset({
    "session.skills_loaded", "session.mcp_servers_loaded", "session.background_tasks_changed", "assistant.turn_start",
    "assistant.turn_end", "assistant.message_start", "assistant.message_delta", "assistant.tool_call_delta",
    "model.call_start", "model.call_finished", "model.call_final_result", "assistant.idle", "user.message",
    "session.tools_updated", "assistant.reasoning_delta", "assistant.reasoning",
})  # fmt: skip


class CopilotAdapter:
    """Builds ``copilot -p`` invocations and the ``settings.json`` of the agent's ``COPILOT_HOME``."""

    kind = "copilot"

    def build(self, task_text: str, settings: AgentSettings, *, resume: str | None = None) -> Invocation:
        """The task is ``--prompt=TASK`` (one element, even when it starts with ``-``), else stdin."""
        use_stdin = len(task_text.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES or "\0" in task_text
        argv = [settings.command]
        if not use_stdin:
            argv.append(f"--prompt={task_text}")
        argv += ["--output-format", "json", "--no-auto-update", "--no-ask-user"]
        if not settings.hook and not has_flag(settings.args, *_PERMISSION_FLAGS):
            argv += ["--allow-tool", "write"]
        if settings.model and not has_flag(settings.args, "--model"):
            argv.append(f"--model={settings.model}")
        if resume:
            argv.append(f"--resume={resume}")
        argv += settings.args
        env = {"COPILOT_AUTO_UPDATE": "false"}
        files: dict[str, str] = {}
        home = settings.env.get("COPILOT_HOME")
        if home is None:
            home = config_dir(settings)
            env["COPILOT_HOME"] = home
            files[os.path.join(home, "settings.json")] = copilot_settings(settings)
            if settings.hook:  # the model can ask its owner (``core.permissions.ask_owner``), as Claude can
                files[os.path.join(home, "mcp-config.json")] = copilot_mcp_config()
        elif settings.hook:
            raise ValueError(
                f"agent {settings.name}: the permission hook goes into Orchestra's own COPILOT_HOME,"
                " so env COPILOT_HOME cannot be used with it"
            )
        prompt_mode: PromptMode = "stdin" if use_stdin else "arg"
        return Invocation(
            argv=argv,
            env=merged_env(settings, env),
            prompt_mode=prompt_mode,
            parser=parser_ref("copilot", home=os.path.expanduser(home), model=settings.model),
            files=files,
        )

    def version_argv(self, settings: AgentSettings) -> list[str]:
        return [settings.command, "--version"]


def copilot_settings(settings: AgentSettings) -> str:
    """``settings.json``: updates and the banner off, and the ``preToolUse`` hook when it is on."""
    data: dict[str, Any] = {"autoUpdate": False, "banner": "never"}
    if settings.hook:
        hook = {
            "type": "command",
            "bash": hooks.guarded_command(settings.hook, settings.hook_timeout_s),
            "timeoutSec": hooks.cli_timeout_s(settings.hook_timeout_s),
        }
        data["disableAllHooks"] = False
        data["hooks"] = {"preToolUse": [hook]}
    return json.dumps(data, indent=2) + "\n"


def copilot_mcp_config() -> str:
    """``mcp-config.json``: Orchestra's ``ask_owner`` server; the task's directory is passed by name."""
    command, *args = ask_owner_argv("copilot")
    env = {TASK_DIR_ENV: "${" + TASK_DIR_ENV + "}"}
    server = {"type": "local", "command": command, "args": args, "env": env, "tools": ["*"]}
    return json.dumps({"mcpServers": {ASK_OWNER_SERVER: server}}, indent=2) + "\n"


def copilot_usage(raw: Any) -> Usage:
    """One ``modelMetrics[model].usage`` as ``Usage`` (OpenAI semantics already)."""
    usage = as_dict(raw)
    return Usage(
        input_tokens=as_int(usage.get("inputTokens")),
        output_tokens=as_int(usage.get("outputTokens")),
        cache_read_tokens=as_int(usage.get("cacheReadTokens")),
        cache_write_tokens=as_int(usage.get("cacheWriteTokens")),
    )


def session_usage(path: str) -> tuple[Usage, str | None] | None:
    """This run's tokens and main model from a session's ``events.jsonl``; None without a shutdown.

    Each ``session.shutdown`` holds the session's totals so far, so the run's share is the last
    one minus the one before it (a resumed session's earlier run), model by model.
    """
    shutdowns: list[dict[str, Usage]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if '"session.shutdown"' not in line:
                    continue
                obj = load_json(line)
                if obj and obj.get("type") == "session.shutdown":
                    metrics = as_dict(as_dict(obj.get("data")).get("modelMetrics"))
                    shutdowns.append({m: copilot_usage(as_dict(v).get("usage")) for m, v in metrics.items()})
    except OSError:
        return None
    if not shutdowns:
        return None
    last, before = shutdowns[-1], shutdowns[-2] if len(shutdowns) > 1 else {}
    runs = {model: _minus(usage, before.get(model)) for model, usage in last.items()}
    total = Usage()
    for usage in runs.values():
        total = Usage(**{k: getattr(total, k) + getattr(usage, k) for k in total.to_dict()})
    model = max(runs, key=lambda m: runs[m].input_tokens) if runs else None
    return total, model


def _minus(now: Usage, before: Usage | None) -> Usage:
    if before is None:
        return now
    return Usage(**{key: max(value - getattr(before, key), 0) for key, value in now.to_dict().items()})


class CopilotParser:
    """Parses ``copilot --output-format json``; tokens come from the session file at the end."""

    def __init__(self, home: str | None = None, model: str | None = None) -> None:
        self._home = home
        self._model = model
        self._cwd = os.getcwd()
        self._result: dict[str, Any] | None = None
        self._last_reply = ""
        self._tools: dict[str, str] = {}
        self._errors: list[str] = []
        self._denials: list[str] = []
        self._tool_errors: list[str] = []
        self._usage = Usage()

    def feed(self, line: str) -> list[AgentEvent]:
        return feed_json_line(line, self._dispatch)

    def _dispatch(self, obj: dict[str, Any], line: str) -> list[AgentEvent]:
        kind = as_str(obj.get("type")) or ""
        data = as_dict(obj.get("data"))
        if kind == "session.tools_updated":
            self._model = as_str(data.get("model")) or self._model
            return [AgentEvent(EventKind.INIT, f"model {self._model or '?'}", {"model": self._model})]
        if kind == "assistant.message":
            text = as_str(data.get("content")) or ""
            self._model = as_str(data.get("model")) or self._model
            if not text.strip():
                return []
            self._last_reply = text
            return [AgentEvent(EventKind.TEXT, shorten(text), {"text": text[:MAX_DATA_CHARS]})]
        if kind == "tool.execution_start":
            name = as_str(data.get("toolName")) or "tool"
            tool_input = as_dict(data.get("arguments"))
            shown = describe_tool(name, tool_input, self._cwd)
            self._tools[as_str(data.get("toolCallId")) or ""] = shown
            event_data = {"id": data.get("toolCallId"), "name": name, "input": tool_input}
            return [AgentEvent(EventKind.TOOL_USE, shown, event_data)]
        if kind == "tool.execution_complete":
            return [self._tool_result(data)]
        if kind == "session.error":
            reason = _error_reason(data)
            self._errors.append(reason)
            return [error_event(reason)]
        if kind == "result":  # Copilot writes the session's shutdown record after this line: see ``finish``
            self._result = obj
            return []
        if kind in _QUIET or obj.get("ephemeral") is True:
            return []
        return [raw_event(line)]

    def _tool_result(self, data: dict[str, Any]) -> AgentEvent:
        call_id = as_str(data.get("toolCallId")) or ""
        shown = self._tools.get(call_id, "tool")
        failed = data.get("success") is not True
        error = as_dict(data.get("error"))
        message = as_str(error.get("message")) or ""
        if failed and error.get("code") == "denied":
            self._denials.append(f"{shown} (denied: {shorten(message, 120)})")
        elif failed:
            self._tool_errors.append(f"{shown} error: {shorten(message or 'failed', 120)}")
        result = as_dict(data.get("result"))
        detail = message or as_str(result.get("content")) or ("failed" if failed else "done")
        first = next((part for part in detail.strip().splitlines() if part.strip()), detail)
        text = f"{shown} error: {first}" if failed else f"{shown}: {first}"
        return AgentEvent(EventKind.TOOL_RESULT, shorten(text), {"tool_use_id": call_id, "is_error": failed})

    def _session_file(self, session_id: str | None) -> tuple[Usage, str | None] | None:
        if not (self._home and session_id) or "/" in session_id or session_id.startswith("."):
            return None
        return session_usage(os.path.join(self._home, "session-state", session_id, "events.jsonl"))

    def live_usage(self) -> tuple[Usage, str | None]:
        return Usage(**self._usage.to_dict()), self._model

    def live_cost_usd(self) -> float | None:
        return None

    def finish(self, exit_code: int, stderr_tail: str) -> AgentResult:
        result = self._result
        found = self._session_file(as_str(result.get("sessionId")) if result else None)
        if found is not None:
            self._usage, model = found
            self._model = model or self._model
        errors: list[str] = []
        reported = as_int(result.get("exitCode")) if result else None
        if result is None:
            errors.append(no_result_reason(exit_code))
            errors += self._errors[-1:]
            summary = stderr_summary(stderr_tail)
            if summary and exit_code != 0:
                errors.append(f"stderr: {summary}")
        elif self._errors:
            errors.append(self._errors[-1])
        elif reported or exit_code != 0:
            errors.append(f"agent exited with code {reported or exit_code}")
        return AgentResult(
            status="failed" if errors else "succeeded",
            final_text=self._last_reply,
            usage=Usage(**self._usage.to_dict()),
            cost_usd=None,
            cost_source="unknown",
            session_id=as_str(result.get("sessionId")) if result else None,
            model=self._model,
            errors=errors,
            permission_denials=list(self._denials),
            tool_errors=list(self._tool_errors),
            exit_code=exit_code,
        )


def _error_reason(data: dict[str, Any]) -> str:
    """``API error 401: Authentication failed with provider ... · check COPILOT_PROVIDER_API_KEY``."""
    message = as_str(data.get("message")) or as_str(data.get("errorType")) or "the agent reported an error"
    first = next((part.strip() for part in message.splitlines() if part.strip()), message)
    status = data.get("statusCode")
    reason = f"API error {status}: {first}" if isinstance(status, int) and not isinstance(status, bool) else first
    return key_hint(shorten(reason, 300), KEY_VAR)
