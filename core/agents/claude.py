"""Claude Code (``claude -p ... --output-format stream-json --verbose``).

The adapter half builds the headless command line (with Orchestra's permission hook on, in
``dontAsk`` mode with the hook in ``--settings``: ``core.agents.claude_hooks``); the parser half reads
the NDJSON stream (schema and gotchas: ``reference/agent-clis.md`` section 1). Facts the parser leans on:

* every content block of one API response comes as its own ``assistant`` line carrying the same
  ``message.id`` and the same usage, so usage is counted once per message id;
* an API error ends with ``subtype: "success"`` and ``is_error: true``: success is decided from
  ``is_error`` and the presence of a result, never from the subtype or the exit code alone;
* several ``result`` lines can appear (background subagents); the last one wins and its
  ``total_cost_usd`` is cumulative;
* ``usage.input_tokens`` excludes cache reads and writes (Anthropic semantics); ``Usage`` here
  counts the total input.

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from core.agents.base import AgentEvent, AgentResult, AgentSettings, Invocation, SessionStart, Usage
from core.agents.claude_hooks import ASKING_MODE, hook_call, hook_reply, hook_settings, split_settings
from core.agents.claude_result import denials, main_model, result_errors
from core.agents.common import (
    MAX_DATA_CHARS,
    as_dict,
    as_float,
    as_int,
    as_str,
    describe_tool,
    feed_json_line,
    k,
    key_hint,
    max_retries,
    merged_env,
    no_result_reason,
    raw_event,
    shorten,
    stderr_summary,
    usage_event,
)
from core.protocol import EventKind

# ``hook_call`` and ``hook_reply`` are what ``core.permissions.hook`` looks up in ``core.agents.claude``.
__all__ = ["ClaudeAdapter", "ClaudeParser", "anthropic_usage", "hook_call", "hook_reply"]
_SYNTHETIC_MODEL = "<synthetic>"
# The task is the first message of a conversation on stdin, which stays open for what people say while
# it runs (``core.runner_input``); only with ``stdio`` does ``-p`` offer AskUserQuestion (measured, 2.1.332).
_CONVERSATION = ("--input-format", "stream-json", "--permission-prompt-tool", "stdio", "--replay-user-messages")


class ClaudeAdapter:
    """Builds ``claude -p`` invocations; the task text is never part of a shell string."""

    kind = "claude"

    def build(self, task_text: str, settings: AgentSettings, *, resume: str | None = None) -> Invocation:
        """The task goes on stdin as the first stream-json message (any text, any size, intact), and
        stdin stays open for what people say while it runs and for ``/stop``.

        With ``settings.hook`` the run asks before each tool call: ``--permission-mode dontAsk``
        and the hook in a last ``--settings`` (a user's own ``--settings`` is merged into it, since
        only the last one counts). Without it, ``acceptEdits`` as before.
        """
        mode = ASKING_MODE if settings.hook else "acceptEdits"
        argv = [settings.command, "-p", *_CONVERSATION]
        argv += ["--output-format", "stream-json", "--verbose", "--permission-mode", mode]
        if settings.model:
            argv += ["--model", settings.model]
        if resume:
            argv += ["--resume", resume]
        if settings.hook:
            args, base = split_settings(settings.args)
            argv += [*args, "--settings", hook_settings(settings.hook, settings.hook_timeout_s, base)]
        else:
            argv += settings.args
        env = {}
        retries = max_retries(settings)
        if retries is not None:
            env["CLAUDE_CODE_MAX_RETRIES"] = str(retries)
        return Invocation(argv=argv, env=merged_env(settings, env), prompt_mode="stream", parser="claude")

    def version_argv(self, settings: AgentSettings) -> list[str]:
        return [settings.command, "--version"]


def anthropic_usage(raw: Any) -> Usage:
    """Convert an Anthropic ``usage`` object (input excludes cache) to ``Usage`` (input total)."""
    if not isinstance(raw, dict):
        return Usage()
    fresh = as_int(raw.get("input_tokens"))
    cache_read = as_int(raw.get("cache_read_input_tokens"))
    cache_write = as_int(raw.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=fresh + cache_read + cache_write,
        output_tokens=as_int(raw.get("output_tokens")),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


class ClaudeParser:
    """Parses Claude Code's stream-json output; one instance per run, fed line by line."""

    def __init__(self) -> None:
        self._session_id: str | None = None
        self._model: str | None = None
        self._message_usage: dict[str, Usage] = {}
        self._counted = Usage()  # the sum of _message_usage, kept as it changes (a run has thousands)
        self._tool_names: dict[str, str] = {}
        self._cwd: str | None = None
        self._result: dict[str, Any] | None = None
        self._last_text = ""
        self._session_start: SessionStart | None = None  # set when this run resumes a session

    def resume_from(self, start: SessionStart) -> None:
        """This run continues a session: its result's ``total_cost_usd`` includes ``start``'s."""
        self._session_start = start

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, line: str) -> list[AgentEvent]:
        return feed_json_line(line, self._dispatch)  # a schema surprise costs one line of display, never the run

    def _dispatch(self, obj: dict[str, Any], line: str) -> list[AgentEvent]:
        kind = obj.get("type")
        if kind == "system":
            if obj.get("subtype") == "init":
                return [self._on_init(obj)]
            if obj.get("subtype") == "api_retry" and obj.get("error_status") == 401:
                # Claude Code retries a 401 about 11 times (~3 minutes): a bad key will not heal.
                what = as_str(obj.get("error")) or "authentication failed"
                reason = key_hint(f"API error 401: {what}", self._key_var())
                return [AgentEvent(EventKind.ERROR, shorten(reason), {"error": reason, "stop_run": True})]
            detail = as_str(obj.get("description")) or as_str(obj.get("summary"))
            label = f"system: {obj.get('subtype')}" + (f" · {detail}" if detail else "")
            return [raw_event(line, label)]
        if kind == "assistant":
            return self._on_assistant(obj, line)
        if kind == "user":
            return self._on_user(obj)
        if kind == "result":
            return self._on_result(obj)
        if kind == "stream_event":  # --include-partial-messages token deltas: too chatty to show
            return []
        return [raw_event(line)]

    def _on_init(self, obj: dict[str, Any]) -> AgentEvent:
        self._session_id = as_str(obj.get("session_id")) or self._session_id
        model = as_str(obj.get("model"))
        if model:
            self._model = model
        self._cwd = as_str(obj.get("cwd"))
        tools = obj.get("tools")
        n_tools = len(tools) if isinstance(tools, list) else 0
        data = {
            "session_id": self._session_id,
            "model": self._model,
            "cwd": self._cwd,
            "tools": n_tools,
            "permission_mode": as_str(obj.get("permissionMode")),
            "version": as_str(obj.get("claude_code_version")),
        }
        text = f"session {self._session_id or '?'} · model {self._model or '?'} · {n_tools} tools"
        return AgentEvent(EventKind.INIT, text, data)

    def _on_assistant(self, obj: dict[str, Any], line: str) -> list[AgentEvent]:
        message = obj.get("message")
        if not isinstance(message, dict):
            return [raw_event(line)]
        model = as_str(message.get("model"))
        synthetic = model == _SYNTHETIC_MODEL
        if model and not synthetic and self._model is None:
            self._model = model
        subagent = as_str(obj.get("parent_tool_use_id"))
        events: list[AgentEvent] = []
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                event = self._text_event(block, message, subagent, synthetic or bool(obj.get("error")))
                if event is not None:
                    events.append(event)
            elif block.get("type") == "tool_use":
                events.append(self._tool_use_event(block, subagent))
        usage_event = None if synthetic else self._count_usage(message)
        if usage_event is not None:
            events.append(usage_event)
        return events

    def _text_event(
        self, block: dict[str, Any], message: dict[str, Any], subagent: str | None, is_error: bool
    ) -> AgentEvent | None:
        text = as_str(block.get("text")) or ""
        if not text.strip():
            return None
        data = {"text": text, "message_id": as_str(message.get("id")), "subagent": subagent}
        if is_error or self._is_error_text(text):  # e.g. the "<synthetic>" message carrying "API Error: 401 ..."
            return AgentEvent(EventKind.ERROR, shorten(text), data)
        if subagent is None:
            self._last_text = text
        return AgentEvent(EventKind.TEXT, shorten(text), data)

    def _tool_use_event(self, block: dict[str, Any], subagent: str | None) -> AgentEvent:
        name = as_str(block.get("name")) or "tool"
        tool_input = as_dict(block.get("input"))
        tool_id = as_str(block.get("id"))
        if tool_id:
            self._tool_names[tool_id] = name
        data = {"id": tool_id, "name": name, "input": tool_input, "subagent": subagent}
        return AgentEvent(EventKind.TOOL_USE, self._describe_tool(name, tool_input), data)

    def _count_usage(self, message: dict[str, Any]) -> AgentEvent | None:
        """Count one API call's usage once, however many content lines repeat it."""
        raw = message.get("usage")
        if not isinstance(raw, dict):
            return None
        message_id = as_str(message.get("id")) or f"_anonymous_{len(self._message_usage)}"
        usage = self._convert_usage(raw)
        known = self._message_usage.get(message_id)
        if known is not None:
            # Repeated lines normally carry identical numbers; keep the largest in case a
            # later block reports the finished count.
            usage = Usage(
                input_tokens=max(known.input_tokens, usage.input_tokens),
                output_tokens=max(known.output_tokens, usage.output_tokens),
                cache_read_tokens=max(known.cache_read_tokens, usage.cache_read_tokens),
                cache_write_tokens=max(known.cache_write_tokens, usage.cache_write_tokens),
            )
            if usage == known:
                return None
        self._message_usage[message_id] = usage
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            change = getattr(usage, name) - (getattr(known, name) if known is not None else 0)
            setattr(self._counted, name, getattr(self._counted, name) + change)
        total = self._counted_usage()
        text = f"tokens: {k(total.input_tokens)} in · {k(total.output_tokens)} out"
        return AgentEvent(EventKind.USAGE, text, {"usage": total.to_dict(), "model": self._model})

    def _on_user(self, obj: dict[str, Any]) -> list[AgentEvent]:
        message = obj.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        events: list[AgentEvent] = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            tool_id = as_str(block.get("tool_use_id"))
            name = self._tool_names.get(tool_id or "", "tool")
            is_error = block.get("is_error") is True
            body = _tool_result_text(block.get("content"))
            first = body.strip().splitlines()[0] if body.strip() else ("failed" if is_error else "done")
            text = f"{name} error: {first}" if is_error else f"{name}: {first}"
            data = {
                "tool_use_id": tool_id,
                "name": name,
                "is_error": is_error,
                "content": body[:MAX_DATA_CHARS],
            }
            events.append(AgentEvent(EventKind.TOOL_RESULT, shorten(text), data))
        return events

    def _on_result(self, obj: dict[str, Any]) -> list[AgentEvent]:
        self._result = obj
        self._session_id = as_str(obj.get("session_id")) or self._session_id
        usage = self._run_usage(obj.get("usage"))
        cost = self.live_cost_usd()
        events = [usage_event(usage, self._model, cost, final=True)]
        if obj.get("is_error") is True:
            reasons = self._result_errors(obj) or ["the agent reported an error"]
            events.append(AgentEvent(EventKind.ERROR, shorten("; ".join(reasons)), {"errors": reasons}))
        return events

    # -- live state ------------------------------------------------------------------------

    def live_usage(self) -> tuple[Usage, str | None]:
        return self._counted_usage(), self._model

    def live_cost_usd(self) -> float | None:
        if self._result is None:
            return None
        return self._run_cost(as_float(self._result.get("total_cost_usd")))

    def _run_cost(self, session_total: float | None) -> float | None:
        """This run's share of ``total_cost_usd``, which covers every run of a resumed session.

        None when the session's earlier total is unknown: the tokens are then priced instead.
        """
        start = self._session_start
        if session_total is None or start is None:
            return session_total
        if start.cost_usd is None:
            return None
        return session_total - start.cost_usd if session_total >= start.cost_usd else session_total

    def _run_usage(self, reported: Any) -> Usage:
        """This run's tokens from the result's ``usage`` (Claude's covers the run alone)."""
        return self._convert_usage(reported) if isinstance(reported, dict) else self._counted_usage()

    def _counted_usage(self) -> Usage:
        return replace(self._counted)

    # -- the end ---------------------------------------------------------------------------

    def finish(self, exit_code: int, stderr_tail: str) -> AgentResult:
        result = self._result
        stderr_line = stderr_summary(stderr_tail)
        if result is None:
            errors = [no_result_reason(exit_code)]
            if stderr_line:
                errors.append(f"stderr: {stderr_line}")
            usage, model = self.live_usage()
            return AgentResult(
                status="failed",
                final_text=self._last_text,
                usage=usage,
                session_id=self._session_id,
                model=model,
                errors=errors,
                exit_code=exit_code,
            )

        is_error = result.get("is_error") is True
        errors = self._result_errors(result) if is_error else []
        if exit_code != 0 and not errors:
            errors.append(f"agent exited with code {exit_code}")
            if stderr_line:
                errors.append(f"stderr: {stderr_line}")
        if is_error and not errors:
            errors.append("the agent reported an error")
        session_cost = as_float(result.get("total_cost_usd"))
        cost = self._run_cost(session_cost)
        final_text = result.get("result")
        if is_error or not isinstance(final_text, str):
            final_text = self._last_text  # an error result's text is the reason, already in ``errors``
        return AgentResult(
            status="failed" if is_error or exit_code != 0 else "succeeded",
            final_text=final_text,
            usage=self._run_usage(result.get("usage")),
            cost_usd=cost,
            cost_source="cli" if cost is not None else "unknown",
            session_id=self._session_id,
            model=self._model or main_model(result.get("modelUsage")),
            errors=errors,
            permission_denials=denials(result.get("permission_denials")),
            exit_code=exit_code,
            session_cost_usd=session_cost,
        )

    # -- what a CLI with the same stream format but other semantics overrides (Qwen Code) ----

    def _convert_usage(self, raw: Any) -> Usage:
        return anthropic_usage(raw)

    def _result_errors(self, result: dict[str, Any]) -> list[str]:
        reasons = result_errors(result)
        return [key_hint(reasons[0], self._key_var()), *reasons[1:]] if reasons else reasons

    def _key_var(self) -> str:
        return "ANTHROPIC_API_KEY"

    def _is_error_text(self, text: str) -> bool:
        return False

    def _describe_tool(self, name: str, tool_input: dict[str, Any]) -> str:
        """``Write hello.txt``, ``Bash: npm test``: what a person watching wants to read."""
        return describe_tool(name, tool_input, self._cwd)


# -- helpers -------------------------------------------------------------------------------


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [as_str(part.get("text")) or "" for part in content if isinstance(part, dict)]
        return "\n".join(part for part in parts if part)
    return ""
