"""Qwen Code (``qwen --output-format stream-json --yolo --auth-type openai TASK``), measured on 0.24.4.

Adapter: ``QWEN_HOME`` points the CLI at the agent's own config dir, where Orchestra writes
``settings.json`` (usage statistics and auto-update off). An ``env`` entry ``QWEN_HOME`` in
bots.yaml uses that dir instead (e.g. ``~/.qwen`` for a Qwen OAuth login) and nothing is
written. The endpoint comes from ``OPENAI_BASE_URL``/``OPENAI_API_KEY``/``OPENAI_MODEL`` (or
``model``); ``--auth-type`` in ``args`` replaces the default ``openai``. Without ``--yolo`` the
headless mode offers the model no write or shell tool.

Permission hook (``settings.hook``): a ``PreToolUse`` hook for every tool, Claude Code's format,
guarded (``core.agents.hooks``), in the same ``settings.json`` (in a system settings file,
``QWEN_CODE_SYSTEM_SETTINGS_PATH``, when ``QWEN_HOME`` is yours). Its ``timeout`` is in seconds,
but 0.24.4 reads any value of 1000 or more as milliseconds. It stays ``--yolo``, measured: the
headless default and ``auto-edit`` modes offer no shell tool, and ``permissions.allow`` still has
the CLI decline the commands it would ask about (a redirect, ``curl``) before the hook runs. A
deferred tool called through ``tool_call`` reaches the hook under its own name (``web_fetch``).
The same settings name the ``ask_owner`` MCP server; Qwen defers MCP tools, so the model finds
``mcp__orchestra__ask_owner`` with ``tool_search`` and calls it through ``tool_call`` (measured, 0.24).

Parser: Qwen's stream is Claude Code's SDK shape (``reference/agent-clis.md`` section 4), so
``ClaudeParser`` reads it, with three differences: ``usage.input_tokens`` already includes
cached tokens (OpenAI semantics), an API error is an assistant text ``[API Error: 401 ...]``
and the result's ``error.message``, and there is no USD figure (tokens are priced with
genai-prices; Qwen's own models have no price there, so their cost is unknown). The result's
``usage`` covers the whole session, earlier runs of a resumed one and side calls included, so a
resumed run subtracts the total its session's previous run reported.

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from core.agents import hooks
from core.agents.base import AgentResult, AgentSettings, Invocation, PromptMode, Usage
from core.agents.claude import ClaudeParser
from core.agents.claude_result import result_errors
from core.agents.common import (
    api_error,
    argv_safe,
    as_dict,
    as_int,
    as_str,
    config_dir,
    has_flag,
    key_hint,
    merged_env,
)
from core.agents.gemini import ask_owner_server
from core.permissions.call import Decision, HookReply, ToolCall

SYSTEM_SETTINGS = "QWEN_CODE_SYSTEM_SETTINGS_PATH"


class QwenAdapter:
    """Builds one-shot ``qwen`` invocations; the task is the positional prompt or stdin."""

    kind = "qwen"

    def build(self, task_text: str, settings: AgentSettings, *, resume: str | None = None) -> Invocation:
        argv = [settings.command, "--output-format", "stream-json"]
        if not has_flag(settings.args, "--approval-mode", "-y", "--yolo"):
            argv.append("--yolo")
        if not has_flag(settings.args, "--auth-type"):
            argv += ["--auth-type", "openai"]
        if settings.model and not has_flag(settings.args, "-m", "--model"):
            argv += ["-m", settings.model]
        if resume:
            argv += ["--resume", resume]
        argv += settings.args
        use_stdin = not argv_safe(task_text)
        if not use_stdin:
            argv.append(task_text)
        env = {"QWEN_CODE_SUPPRESS_YOLO_WARNING": "1"}
        files: dict[str, str] = {}
        if "QWEN_HOME" not in settings.env:
            home = config_dir(settings)
            env["QWEN_HOME"] = home
            settings_json = {"privacy": {"usageStatisticsEnabled": False}, "general": {"enableAutoUpdate": False}}
            files[os.path.join(home, "settings.json")] = json.dumps(settings_json | _hooks(settings), indent=2) + "\n"
        elif settings.hook:
            if SYSTEM_SETTINGS in settings.env:
                raise ValueError(f"agent {settings.name}: the permission hook needs {SYSTEM_SETTINGS} of its own")
            path = config_dir(settings, "system-settings.json")
            env[SYSTEM_SETTINGS] = path
            files[path] = json.dumps(_hooks(settings), indent=2) + "\n"
        prompt_mode: PromptMode = "stdin" if use_stdin else "arg"
        return Invocation(argv=argv, env=merged_env(settings, env), prompt_mode=prompt_mode, parser="qwen", files=files)

    def version_argv(self, settings: AgentSettings) -> list[str]:
        return [settings.command, "--version"]


def _hooks(settings: AgentSettings) -> dict[str, Any]:
    if not settings.hook:
        return {}
    timeout = hooks.cli_timeout_s(settings.hook_timeout_s)
    hook = {
        "type": "command",
        "command": hooks.guarded_command(settings.hook, settings.hook_timeout_s),
        "timeout": timeout if timeout < 1000 else timeout * 1000,  # 1000 and up are taken as milliseconds
    }
    hooks_on = {"disableAllHooks": False, "hooks": {"PreToolUse": [{"matcher": "*", "hooks": [hook]}]}}
    return hooks_on | {"mcpServers": ask_owner_server(settings)}  # the model can ask its owner, as Claude can


def hook_call(payload: dict[str, Any]) -> ToolCall | None:
    """A ``PreToolUse`` payload (``tool_name``, ``tool_input``, ``cwd``) as a neutral call."""
    return hooks.generic_call("qwen", payload)


def hook_reply(decision: Decision) -> HookReply:
    return hooks.generic_reply("qwen", decision)


def qwen_usage(raw: Any) -> Usage:
    """Qwen's ``usage`` to ``Usage``: input includes cache reads, output includes reasoning."""
    usage = as_dict(raw)
    return Usage(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cache_read_tokens=as_int(usage.get("cache_read_input_tokens")),
        cache_write_tokens=as_int(usage.get("cache_creation_input_tokens")),
    )


