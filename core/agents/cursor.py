"""Cursor Agent (``cursor-agent -p --output-format stream-json --trust TASK``): NOT run here.

The CLI is on no registry reachable from this machine, so this adapter is built from Cursor's
documentation (cursor.com/docs/cli/reference: output-format, configuration, permissions,
parameters) and from streams other projects recorded from the real CLI, replayed in
``tests/test_agents_cursor.py`` (``tests/data/cursor/SOURCES.md`` says where each came from).
``orchestra doctor`` and the README say so.

Adapter: ``CURSOR_CONFIG_DIR`` (documented) points the CLI at the agent's own config dir, where
Orchestra writes ``cli-config.json``; an ``env`` entry ``CURSOR_CONFIG_DIR`` uses yours instead
and nothing is written (then the policy is not carried over: your file's permissions apply).
Headless runs authenticate with ``CURSOR_API_KEY`` (``env_from``): ``-p`` does not use a browser
login (reported for 2026.08.11). ``--trust`` accepts the workspace (the task's folder, its cwd)
without a prompt no one would answer. The task is the last argument, or stdin when it is long,
holds a NUL or starts with ``-``.

Permissions: Cursor has no pre-tool hook Orchestra could answer and ``-p`` has no one to ask, so
nothing is asked on the phone. What the policy says is carried into ``cli-config.json``'s
``permissions`` as far as Cursor's tokens can say it (``cursor_permissions``): ``Bash(cmd *)``
becomes ``Shell(cmd)``, ``Bash(cmd args)`` ``Shell(cmd:args)``, ``Edit``/``Read`` paths become
``Write``/``Read`` (``./`` dropped: Cursor's relative paths are the workspace's), a bare
``WebFetch`` ``WebFetch(*)``. An ``ask`` rule becomes a deny (unanswered means refused, as on the
phone) unless a more specific layer allows the same rule; deny beats allow in Cursor too. Rules it
cannot express are left out: for ``allow`` an exact command (``Shell(make)`` would allow any
arguments), a command that starts with a wildcard, tools it has no token for; a left-out allow
only makes Cursor refuse more. In ``-p`` mode a shell command no rule allows is refused
(``rejected``); file reads and edits in the workspace run. ``--force`` (run every command) only
when the policy allows every command (a bare ``Bash`` or ``*`` allow); the denies still apply.

Parser: ``system``/``init`` (session id, model display name), ``user`` (the prompt echoed),
``thinking`` deltas (dropped), ``assistant`` (one message per segment between tool calls),
``tool_call`` ``started``/``completed`` keyed by the tool (``writeToolCall``, ``readToolCall``,
``editToolCall``, ``shellToolCall``, ...; ``function`` for others) whose ``result`` holds one
outcome (``success``, ``rejected``, ``failure``, ``error``, ...), and a last ``result`` with
``is_error``, ``result`` (every segment's text run together: the final text is the last
segment) and, in newer versions, ``usage`` (``inputTokens``, ``outputTokens``,
``cacheReadTokens``, ``cacheWriteTokens``). A stream without ``usage`` has unknown tokens and
cost (``tokens_reported``), never $0. On failure the CLI writes its reason to stderr and no result.

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from core.agents.base import AgentEvent, AgentResult, AgentSettings, Invocation, PromptMode, Usage
from core.agents.common import (
    MAX_DATA_CHARS,
    argv_safe,
    as_dict,
    as_int,
    as_list,
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
from core.protocol import EventKind

KEY_VAR = "CURSOR_API_KEY"
HOME_VAR = "CURSOR_CONFIG_DIR"
_SUCCESS = frozenset({"success", "complete", "registered", "startSuccess", "saveSuccess", "discardSuccess"})
_PENDING = frozenset({"approved", "async", "stillRunning"})  # not an end: neither done nor failed
_REFUSED = frozenset({"rejected", "permissionDenied", "readPermissionDenied", "writePermissionDenied"})
_QUIET = frozenset({"user", "thinking", "retry", "connection"})
_WORD = re.compile(r"^[A-Za-z0-9_./+@%=-]+$")  # a command base Cursor's Shell(...) can name
_HOST = re.compile(r"^(?:https?://)?([A-Za-z0-9.*-]+)([/:].*)?$")


class CursorAdapter:
    """Builds ``cursor-agent -p`` invocations and the ``cli-config.json`` of its own config dir."""

    kind = "cursor"

    def build(self, task_text: str, settings: AgentSettings, *, resume: str | None = None) -> Invocation:
        argv = [settings.command, "-p", "--output-format", "stream-json"]
        if not has_flag(settings.args, "--trust"):
            argv.append("--trust")
        allow, deny, force = cursor_permissions(settings.policy)
        if force and not has_flag(settings.args, "--force", "-f", "--yolo"):
            argv.append("--force")
        if settings.model and not has_flag(settings.args, "--model", "-m"):
            argv += ["--model", settings.model]
        if resume:
            argv += ["--resume", resume]
        argv += settings.args
        use_stdin = not argv_safe(task_text)
        if not use_stdin:
            argv.append(task_text)
        env: dict[str, str] = {"NO_OPEN_BROWSER": "1"}  # a login URL is printed, never a browser opened
        files: dict[str, str] = {}
        if HOME_VAR not in settings.env:
            home = config_dir(settings)
            env[HOME_VAR] = home
            files[os.path.join(home, "cli-config.json")] = cli_config(allow, deny)
        prompt_mode: PromptMode = "stdin" if use_stdin else "arg"
        return Invocation(
            argv=argv, env=merged_env(settings, env), prompt_mode=prompt_mode, parser="cursor", files=files
        )

    def version_argv(self, settings: AgentSettings) -> list[str]:
        return [settings.command, "--version"]


def cli_config(allow: list[str], deny: list[str]) -> str:
    """``cli-config.json`` with the required fields (version, editor, permissions)."""
    data = {"version": 1, "editor": {"vimMode": False}, "permissions": {"allow": allow, "deny": deny}}
    return json.dumps(data, indent=2) + "\n"


def cursor_permissions(policy: dict[str, Any] | None, home: str | None = None) -> tuple[list[str], list[str], bool]:
    """Cursor's ``permissions.allow``, ``permissions.deny`` and whether to pass ``--force``.

    ``policy`` is ``Policy.to_dict()`` (layers most specific first); see the module docstring for
    what is carried over and what cannot be.
    """
    layers = [as_dict(layer) for layer in as_list(as_dict(policy).get("layers"))]
    allow: list[str] = []
    deny: list[str] = []
    force = False
    allowed_above: set[str] = set()
    for layer in layers:
        rules = {kind: [r.strip() for r in as_list(layer.get(kind)) if isinstance(r, str)] for kind in VERDICTS}
        for text in rules["allow"]:
            tool, pattern = _split(text)
            if pattern is None and tool in ("Bash", "*"):
                force = True
            _add(allow, cursor_token(tool, pattern, home, broaden=False))
        for text in rules["deny"]:
            _add(deny, cursor_token(*_split(text), home, broaden=True))
        for text in rules["ask"]:
            if text not in allowed_above:  # a more specific layer's allow of the same rule wins
                _add(deny, cursor_token(*_split(text), home, broaden=True))
        allowed_above.update(rules["allow"])
    return allow, deny, force


VERDICTS = ("allow", "deny", "ask")


def _split(rule: str) -> tuple[str, str | None]:
    tool, paren, rest = rule.partition("(")
    if not paren or not rest.endswith(")"):
        return rule.strip(), None
    return tool.strip(), rest[:-1].strip() or None


def _add(tokens: list[str], token: str | None) -> None:
    if token and token not in tokens:
        tokens.append(token)


def cursor_token(tool: str, pattern: str | None, home: str | None = None, *, broaden: bool) -> str | None:
    """One Orchestra rule as a Cursor permission token, or None when Cursor cannot say it.

    ``broaden`` (for deny) lets a token match more than the rule did (``Shell(make)`` for
    ``Bash(make)``); an allow is never widened.
    """
    if tool == "Bash":
        return _shell_token(pattern, broaden=broaden)
    if tool in ("Edit", "Read"):
        name = "Write" if tool == "Edit" else "Read"
        return f"{name}({_path(pattern, home)})"
    if tool == "WebFetch":
        if pattern is None:
            return "WebFetch(*)"
        match = _HOST.match(pattern)
        if match is None:
            return None
        rest = match.group(2) or ""
        return f"WebFetch({match.group(1)})" if broaden or rest in ("", "/", "/*", "/**") else None  # a domain only
    return None


def _shell_token(pattern: str | None, *, broaden: bool) -> str | None:
    if pattern is None:
        return "Shell(*)" if broaden else None  # an allow of every command is --force instead
    base, _, args = pattern.partition(" ")
    args = args.strip()
    if not _WORD.match(base):
        return None  # a wildcard (or a shell character) in the command itself: Cursor matches its first word
    if not args or args == "*":
        return f"Shell({base})" if args or broaden else None
    return f"Shell({base}:{args})"


def _path(pattern: str | None, home: str | None) -> str:
    if pattern is None:
        return "/**"
    if pattern == "~" or pattern.startswith("~/"):
        return (home if home is not None else os.path.expanduser("~")) + pattern[1:]
    return pattern.removeprefix("./")


# -- parser (runner side) ---------------------------------------------------------------------


def cursor_usage(raw: Any) -> Usage:
    """The ``result``'s ``usage`` as ``Usage``.

    ``inputTokens`` is taken to include the cache reads and writes (Cursor's ``stop`` hook reports
    an input just above its cache counts); when the cache counts exceed it, it cannot, so they
    are added to it.
    """
    usage = as_dict(raw)
    read, write = as_int(usage.get("cacheReadTokens")), as_int(usage.get("cacheWriteTokens"))
    given = as_int(usage.get("inputTokens"))
    return Usage(
        input_tokens=given if given >= read + write else given + read + write,
        output_tokens=as_int(usage.get("outputTokens")),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def tool_of(call: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(name, args, result)`` of a ``tool_call``: ``write`` for ``writeToolCall``, a function's name."""
    function = as_dict(call.get("function"))
    if function:
        raw = function.get("arguments")
        try:
            args = as_dict(json.loads(raw)) if isinstance(raw, str) else as_dict(raw)
        except ValueError:
            args = {}
        return as_str(function.get("name")) or "tool", args, as_dict(function.get("result"))
    for key, value in call.items():
        if isinstance(value, dict):
            return key.removesuffix("ToolCall") or key, as_dict(value.get("args")), as_dict(value.get("result"))
    return "tool", {}, {}


