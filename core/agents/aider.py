"""Aider (``aider --message-file TASK --yes-always --no-pretty --no-stream ...``), measured on 0.86.2.

Adapter: the task always travels in ``task.md`` (``--message-file``). ``--no-stream`` makes aider
report the provider's token counts instead of its own estimate; ``--no-auto-commits`` leaves
committing to you; ``--no-gitignore`` keeps it from editing your ``.gitignore``. Its chat and
input history and a local analytics log (``--analytics-log``; nothing is sent anywhere with
``--no-analytics``) go to a fresh folder under the agent's config dir for every task, never into
your repository. ``OPENAI_BASE_URL`` in ``env`` is passed on as aider's ``OPENAI_API_BASE``.

Permissions: aider has no tool calls, so no hook; it edits the files of the repository it is
given, and its containment is the sandbox (``sandbox: bwrap``). Two ways it could run a shell
command are closed, measured on 0.86.2: a command the model suggests in a reply is declined by
``--yes-always`` (those prompts need an explicit yes) and not even suggested with
``--no-suggest-shell-commands``; and a task whose text starts with ``/`` or ``!`` would be run as
aider's own command (``/run ...`` ran a shell command without a model call), so such a task
travels as ``--message`` with a leading space, which aider reads as plain text.

Parser (``reference/agent-clis.md`` section 7): aider prints plain text and **always exits 0**,
even after a 401 or 500, so failure is read from the text (``litellm.*Error``, "The API provider
...") and from the analytics log: a ``message_send_starting`` never followed by ``message_send``
means the model call failed. Per call it prints ``Tokens: 1.2k sent, 50 received. Cost: $0.0024
message, $0.0024 session.``; the exact counts and USD come from the log's ``message_send``
events at the end. A model aider has no price for prints no ``Cost:``: the cost is then priced
with genai-prices or unknown. Aider has no session id to resume.

Runner side: imports only the standard library and ``core.agents``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from core.agents.base import AgentEvent, AgentResult, AgentSettings, Invocation, Usage, parser_ref
from core.agents.command import clean_line
from core.agents.common import (
    MAX_DATA_CHARS,
    argv_safe,
    as_dict,
    as_float,
    as_int,
    as_str,
    config_dir,
    error_event,
    load_json,
    merged_env,
    model_for_pricing,
    shorten,
    stderr_summary,
    usage_event,
)
from core.protocol import EventKind

# The repo-map's tags cache, always at the repository root (aider has no option to move it).
STATE_PATHS = (".aider.tags.cache.v4/",)
_TOKENS = re.compile(
    r"^Tokens: (?P<sent>[\d.]+k?) sent(?:, (?P<write>[\d.]+k?) cache write)?(?:, (?P<hit>[\d.]+k?) cache hit)?,"
    r" (?P<received>[\d.]+k?) received\.(?:\s+Cost: \$(?P<message>[\d.]+) message, \$(?P<session>[\d.]+) session\.)?"
)
_COST = re.compile(r"^Cost: \$(?P<message>[\d.]+) message, \$(?P<session>[\d.]+) session\.")
_BANNER = (
    "Aider v",
    "Model:",
    "Main model:",
    "Weak model:",
    "Editor model:",
    "Git repo:",
    "Repo-map:",
    "Analytics have been",
    "Update git name",
    "Update git email",
    "Added ",
    "Warning:",
    "Use /help",
    "https://aider.chat/",
)
_ERROR = re.compile(r"^(litellm\.\w+Error|The API provider|Unable to|Error:|Exception)")
_MODEL = re.compile(r"^(?:Main )?[Mm]odel: (?P<model>\S+)")


class AiderAdapter:
    """Builds ``aider`` invocations for one-shot, write-enabled, non-interactive runs."""

    kind = "aider"

    def build(self, task_text: str, settings: AgentSettings, *, resume: str | None = None) -> Invocation:
        """``resume`` is ignored: aider has no sessions to resume."""
        run_dir = config_dir(settings, "runs", os.urandom(8).hex())
        analytics = os.path.join(run_dir, "analytics.jsonl")
        if task_text[:1] in ("/", "!"):  # aider's command prefixes: a space keeps the text a message
            if not argv_safe(" " + task_text):
                raise ValueError(f"agent {settings.name}: a task for aider cannot start with {task_text[0]}")
            argv = [settings.command, "--message", " " + task_text]
        else:
            argv = [settings.command, "--message-file", "{task_file}"]
        argv += [
            "--yes-always",
            "--no-suggest-shell-commands",
            "--no-pretty",
            "--no-stream",
            "--no-fancy-input",
            "--no-auto-commits",
            "--no-gitignore",
        ]
        argv += ["--no-analytics", "--analytics-log", analytics]
        argv += ["--chat-history-file", os.path.join(run_dir, "chat.history.md")]
        argv += ["--input-history-file", os.path.join(run_dir, "input.history")]
        argv += ["--no-check-update", "--no-show-release-notes", "--no-show-model-warnings"]
        if settings.model:
            argv += ["--model", settings.model]
        argv += settings.args
        env: dict[str, str] = {}
        if "OPENAI_BASE_URL" in settings.env:
            env["OPENAI_API_BASE"] = settings.env["OPENAI_BASE_URL"]
        return Invocation(
            argv=argv,
            env=merged_env(settings, env),
            prompt_mode="file" if argv[1] == "--message-file" else "arg",
            parser=parser_ref("aider", model=settings.model, analytics=analytics),
            files={analytics: ""},  # also creates the run's folder, which aider would not
            state_paths=list(STATE_PATHS),
        )

    def version_argv(self, settings: AgentSettings) -> list[str]:
        return [settings.command, "--version"]


class AiderParser:
    """Reads aider's plain-text output live and its analytics log at the end."""

    def __init__(self, model: str | None = None, analytics: str | None = None) -> None:
        self._model = model
        self._analytics = analytics
        self._usage = Usage()
        self._session_cost: float | None = None
        self._segment: list[str] = []
        self._reply: list[str] = []
        self._errors: list[str] = []
        self._calls = 0
        self._edits: list[str] = []
        self._in_error = False

    def feed(self, line: str) -> list[AgentEvent]:
        text = clean_line(line.rstrip("\r\n")).rstrip()
        if not text.strip():
            self._segment.append("")
            self._in_error = False
            return []
        stripped = text.strip()
        if self._in_error and not _ERROR.match(stripped) and not stripped.startswith("Retrying in "):
            self._errors[-1] += " " + stripped  # aider wraps long error lines at 80 columns
            return [AgentEvent(EventKind.RAW, shorten(stripped), {"line": stripped})]
        self._in_error = False
        match = _MODEL.match(stripped)
        if match and self._model is None:
            self._model = match.group("model")
        if stripped.startswith(_BANNER):
            self._segment = []
            if stripped.startswith("Aider v"):
                return [
                    AgentEvent(
                        EventKind.INIT, stripped, {"version": stripped.removeprefix("Aider v"), "model": self._model}
                    )
                ]
            return [AgentEvent(EventKind.RAW, shorten(stripped), {"line": stripped})]
        tokens = _TOKENS.match(stripped)
        if tokens:
            return [self._on_tokens(tokens)]
        cost = _COST.match(stripped)
        if cost:  # the Cost part sits on its own line when both cache counts are shown
            self._session_cost = float(cost.group("session"))
            return [usage_event(self._usage, self._price_model(), self._session_cost)]
        if stripped.startswith("Applied edit to "):
            path = stripped.removeprefix("Applied edit to ")
            self._edits.append(path)
            return [
                AgentEvent(EventKind.TOOL_USE, shorten(f"edit {path}"), {"name": "edit", "input": {"file_path": path}})
            ]
        if _ERROR.match(stripped):
            self._errors.append(stripped)
            self._in_error = True
            return [error_event(stripped)]
        if stripped.startswith("Retrying in "):
            return [AgentEvent(EventKind.RAW, shorten(stripped), {"line": stripped})]
        self._segment.append(text)
        return [AgentEvent(EventKind.TEXT, shorten(stripped), {"line": text[:MAX_DATA_CHARS]})]

    def _on_tokens(self, match: re.Match[str]) -> AgentEvent:
        self._calls += 1
        sent, hit, write = _count(match.group("sent")), _count(match.group("hit")), _count(match.group("write"))
        call = Usage(
            input_tokens=sent + hit + write, output_tokens=_count(match.group("received")),
            cache_read_tokens=hit, cache_write_tokens=write,
        )  # fmt: skip
        self._usage = Usage(
            input_tokens=self._usage.input_tokens + call.input_tokens,
            output_tokens=self._usage.output_tokens + call.output_tokens,
            cache_read_tokens=self._usage.cache_read_tokens + call.cache_read_tokens,
            cache_write_tokens=self._usage.cache_write_tokens + call.cache_write_tokens,
        )
        if match.group("session"):
            self._session_cost = float(match.group("session"))
        self._reply, self._segment = self._segment, []
        return usage_event(self._usage, self._price_model(), self._session_cost)

    def _price_model(self) -> str | None:
        return model_for_pricing(self._model)

    def live_usage(self) -> tuple[Usage, str | None]:
        return Usage(**self._usage.to_dict()), self._price_model()

    def live_cost_usd(self) -> float | None:
        return self._session_cost

    def finish(self, exit_code: int, stderr_tail: str) -> AgentResult:
        log = _read_log(self._analytics)
        sends = [as_dict(e.get("properties")) for e in log if e.get("event") == "message_send"]
        failed_calls = [as_dict(e.get("properties")) for e in log if e.get("event") == "message_send_exception"]
        starts = [i for i, e in enumerate(log) if e.get("event") == "message_send_starting"]
        last_send = max((i for i, e in enumerate(log) if e.get("event") == "message_send"), default=-1)
        usage = Usage(**self._usage.to_dict())
        cost = self._session_cost
        if sends:  # exact counts from the log beat the rounded "1.2k sent" of the text
            usage.input_tokens = sum(as_int(s.get("prompt_tokens")) for s in sends) + usage.cache_write_tokens
            usage.input_tokens = max(usage.input_tokens, usage.cache_read_tokens)
            usage.output_tokens = sum(as_int(s.get("completion_tokens")) for s in sends)
            total = as_float(sends[-1].get("total_cost"))
            cost = total if total is not None and (total > 0 or cost is not None) else cost
            self._model = self._model or as_str(sends[-1].get("main_model"))
        errors: list[str] = []
        unanswered = bool(starts) and starts[-1] > last_send
        if unanswered or (self._errors and not sends) or failed_calls:
            errors += _readable(self._errors) or ["the model call failed"]
            errors += [shorten(str(e.get("exception")), 300) for e in failed_calls[-1:] if e.get("exception")]
        if exit_code != 0:
            errors.append(f"agent exited with code {exit_code}")
            summary = stderr_summary(stderr_tail)
            if summary:
                errors.append(f"stderr: {summary}")
        if not errors and not sends and not self._calls:
            errors.append("aider finished without calling the model")
        return AgentResult(
            status="failed" if errors else "succeeded",
            final_text=_reply_text(self._reply),
            usage=usage,
            cost_usd=cost,
            cost_source="cli" if cost is not None else "unknown",
            session_id=None,
            model=self._price_model(),
            errors=errors,
            permission_denials=[],
            exit_code=exit_code,
        )


