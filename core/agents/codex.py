"""OpenAI Codex CLI (``codex exec --json -s workspace-write ...``), measured on 0.169.0.

Adapter: Codex keeps its config, logins and session transcripts in ``CODEX_HOME``; Orchestra
points it at the agent's own config dir and writes ``config.toml`` there (updates off, analytics
off, and a model provider ``orchestra`` at ``OPENAI_BASE_URL`` or the OpenAI API that sends
``$OPENAI_API_KEY``: the key's *name*, never its value). An ``env`` entry ``CODEX_HOME`` in
bots.yaml uses that home instead (e.g. ``~/.codex`` for a ChatGPT login) and nothing is written.
``--full-auto`` was removed in 0.147: ``-s workspace-write`` works on every version, and a
``--full-auto`` in ``args`` is translated to it. With Orchestra's permission hook on, every tool call
waits for it instead and runs unsandboxed when allowed (``core.agents.codex_hooks``).

Parser (``reference/agent-clis.md`` section 2): JSONL events ``thread.started`` (session id),
``item.*`` (``command_execution``, ``file_change``, ``agent_message``, ...), ``turn.completed``
(usage) and ``turn.failed``/``error``. Codex exits 0 even when sandboxed commands failed; the
status comes from ``turn.failed`` and the exit code together. Usage follows OpenAI semantics
(input includes cached, output includes reasoning), which is already ``Usage``'s. Codex never
names its model in the stream, so the parser takes it from the command line or, failing that,
from the session transcript in ``CODEX_HOME``. No USD: tokens are priced with genai-prices.
The ``exec_command`` tool (0.169) appears in no ``--json`` event, so commands the sandbox refused
are read from the transcript too, at the end of the run (``core.agents.codex_transcript``).

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from core.agents.base import AgentEvent, AgentResult, AgentSettings, Invocation, PromptMode, Usage, parser_ref
from core.agents.codex_hooks import hook_call, hook_overrides, hook_reply
from core.agents.codex_transcript import (
    SANDBOX_HINTS,
    find_transcript,
    first_model,
    hook_denials,
    last_token_usage,
    line_count,
    sandbox_denials,
    unwrap_shell,
)
from core.agents.common import (
    MAX_DATA_CHARS,
    api_error,
    argv_safe,
    as_dict,
    as_int,
    as_list,
    as_str,
    config_dir,
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
from core.permissions.hook import TASK_DIR_ENV
from core.protocol import EventKind

# ``hook_call`` and ``hook_reply`` are what ``core.permissions.hook`` looks up in ``core.agents.codex``.
__all__ = ["CodexAdapter", "CodexParser", "codex_config", "codex_usage", "hook_call", "hook_reply"]
PROVIDER = "orchestra"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
_TRUST_WARNING = "`--dangerously-bypass-hook-trust` is enabled"
_SANDBOX_FLAGS = ("-s", "--sandbox", "--dangerously-bypass-approvals-and-sandbox", "--approve-for-me")


class CodexAdapter:
    """Builds ``codex exec`` invocations and the ``config.toml`` of the agent's ``CODEX_HOME``."""

    kind = "codex"

    def build(self, task_text: str, settings: AgentSettings, *, resume: str | None = None) -> Invocation:
        """``codex exec --json ... [resume ID] PROMPT``; the prompt is ``-`` (stdin) when argv can't carry it.

        With ``settings.hook`` every tool call waits for the hook, and what it allows runs as asked:
        ``-s danger-full-access`` (an allowed ``npm install`` or ``curl`` needs the network and the
        home folder, which ``workspace-write`` refuses whatever the hook says), the hook in ``-c``
        flags and its trust bypassed for this run. Without it, ``workspace-write`` as before.
        """
        # ``--full-auto`` (gone since 0.147, exit 2) meant workspace-write, which is the default here.
        args = [arg for arg in settings.args if arg != "--full-auto"]
        argv = [settings.command, "exec", "--json", "--skip-git-repo-check"]
        if not has_flag(args, *_SANDBOX_FLAGS):
            argv += ["-s", "danger-full-access" if settings.hook else "workspace-write"]
        if settings.hook:
            argv += ["--dangerously-bypass-hook-trust", *hook_overrides(settings.hook, settings.hook_timeout_s)]
        if settings.model and not has_flag(args, "-m", "--model"):
            argv += ["-m", settings.model]
        env: dict[str, str] = {}
        files: dict[str, str] = {}
        home = settings.env.get("CODEX_HOME")
        if home is None:
            home = config_dir(settings)
            env["CODEX_HOME"] = home
            files[os.path.join(home, "config.toml")] = codex_config(settings)
        argv += args
        if resume:
            argv += ["resume", resume]
        use_stdin = not argv_safe(task_text)
        argv.append("-" if use_stdin else task_text)
        prompt_mode: PromptMode = "stdin" if use_stdin else "arg"
        return Invocation(
            argv=argv,
            env=merged_env(settings, env),
            prompt_mode=prompt_mode,
            parser=parser_ref("codex", model=settings.model, home=os.path.expanduser(home), resumed=resume),
            files=files,
        )

    def version_argv(self, settings: AgentSettings) -> list[str]:
        return [settings.command, "--version"]