def _shown(name: str, args: dict[str, Any], cwd: str) -> str:
    target = {"command": args.get("command")} if as_str(args.get("command")) else {}
    if not target:
        path = as_str(args.get("path")) or as_str(args.get("globPattern")) or as_str(args.get("pattern"))
        target = {"path": path} if path else {}
    return describe_tool(name, target, cwd)


class CursorParser:
    """Parses ``cursor-agent --output-format stream-json`` line by line."""

    def __init__(self) -> None:
        self._cwd = os.getcwd()
        self._session_id: str | None = None
        self._model: str | None = None
        self._result: dict[str, Any] | None = None
        self._usage = Usage()
        self._usage_seen = False
        self._last_reply = ""
        self._tools: dict[str, str] = {}
        self._errors: list[str] = []
        self._denials: list[str] = []
        self._tool_errors: list[str] = []

    def feed(self, line: str) -> list[AgentEvent]:
        return feed_json_line(line, self._dispatch)

    def _dispatch(self, obj: dict[str, Any], line: str) -> list[AgentEvent]:
        kind = as_str(obj.get("type")) or ""
        self._session_id = as_str(obj.get("session_id")) or self._session_id
        if kind == "system" and obj.get("subtype") == "init":
            self._model = as_str(obj.get("model")) or self._model
            data = {"session_id": self._session_id, "model": self._model}
            return [AgentEvent(EventKind.INIT, f"session {self._session_id or '?'} · model {self._model or '?'}", data)]
        if kind == "assistant":
            parts = as_list(as_dict(obj.get("message")).get("content"))
            text = "".join(as_str(as_dict(p).get("text")) or "" for p in parts)
            if not text.strip():
                return []
            self._last_reply = text
            return [AgentEvent(EventKind.TEXT, shorten(text), {"text": text[:MAX_DATA_CHARS]})]
        if kind == "tool_call":
            return self._tool_call(obj)
        if kind == "result":
            return self._on_result(obj)
        if kind == "error":
            reason = _reason(as_str(obj.get("message")) or as_str(as_dict(obj.get("error")).get("message")) or "error")
            self._errors.append(reason)
            return [error_event(reason)]
        if kind in _QUIET or (kind == "system" and obj.get("subtype") != "init"):
            return []
        return [raw_event(line)]

    def _tool_call(self, obj: dict[str, Any]) -> list[AgentEvent]:
        name, args, result = tool_of(as_dict(obj.get("tool_call")))
        call_id = as_str(obj.get("call_id")) or as_str(args.get("toolCallId")) or ""
        outcome = next((key for key in result if key in _SUCCESS | _PENDING | _REFUSED or key not in _META), "")
        detail = as_dict(result.get(outcome))
        shown = self._tools.get(call_id) or _shown(name, args or detail, self._cwd)  # a refusal may carry no args
        if obj.get("subtype") == "started":
            self._tools[call_id] = shown
            data = {"id": call_id, "name": name, "input": {k: args[k] for k in ("path", "command") if k in args}}
            return [AgentEvent(EventKind.TOOL_USE, shown, data)]
        if obj.get("subtype") != "completed":
            return []
        code = detail.get("exitCode")
        nonzero = isinstance(code, int) and not isinstance(code, bool) and code != 0
        failed = outcome not in _SUCCESS | _PENDING or nonzero
        if outcome in _REFUSED:
            why = as_str(detail.get("reason")) or as_str(detail.get("error")) or outcome
            self._denials.append(f"{shown} ({outcome}: {shorten(why, 120)})")
            text = f"{shown} refused ({outcome})"
        elif failed:
            message = as_str(detail.get("error")) or as_str(detail.get("stderr")) or as_str(detail.get("message"))
            message = message or (f"exit code {code}" if isinstance(code, int) else outcome or "failed")
            first = next((part for part in message.strip().splitlines() if part.strip()), message)
            self._tool_errors.append(f"{shown} error: {shorten(first, 120)}")
            text = f"{shown} error: {first}"
        else:
            text = f"{shown}: {outcome or 'done'}"
        return [AgentEvent(EventKind.TOOL_RESULT, shorten(text), {"tool_use_id": call_id, "is_error": failed})]

    def _on_result(self, obj: dict[str, Any]) -> list[AgentEvent]:
        self._result = obj
        events: list[AgentEvent] = []
        if isinstance(obj.get("usage"), dict):
            self._usage_seen = True
            self._usage = cursor_usage(obj["usage"])
            events.append(usage_event(self._usage, self._model, final=True))
        if obj.get("is_error") is True or obj.get("subtype") not in (None, "success"):
            reason = _reason(as_str(obj.get("result")) or as_str(obj.get("subtype")) or "the agent reported an error")
            events.append(error_event(reason))
        return events

    def tokens_reported(self) -> bool:
        """Whether the stream counted tokens (a ``result`` with ``usage``): without, cost is unknown."""
        return self._usage_seen

    def live_usage(self) -> tuple[Usage, str | None]:
        return Usage(**self._usage.to_dict()), self._model

    def live_cost_usd(self) -> float | None:
        return None

    def finish(self, exit_code: int, stderr_tail: str) -> AgentResult:
        result = self._result
        errors: list[str] = []
        summary = stderr_summary(stderr_tail)
        if result is None:
            if summary:
                errors.append(_reason(summary))
            errors.append(no_result_reason(exit_code))
            errors += self._errors[-1:]
        elif result.get("is_error") is True or result.get("subtype") not in (None, "success"):
            errors.append(_reason(as_str(result.get("result")) or "the agent reported an error"))
        elif self._errors:
            errors.append(self._errors[-1])
        elif exit_code != 0:
            errors.append(f"agent exited with code {exit_code}" + (f" · stderr: {summary}" if summary else ""))
        final = self._last_reply or (as_str(result.get("result")) if result else None) or ""
        return AgentResult(
            status="failed" if errors else "succeeded",
            final_text=final,
            usage=Usage(**self._usage.to_dict()),
            cost_usd=None,
            cost_source="unknown",
            session_id=(as_str(result.get("session_id")) if result else None) or self._session_id,
            model=self._model,
            errors=errors,
            permission_denials=list(self._denials),
            tool_errors=list(self._tool_errors),
            exit_code=exit_code,
        )


_META = frozenset({"isBackground", "pid", "sandboxPolicy"})  # fields beside a result's one outcome


def _reason(message: str) -> str:
    """One line, with a hint at the key when it is the API key that failed."""
    text = shorten(" ".join(message.replace("⚠", "").split()), 300)
    if "api key" in text.lower() and KEY_VAR not in text:
        text += f" · check {KEY_VAR}"
    return text