def _count(value: str | None) -> int:
    """aider's ``format_tokens``: ``950``, ``1.2k``, ``12k``."""
    if not value:
        return 0
    if value.endswith("k"):
        return round(float(value[:-1]) * 1000)
    return int(float(value))


def _read_log(path: str | None) -> list[dict[str, Any]]:
    if not path:
        return []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [obj for obj in (load_json(line) for line in fh) if obj is not None]
    except OSError:
        return []


def _readable(errors: list[str]) -> list[str]:
    """``litellm.AuthenticationError: ... - invalid api key`` -> one line naming the status."""
    reasons: list[str] = []
    for error in errors:
        kind = error.split(":", 1)[0].removeprefix("litellm.")
        detail = error.rsplit(" - ", 1)[-1].strip() if " - " in error else error
        status = {"AuthenticationError": 401, "InternalServerError": 500, "RateLimitError": 429}.get(kind)
        if error.startswith("litellm."):
            reason = f"API error {status}: {detail}" if status else f"{kind}: {detail}"
        else:
            reason = error
        if reason not in reasons:
            reasons.append(shorten(reason, 300))
    return reasons[-2:]


def _reply_text(lines: list[str]) -> str:
    """The model's words without the edit blocks and file names aider echoes around them."""
    kept: list[str] = []
    in_fence = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
            while in_fence and kept and not kept[-1].strip():
                kept.pop()
            if in_fence and kept and " " not in kept[-1].strip():
                kept.pop()  # the file name line that introduces a block
            continue
        if in_fence or stripped.startswith(("<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE")):
            continue
        kept.append(line)
    text = "\n".join(kept).strip()
    return re.sub(r"\n{3,}", "\n\n", text)