def codex_config(settings: AgentSettings) -> str:
    """``config.toml`` for the agent's own ``CODEX_HOME`` (root keys must precede every table)."""
    base_url = settings.env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    lines = [
        f"# Written by Orchestra for agent {settings.name}: rewritten before each task, edit bots.yaml instead.",
        f"model_provider = {_toml(PROVIDER)}",
        "check_for_update_on_startup = false",
    ]
    if settings.model:
        lines.append(f"model = {_toml(settings.model)}")
    lines += [
        "",
        "[analytics]",
        "enabled = false",
        "",
        f"[model_providers.{PROVIDER}]",
        f"name = {_toml('Orchestra: ' + base_url)}",
        f"base_url = {_toml(base_url)}",
        'env_key = "OPENAI_API_KEY"',
        'wire_api = "responses"',
    ]
    retries = max_retries(settings)
    if retries is not None:
        lines += [f"request_max_retries = {retries}", f"stream_max_retries = {retries}"]
    if settings.hook:  # the agent can ask its owner a question (``core.permissions.ask_owner``), as Claude can
        command, *args = ask_owner_argv("codex")
        lines += [
            "",
            f"[mcp_servers.{ASK_OWNER_SERVER}]",
            f"command = {_toml(command)}",
            f"args = [{', '.join(_toml(arg) for arg in args)}]",
            f"env_vars = [{_toml(TASK_DIR_ENV)}]",  # Codex passes an MCP server only the variables named
            f"tool_timeout_sec = {max(60, int(settings.hook_timeout_s))}",  # a person's answer takes a while
        ]
    return "\n".join(lines) + "\n"


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


_API_401 = re.compile(r"\b401\b")


