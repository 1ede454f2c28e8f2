"""opencode (``opencode run --format json --auto -- TASK``), measured on 1.18.34.

Adapter: ``OPENCODE_CONFIG`` points at a config file in the agent's own config dir (opencode
merges it over the user's global config, so their logins still work): auto-update and sharing
off and, when ``OPENAI_BASE_URL`` is set, a provider ``orchestra`` for that OpenAI-compatible
endpoint whose key is ``{env:OPENAI_API_KEY}`` (the name, never the value); ``model`` is then
``orchestra/<model>``. An ``env`` entry ``OPENCODE_CONFIG`` in bots.yaml uses that file instead.

Permission hook (``settings.hook``): opencode has no shell hooks; the config lists a plugin
Orchestra writes beside it (``core.agents.opencode_plugin``) that puts every tool call to the
guarded hook first, and denies every tool by itself (``permission: {"*": "deny"}``) so that only
the loaded plugin opens them. It stays ``--auto``: ``run`` auto-rejects anything opencode would
ask, after the plugin, and the plugin runs before opencode's own permission check either way.

Parser (``reference/agent-clis.md`` section 5): JSONL ``step_start``, ``tool_use`` (with the
finished tool state), ``text``, ``step_finish`` (tokens and ``cost`` in USD per step) and
``error``. There is no final record: the run ends at process exit. Cost is the sum of the step
costs; a sum of 0 for a run that used tokens means opencode had no price for the model (a custom
provider without ``cost``), so the cost is left to genai-prices rather than reported as free.
``input`` excludes cache reads and writes, ``output`` excludes reasoning. opencode exits 0 when
it auto-rejected a permission: such tool errors are reported as permission denials.

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any

from core.agents import hooks
from core.agents.base import AgentEvent, AgentResult, AgentSettings, Invocation, PromptMode, Usage, parser_ref
from core.agents.common import (
    MAX_ARG_BYTES,
    MAX_DATA_CHARS,
    add_usage,
    api_error,
    as_dict,
    as_float,
    as_int,
    as_str,
    config_dir,
    describe_tool,
    error_event,
    feed_json_line,
    has_flag,
    merged_env,
    no_result_reason,
    raw_event,
    shorten,
    stderr_summary,
    usage_event,
)
from core.agents.opencode_plugin import plugin_source
from core.permissions.ask_owner import SERVER as ASK_OWNER_SERVER
from core.permissions.ask_owner import server_argv as ask_owner_argv
from core.permissions.call import Decision, HookReply, ToolCall
from core.protocol import EventKind

PROVIDER = "orchestra"
PLUGIN = "orchestra-permissions.js"
_REJECTED = "rejected permission"
_STDERR_DENIAL = re.compile(r"permission requested: (?P<what>.*?); auto-rejecting")


class OpencodeAdapter:
    """Builds ``opencode run`` invocations and the config file of the agent."""

    kind = "opencode"

    def build(self, task_text: str, settings: AgentSettings, *, resume: str | None = None) -> Invocation:
        """The task follows ``--`` as one element (so a leading ``-`` is text), or goes on stdin."""
        argv = [settings.command, "run", "--format", "json"]
        if not has_flag(settings.args, "--auto"):
            argv.append("--auto")
        base_url = settings.env.get("OPENAI_BASE_URL")
        model = settings.model
        if model and base_url and "/" not in model:
            model = f"{PROVIDER}/{model}"
        if model and not has_flag(settings.args, "-m", "--model"):
            argv += ["-m", model]
        if resume:
            argv += ["--session", resume]
        argv += settings.args
        use_stdin = len(task_text.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES or "\0" in task_text
        if not use_stdin:
            argv += ["--", task_text]
        env: dict[str, str] = {}
        files: dict[str, str] = {}
        if settings.hook and "OPENCODE_CONFIG" in settings.env:
            raise ValueError(
                f"agent {settings.name}: the permission hook goes into Orchestra's own opencode config,"
                " so env OPENCODE_CONFIG cannot be used with it"
            )
        if "OPENCODE_CONFIG" not in settings.env:
            path = config_dir(settings, "opencode.json")
            env["OPENCODE_CONFIG"] = path
            files[path] = opencode_config(settings)
            if settings.hook:
                timeout_ms = hooks.cli_timeout_s(settings.hook_timeout_s) * 1000
                command = hooks.guarded_command(settings.hook, settings.hook_timeout_s)
                files[config_dir(settings, PLUGIN)] = plugin_source(command, timeout_ms, hooks.FAILED)
        prompt_mode: PromptMode = "stdin" if use_stdin else "arg"
        return Invocation(
            argv=argv,
            env=merged_env(settings, env),
            prompt_mode=prompt_mode,
            parser=parser_ref("opencode", model=model),
            files=files,
        )

    def version_argv(self, settings: AgentSettings) -> list[str]:
        return [settings.command, "--version"]


def opencode_config(settings: AgentSettings) -> str:
    config: dict[str, Any] = {"$schema": "https://opencode.ai/config.json", "autoupdate": False, "share": "disabled"}
    base_url = settings.env.get("OPENAI_BASE_URL")
    if base_url:
        models = {settings.model: {"name": settings.model}} if settings.model and "/" not in settings.model else {}
        config["provider"] = {
            PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": f"Orchestra: {base_url}",
                "options": {"baseURL": base_url, "apiKey": "{env:OPENAI_API_KEY}"},
                "models": models,
            }
        }
    if settings.hook:
        config["plugin"] = [pathlib.PurePosixPath(os.path.abspath(config_dir(settings, PLUGIN))).as_uri()]
        config["permission"] = {"*": "deny"}  # the plugin opens them once it is loaded
        command, *args = ask_owner_argv("opencode")  # the model can ask its owner, as Claude can
        config["mcp"] = {ASK_OWNER_SERVER: {"type": "local", "command": [command, *args], "enabled": True}}
    return json.dumps(config, indent=2) + "\n"


def hook_call(payload: dict[str, Any]) -> ToolCall | None:
    """The plugin's payload (``tool_name``, ``tool_input`` as opencode's ``args``, ``cwd``) as a neutral call."""
    return hooks.generic_call("opencode", payload)


def hook_reply(decision: Decision) -> HookReply:
    return hooks.generic_reply("opencode", decision)


class OpencodeParser:
    """Parses ``opencode run --format json``; one instance per run, fed line by line."""

    def __init__(self, model: str | None = None) -> None:
        self._model = model
        self._cwd = os.getcwd()
        self._session_id: str | None = None
        self._usage = Usage()
        self._cost = 0.0
        self._steps = 0
        self._step_text: list[str] = []
        self._last_text = ""
        self._errors: list[str] = []
        self._denials: list[str] = []

    def feed(self, line: str) -> list[AgentEvent]:
        return feed_json_line(line, self._dispatch)

    def _dispatch(self, obj: dict[str, Any], line: str) -> list[AgentEvent]:
        kind = obj.get("type")
        events: list[AgentEvent] = []
        session = as_str(obj.get("sessionID"))
        if session and self._session_id is None:
            self._session_id = session
            data = {"session_id": session, "model": self._model}
            events.append(AgentEvent(EventKind.INIT, f"session {session} · model {self._model or '?'}", data))
        part = as_dict(obj.get("part"))
        if kind == "step_start":
            self._step_text = []
        elif kind == "text":
            text = as_str(part.get("text")) or ""
            if text.strip():
                self._step_text.append(text)
                self._last_text = "\n".join(self._step_text)
                events.append(AgentEvent(EventKind.TEXT, shorten(text), {"text": text[:MAX_DATA_CHARS]}))
        elif kind == "tool_use":
            events += self._on_tool(part)
        elif kind == "step_finish":
            events.append(self._on_step_finish(part))
        elif kind == "error":
            error = as_dict(obj.get("error"))
            data = as_dict(error.get("data"))
            message = as_str(data.get("message")) or as_str(error.get("name")) or "error"
            status = data.get("statusCode")
            reason = api_error(f"{status} {message}") if isinstance(status, int) else shorten(message, 300)
            self._errors.append(reason)
            events.append(error_event(reason))
        else:
            events.append(raw_event(line))
        return events

    def _on_tool(self, part: dict[str, Any]) -> list[AgentEvent]:
        name = as_str(part.get("tool")) or "tool"
        state = as_dict(part.get("state"))
        tool_input = as_dict(state.get("input"))
        call_id = as_str(part.get("callID"))
        events = [
            AgentEvent(
                EventKind.TOOL_USE,
                describe_tool(name, tool_input, self._cwd),
                {"id": call_id, "name": name, "input": tool_input},
            )
        ]
        status = state.get("status")
        if status in ("completed", "error"):
            failed = status == "error"
            detail = as_str(state.get("error")) if failed else as_str(state.get("output"))
            detail = detail or ("failed" if failed else "done")
            if failed and _REJECTED in detail:
                self._denials.append(describe_tool(name, tool_input, self._cwd))
            first = detail.strip().splitlines()[0] if detail.strip() else detail
            text = f"{name} error: {first}" if failed else f"{name}: {first}"
            data = {"tool_use_id": call_id, "name": name, "is_error": failed, "content": detail[:MAX_DATA_CHARS]}
            events.append(AgentEvent(EventKind.TOOL_RESULT, shorten(text), data))
        return events

    def _on_step_finish(self, part: dict[str, Any]) -> AgentEvent:
        self._steps += 1
        self._usage = add_usage(self._usage, opencode_usage(part.get("tokens")))
        self._cost += as_float(part.get("cost")) or 0.0
        return usage_event(self._usage, self._model, self.live_cost_usd())

    def live_usage(self) -> tuple[Usage, str | None]:
        return Usage(**self._usage.to_dict()), _price_key(self._model)

    def live_cost_usd(self) -> float | None:
        # 0 with tokens used: opencode had no price for the model, which is not the same as free.
        return self._cost if self._cost > 0 else None

    def finish(self, exit_code: int, stderr_tail: str) -> AgentResult:
        errors = list(self._errors[-1:])
        if not errors and exit_code != 0:
            errors.append(
                f"agent exited with code {exit_code}" if self._steps else no_result_reason(exit_code, "a step")
            )
            summary = stderr_summary(stderr_tail)
            if summary:
                errors.append(f"stderr: {summary}")
        if not errors and not self._steps:
            errors.append(no_result_reason(exit_code, "a step"))
        denials = list(self._denials)
        for match in _STDERR_DENIAL.finditer(stderr_tail):
            what = f"{match.group('what')} (auto-rejected)"
            if what not in denials:
                denials.append(what)
        cost = self.live_cost_usd()
        return AgentResult(
            status="failed" if errors else "succeeded",
            final_text=self._last_text,
            usage=Usage(**self._usage.to_dict()),
            cost_usd=cost,
            cost_source="cli" if cost is not None else "unknown",
            session_id=self._session_id,
            model=_price_key(self._model),
            errors=errors,
            permission_denials=denials,
            exit_code=exit_code,
        )


def opencode_usage(raw: Any) -> Usage:
    """A ``step_finish``'s tokens to ``Usage``: add the cache to input and reasoning to output."""
    tokens = as_dict(raw)
    cache = as_dict(tokens.get("cache"))
    read, write = as_int(cache.get("read")), as_int(cache.get("write"))
    return Usage(
        input_tokens=as_int(tokens.get("input")) + read + write,
        output_tokens=as_int(tokens.get("output")) + as_int(tokens.get("reasoning")),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def _price_key(model: str | None) -> str | None:
    """``gpt-4.1-mini`` from ``orchestra/gpt-4.1-mini``: genai-prices knows models, not providers."""
    return model.split("/", 1)[-1] if model else None