class QwenParser(ClaudeParser):
    """``ClaudeParser`` with Qwen's token semantics and error shapes."""

    def _convert_usage(self, raw: Any) -> Usage:
        return qwen_usage(raw)

    def _result_errors(self, result: dict[str, Any]) -> list[str]:
        message = as_str(as_dict(result.get("error")).get("message"))
        reasons = [key_hint(api_error(message), "OPENAI_API_KEY")] if message else []
        for reason in result_errors(result):
            if reason != "error during execution" or not reasons:
                reasons.append(reason)
        return reasons

    def _key_var(self) -> str:
        return "OPENAI_API_KEY"

    def _is_error_text(self, text: str) -> bool:
        return text.startswith("[API Error")

    def _run_usage(self, reported: Any) -> Usage:
        """This run's tokens: the result's ``usage`` minus the session's earlier total.

        Qwen's result counts every call of the session, earlier runs and side calls (memory
        extraction) included. Without the earlier total, only the run's own assistant messages
        can be counted, which misses the side calls.
        """
        if not isinstance(reported, dict):
            return self._counted_usage()
        total = self._convert_usage(reported)
        start = self._session_start
        if start is None:
            return total
        before = start.usage
        if before is None or total.input_tokens < before.input_tokens or total.output_tokens < before.output_tokens:
            return self._counted_usage()
        return Usage(
            input_tokens=total.input_tokens - before.input_tokens,
            output_tokens=total.output_tokens - before.output_tokens,
            cache_read_tokens=max(total.cache_read_tokens - before.cache_read_tokens, 0),
            cache_write_tokens=max(total.cache_write_tokens - before.cache_write_tokens, 0),
        )

    def finish(self, exit_code: int, stderr_tail: str) -> AgentResult:
        result = super().finish(exit_code, stderr_tail)
        reported = self._result.get("usage") if self._result else None
        if isinstance(reported, dict):
            result.session_usage = self._convert_usage(reported)
        return result