class CodexParser:
    """Parses ``codex exec --json`` output; one instance per run, fed line by line."""

    def __init__(self, model: str | None = None, home: str | None = None, resumed: str | None = None) -> None:
        self._model = model
        self._home = home
        self._resumed = resumed
        self._baseline = Usage()  # a resumed thread's usage before this run: Codex reports thread totals
        self._session_id: str | None = None
        self._usage = Usage()
        self._turns = 0
        self._failed: list[str] = []
        self._errors: list[str] = []
        self._warnings: list[str] = []
        self._denials: list[str] = []
        self._last_text = ""
        self._started: set[str] = set()
        self._transcript_from = 0  # lines of a resumed thread's transcript written before this run

    def feed(self, line: str) -> list[AgentEvent]:
        return feed_json_line(line, self._dispatch)

    def _dispatch(self, obj: dict[str, Any], line: str) -> list[AgentEvent]:
        kind = obj.get("type")
        if kind == "thread.started":
            self._session_id = as_str(obj.get("thread_id")) or self._session_id
            if self._resumed:
                path = self._transcript()
                self._baseline = codex_usage(last_token_usage(path))
                self._transcript_from = line_count(path)
            data = {"session_id": self._session_id, "model": self._model}
            return [AgentEvent(EventKind.INIT, f"session {self._session_id or '?'} · model {self._model or '?'}", data)]
        if kind in ("item.started", "item.updated", "item.completed"):
            return self._on_item(kind, as_dict(obj.get("item")), line)
        if kind == "turn.completed":
            self._turns += 1
            self._usage = _minus(codex_usage(obj.get("usage")), self._baseline)
            return [usage_event(self._usage, self._model)]
        if kind == "turn.failed":
            message = as_str(as_dict(obj.get("error")).get("message")) or "the turn failed"
            self._failed.append(key_hint(api_error(message), "OPENAI_API_KEY"))
            repeated = bool(self._errors) and self._errors[-1] == message
            return [] if repeated else [error_event(api_error(message))]
        if kind == "error":
            message = as_str(obj.get("message")) or "error"
            self._errors.append(message)
            if message.startswith("Reconnecting") and _API_401.search(message):
                # Codex retries a 401 five times: a bad key will not heal, so the run ends here.
                reason = key_hint(api_error(message[message.find("(") + 1 :].rstrip(")")), "OPENAI_API_KEY")
                return [error_event(reason, stop_run=True)]
            return [error_event(api_error(message))]
        if kind == "turn.started":
            return []
        return [raw_event(line)]

    def _on_item(self, kind: str, item: dict[str, Any], line: str) -> list[AgentEvent]:
        item_type = item.get("type")
        item_id = as_str(item.get("id")) or ""
        if item_type == "agent_message":
            text = as_str(item.get("text")) or ""
            if kind != "item.completed" or not text.strip():
                return []
            self._last_text = text
            return [AgentEvent(EventKind.TEXT, shorten(text), {"text": text[:MAX_DATA_CHARS], "id": item_id})]
        if item_type == "command_execution":
            command = unwrap_shell(as_str(item.get("command")) or "")
            if kind == "item.started" or (kind == "item.completed" and item_id not in self._started):
                self._started.add(item_id)
                events = [
                    AgentEvent(
                        EventKind.TOOL_USE,
                        shorten(f"shell: {command}"),
                        {"id": item_id, "name": "shell", "input": {"command": command}},
                    )
                ]
                if kind == "item.started":
                    return events
            else:
                events = []
            if kind == "item.completed":
                events.append(self._command_done(item, command))
            return events
        if item_type == "file_change" and kind == "item.completed":
            changes = [as_dict(c) for c in as_list(item.get("changes"))]
            paths = ", ".join(f"{as_str(c.get('kind')) or 'edit'} {as_str(c.get('path')) or '?'}" for c in changes)
            return [
                AgentEvent(
                    EventKind.TOOL_USE,
                    shorten(f"patch: {paths}"),
                    {"id": item_id, "name": "patch", "input": {"changes": changes}},
                )
            ]
        if item_type in ("mcp_tool_call", "web_search") and kind == "item.started":
            name = as_str(item.get("tool")) or as_str(item.get("query")) or item_type
            return [
                AgentEvent(
                    EventKind.TOOL_USE,
                    shorten(f"{item_type}: {name}"),
                    {"id": item_id, "name": item_type, "input": item},
                )
            ]
        if item_type == "error":
            message = as_str(item.get("message")) or ""
            if message.startswith(_TRUST_WARNING):  # Orchestra's own choice, made for the permission hook
                return []
            self._warnings.append(message)
            return [raw_event(line, f"warning: {message}")]
        return [raw_event(line)]

    def _command_done(self, item: dict[str, Any], command: str) -> AgentEvent:
        exit_code = item.get("exit_code")
        output = as_str(item.get("aggregated_output")) or ""
        failed = (isinstance(exit_code, int) and exit_code != 0) or item.get("status") == "failed"
        first = output.strip().splitlines()[0] if output.strip() else ("failed" if failed else "done")
        if failed and any(hint in output for hint in SANDBOX_HINTS):
            self._denials.append(f"shell {command} (blocked by the sandbox)")
        text = f"shell error (exit {exit_code}): {first}" if failed else f"shell: {first}"
        data = {"name": "shell", "is_error": failed, "exit_code": exit_code, "content": output[:MAX_DATA_CHARS]}
        return AgentEvent(EventKind.TOOL_RESULT, shorten(text), data)

    def live_usage(self) -> tuple[Usage, str | None]:
        return Usage(**self._usage.to_dict()), self._model

    def live_cost_usd(self) -> float | None:
        return None

    def finish(self, exit_code: int, stderr_tail: str) -> AgentResult:
        model = self._model or self._model_from_transcript()
        transcript, start = self._transcript(), self._transcript_from
        for denial in sandbox_denials(transcript, start) + hook_denials(transcript, start):
            if denial not in self._denials:
                self._denials.append(denial)
        errors = list(self._failed)
        if not errors and exit_code != 0:
            errors.append(
                no_result_reason(exit_code, "a finished turn")
                if not self._turns
                else f"agent exited with code {exit_code}"
            )
            errors += [api_error(e) for e in self._errors[-1:]]
            summary = stderr_summary(stderr_tail)
            if summary:
                errors.append(f"stderr: {summary}")
        if not errors and not self._turns:
            errors.append(no_result_reason(exit_code, "a finished turn"))
        return AgentResult(
            status="failed" if errors else "succeeded",
            final_text=self._last_text,
            usage=Usage(**self._usage.to_dict()),
            cost_usd=None,
            cost_source="unknown",
            session_id=self._session_id,
            model=model,
            errors=errors,
            permission_denials=list(self._denials),
            exit_code=exit_code,
        )

    def _model_from_transcript(self) -> str | None:
        """The model in the session's rollout file: Codex's stream never names it."""
        path = self._transcript()
        return first_model(path) if path else None

    def _transcript(self) -> str | None:
        return find_transcript(self._home, self._session_id)


def codex_usage(raw: Any) -> Usage:
    """``turn.completed.usage`` to ``Usage``: input already includes cached, output reasoning."""
    usage = as_dict(raw)
    return Usage(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cache_read_tokens=as_int(usage.get("cached_input_tokens")),
        cache_write_tokens=as_int(usage.get("cache_write_input_tokens")),
    )


def _minus(total: Usage, before: Usage) -> Usage:
    return Usage(
        input_tokens=max(total.input_tokens - before.input_tokens, 0),
        output_tokens=max(total.output_tokens - before.output_tokens, 0),
        cache_read_tokens=max(total.cache_read_tokens - before.cache_read_tokens, 0),
        cache_write_tokens=max(total.cache_write_tokens - before.cache_write_tokens, 0),
    )
