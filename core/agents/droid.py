"""Factory Droid (``droid exec -o stream-json --auto medium TASK``), measured on 0.225.2.

Adapter: the default autonomy of ``droid exec`` is read-only; ``--auto medium`` lets it edit
files, build and run tests (``--auto`` or ``--skip-permissions-unsafe`` in ``args`` replace it).
For your own OpenAI-compatible endpoint (``OPENAI_BASE_URL`` in ``env``, ``model`` set) Orchestra
writes a runtime settings file in the agent's config dir, passed with ``--settings`` (merged for
that process only, never into ``~/.factory``), declaring the model with ``apiKey:
"${OPENAI_API_KEY}"`` (the name, never the value), and selects it as ``custom:<model>``. BYOK
``droid exec`` needs no Factory login; Factory-hosted models need ``FACTORY_API_KEY``.

Permission hook (``settings.hook``): a ``PreToolUse`` hook for every tool, Claude Code's format,
guarded (``core.agents.hooks``), in that runtime settings file (written then even without a
custom model; ``--settings`` in ``args`` cannot be combined with it). Measured on 0.225.2: the
hook's ``allow`` lets a call run whatever its autonomy level (a ``riskLevel: high`` command ran
even read-only), its silence leaves the level in charge (a call above it ends the whole exec), a
deny's reason reaches the model, and exit 3 aborts the run. So with the hook Droid runs at
``--auto low``, the lowest level that offers the edit tools, and the hook is the gate. The hook
runs through ``sh -c`` with the CLI's environment; its ``timeout`` is in seconds.

Parser (``reference/agent-clis.md`` section 6): ``system/init``, ``message``, ``tool_call``,
``tool_result``, ``error`` and the final ``completion`` (``finalText``, ``session_id``,
``usage`` in Anthropic semantics: input excludes cache). ``-o json``'s single ``result`` object
is understood too. Tokens arrive only with ``completion``: there is no live count. No USD for
BYOK models (``factory_credits`` are not dollars): tokens are priced with genai-prices.

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from core.agents import hooks
from core.agents.base import AgentEvent, AgentResult, AgentSettings, Invocation, PromptMode, Usage, parser_ref
from core.agents.claude import anthropic_usage
from core.agents.common import (
    MAX_DATA_CHARS,
    api_error,
    argv_safe,
    as_dict,
    as_str,
    config_dir,
    describe_tool,
    error_event,
    feed_json_line,
    has_flag,
    merged_env,
    model_for_pricing,
    no_result_reason,
    raw_event,
    shorten,
    stderr_summary,
    usage_event,
)
from core.permissions.call import Decision, HookReply, ToolCall
from core.protocol import EventKind


class DroidAdapter:
    """Builds ``droid exec`` invocations; long or odd task text goes through ``-f task.md``."""

    kind = "droid"

    def build(self, task_text: str, settings: AgentSettings, *, resume: str | None = None) -> Invocation:
        argv = [settings.command, "exec", "-o", "stream-json"]
        if not has_flag(settings.args, "--auto", "--skip-permissions-unsafe"):
            argv += ["--auto", "low" if settings.hook else "medium"]
        if settings.hook and has_flag(settings.args, "--settings"):
            raise ValueError(f"agent {settings.name}: the permission hook needs Orchestra's own --settings file")
        files: dict[str, str] = {}
        model = settings.model
        base_url = settings.env.get("OPENAI_BASE_URL")
        custom = bool(model and base_url and not has_flag(settings.args, "--settings"))
        if custom or settings.hook:
            path = config_dir(settings, "settings.json")
            files[path] = droid_settings(model if custom else None, base_url or "", settings)
            argv += ["--settings", path]
        if custom:
            model = f"custom:{model}"
        if model and not has_flag(settings.args, "-m", "--model"):
            argv += ["-m", model]
        if resume and not base_url:
            # 0.225.2 continues a session only with a Factory login: a BYOK run given
            # --session-id exits 1 without a word, so a BYOK follow-up starts a new session.
            argv += ["--session-id", resume]
        argv += settings.args
        prompt_mode: PromptMode = "arg"
        if argv_safe(task_text):
            argv.append(task_text)
        else:
            argv += ["-f", "{task_file}"]
            prompt_mode = "file"
        return Invocation(
            argv=argv,
            env=merged_env(settings, {}),
            prompt_mode=prompt_mode,
            parser=parser_ref("droid", model=settings.model),
            files=files,
        )

    def version_argv(self, settings: AgentSettings) -> list[str]:
        return [settings.command, "--version"]


def droid_settings(model: str | None, base_url: str, settings: AgentSettings | None = None) -> str:
    """The runtime settings: the custom model (when ``model``) and the permission hook (when set)."""
    data: dict[str, Any] = {}
    if model:
        entry = {
            "model": model,
            "displayName": f"Orchestra {model}",
            "baseUrl": base_url,
            "apiKey": "${OPENAI_API_KEY}",
            "provider": "generic-chat-completion-api",
            "maxOutputTokens": 16384,
        }
        data["customModels"] = [entry]
    if settings is not None and settings.hook:
        hook = {
            "type": "command",
            "command": hooks.guarded_command(settings.hook, settings.hook_timeout_s),
            "timeout": hooks.cli_timeout_s(settings.hook_timeout_s),
        }
        data["hooks"] = {"PreToolUse": [{"matcher": "*", "hooks": [hook]}]}
    return json.dumps(data, indent=2) + "\n"


def hook_call(payload: dict[str, Any]) -> ToolCall | None:
    """A ``PreToolUse`` payload (``tool_name``, ``tool_input``, ``cwd``) as a neutral call."""
    return hooks.generic_call("droid", payload)


def hook_reply(decision: Decision) -> HookReply:
    return hooks.generic_reply("droid", decision)


class DroidParser:
    """Parses ``droid exec -o stream-json`` (and ``-o json``); one instance per run."""

    def __init__(self, model: str | None = None) -> None:
        self._model = model
        self._cwd = os.getcwd()
        self._session_id: str | None = None
        self._final: dict[str, Any] | None = None
        self._usage = Usage()
        self._last_text = ""
        self._tools: dict[str, str] = {}
        self._errors: list[str] = []
        self._denials: list[str] = []

    def feed(self, line: str) -> list[AgentEvent]:
        return feed_json_line(line, self._dispatch)

    def _dispatch(self, obj: dict[str, Any], line: str) -> list[AgentEvent]:
        kind = obj.get("type")
        self._session_id = as_str(obj.get("session_id")) or self._session_id
        if kind == "system" and obj.get("subtype") == "init":
            named = as_str(obj.get("model"))
            if self._model is None and named and not named.startswith("custom:"):
                self._model = named  # a Factory-hosted model; a custom one is named by its display id
            self._cwd = as_str(obj.get("cwd")) or self._cwd
            data = {"session_id": self._session_id, "model": self._model, "cwd": self._cwd}
            return [AgentEvent(EventKind.INIT, f"session {self._session_id or '?'} · model {named or '?'}", data)]
        if kind == "message":
            if obj.get("role") != "assistant":
                return []
            text = as_str(obj.get("text")) or ""
            if not text.strip():
                return []
            self._last_text = text
            return [AgentEvent(EventKind.TEXT, shorten(text), {"text": text[:MAX_DATA_CHARS]})]
        if kind == "tool_call":
            name = as_str(obj.get("toolName")) or as_str(obj.get("toolId")) or "tool"
            call_id = as_str(obj.get("id")) or ""
            self._tools[call_id] = name
            tool_input = as_dict(obj.get("parameters"))
            return [
                AgentEvent(
                    EventKind.TOOL_USE,
                    describe_tool(name, tool_input, self._cwd),
                    {"id": call_id, "name": name, "input": tool_input},
                )
            ]
        if kind == "tool_result":
            return [self._tool_result(obj)]
        if kind == "error":
            message = as_str(obj.get("message")) or "error"
            if obj.get("source") == "cli" and self._errors:
                return [raw_event(line, f"error: {message}")]  # "Exec failed" after the real reason
            self._errors.append(api_error(message))
            return [error_event(api_error(message))]
        if kind in ("completion", "result"):
            self._final = obj
            self._usage = anthropic_usage(obj.get("usage"))
            final_text = as_str(obj.get("finalText")) if kind == "completion" else as_str(obj.get("result"))
            if final_text and not obj.get("is_error"):
                self._last_text = final_text
            return [usage_event(self._usage, model_for_pricing(self._model), final=True)]
        return [raw_event(line)]

    def _tool_result(self, obj: dict[str, Any]) -> AgentEvent:
        call_id = as_str(obj.get("id")) or ""
        name = self._tools.get(call_id, as_str(obj.get("toolId")) or "tool")
        failed = obj.get("isError") is True
        detail = as_str(as_dict(obj.get("error")).get("message")) if failed else None
        value = obj.get("value")
        detail = detail or (value if isinstance(value, str) else "") or ("failed" if failed else "done")
        if failed and any(word in detail.lower() for word in ("permission", "not allowed", "autonomy", "denied")):
            self._denials.append(f"{name}: {shorten(detail, 120)}")
        first = detail.strip().splitlines()[0] if detail.strip() else detail
        text = f"{name} error: {first}" if failed else f"{name}: {first}"
        data = {"tool_use_id": call_id, "name": name, "is_error": failed, "content": detail[:MAX_DATA_CHARS]}
        return AgentEvent(EventKind.TOOL_RESULT, shorten(text), data)

    def live_usage(self) -> tuple[Usage, str | None]:
        return Usage(**self._usage.to_dict()), model_for_pricing(self._model)

    def live_cost_usd(self) -> float | None:
        return None

    def finish(self, exit_code: int, stderr_tail: str) -> AgentResult:
        final = self._final
        errors: list[str] = []
        if final is None:
            errors += self._errors[-1:] or [no_result_reason(exit_code, "a completion")]
        elif final.get("is_error") is True or final.get("subtype") == "failure":
            errors += self._errors[-1:] or [shorten(as_str(final.get("result")) or "the agent reported a failure", 300)]
        elif exit_code != 0:
            errors.append(f"agent exited with code {exit_code}")
        if errors and exit_code != 0 and not self._errors:
            summary = stderr_summary(stderr_tail)
            if summary:
                errors.append(f"stderr: {summary}")
        return AgentResult(
            status="failed" if errors else "succeeded",
            final_text=self._last_text,
            usage=Usage(**self._usage.to_dict()),
            cost_usd=None,
            cost_source="unknown",
            session_id=self._session_id,
            model=model_for_pricing(self._model),
            errors=errors,
            permission_denials=list(self._denials),
            exit_code=exit_code,
        )
