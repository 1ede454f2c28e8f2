"""The adapter contract every agent CLI implements.

Two halves live in different processes:

* ``AgentAdapter.build`` runs in the engine. It turns a task and the agent's settings into an
  ``Invocation`` (argv, extra environment, how the task text is handed over). It never puts the
  task text into a shell string: the text travels as one argv element, on stdin, or in a file.
* ``OutputParser`` runs in the runner, inside the tmux pane. It is fed the agent's stdout one
  line at a time, turns lines into ``AgentEvent``s as they arrive, and at exit produces the final
  ``AgentResult``. Parsers import only the standard library so the runner starts fast.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from core.protocol import EventKind

ResultStatus = Literal["succeeded", "failed"]
PromptMode = Literal["arg", "stdin", "file", "stream"]


@dataclass
class Usage:
    """Token counts for a whole run.

    ``input_tokens`` is the total input, cache reads and writes included (genai-prices
    semantics); each adapter converts its CLI's own semantics into this one.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        data = data or {}
        return cls(
            input_tokens=int(data.get("input_tokens", 0)),
            output_tokens=int(data.get("output_tokens", 0)),
            cache_read_tokens=int(data.get("cache_read_tokens", 0)),
            cache_write_tokens=int(data.get("cache_write_tokens", 0)),
        )


@dataclass(frozen=True)
class AgentEvent:
    """One thing the agent did, in the order it did it.

    ``text`` is a short human line for the pane and for chat progress; ``data`` carries the
    structured detail (tool name and input, usage numbers, session id, ...). Two keys are read by
    the runner whatever the CLI: ``is_error`` on a ``tool_result`` (a failed tool call) and
    ``stop_run`` on an ``error`` (end the run now with this reason, e.g. a 401 the CLI would retry).
    """

    kind: EventKind  # a parser emits init, text, tool_use, tool_result, usage, error or raw
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class AgentResult:
    """What a finished run amounted to, decided from in-band flags and not the exit code alone."""

    status: ResultStatus
    final_text: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    cost_source: str = "unknown"  # "cli", "priced", or "unknown"
    cost_note: str = ""  # how a priced cost was reached when it is not plain (e.g. another model's price)
    session_id: str | None = None
    model: str | None = None
    errors: list[str] = field(default_factory=list)
    permission_denials: list[str] = field(default_factory=list)
    tool_errors: list[str] = field(default_factory=list)  # the tool calls that failed ("Execute error: ...")
    exit_code: int | None = None
    # The CLI's running totals for its whole session after this run, when it reports those instead
    # of the run's own figures (Claude's cost, Qwen's tokens): a resumed run subtracts them.
    session_usage: Usage | None = None
    session_cost_usd: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["usage"] = self.usage.to_dict()
        data["session_usage"] = self.session_usage.to_dict() if self.session_usage else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentResult:
        return cls(
            status=data.get("status", "failed"),
            final_text=str(data.get("final_text", "")),
            usage=Usage.from_dict(data.get("usage")),
            cost_usd=data.get("cost_usd"),
            cost_source=str(data.get("cost_source", "unknown")),
            cost_note=str(data.get("cost_note") or ""),
            session_id=data.get("session_id"),
            model=data.get("model"),
            errors=list(data.get("errors", [])),
            permission_denials=list(data.get("permission_denials", [])),
            tool_errors=list(data.get("tool_errors", [])),
            exit_code=data.get("exit_code"),
            session_usage=Usage.from_dict(data["session_usage"]) if data.get("session_usage") else None,
            session_cost_usd=data.get("session_cost_usd"),
        )


@dataclass(frozen=True)
class SessionStart:
    """Where a resumed run's session stood, for CLIs that report session totals.

    ``usage`` and ``cost_usd`` are the totals the previous run of the session reported, or None
    when no earlier run recorded them (then only the run's own lines can be counted).
    """

    usage: Usage | None = None
    cost_usd: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionStart:
        usage = data.get("usage")
        cost = data.get("cost_usd")
        return cls(
            usage=Usage.from_dict(usage) if isinstance(usage, dict) else None,
            cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        )


@dataclass(frozen=True)
class Invocation:
    """How to start the agent: an argv vector (never a shell line) and how the task reaches it.

    ``prompt_mode`` says where the task text goes: ``arg`` means it is already one element of
    ``argv``; ``stdin`` means the runner writes it to the agent's stdin; ``file`` means the
    runner writes it to ``task.md`` in the task directory and ``{task_file}`` in argv points there
    (or, when the text holds a known secret, which ``task.md`` keeps redacted, to a memory file);
    ``stream`` means the runner writes it as the first message of a conversation on stdin and keeps
    stdin open for more (``core.runner_input``: what people say while it runs, ``/stop``).
    """

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    prompt_mode: PromptMode = "arg"
    parser: str = "command"  # a key of core.agents.PARSERS, optionally with options: see ``parser_ref``
    # Config files the CLI needs before it starts: absolute path -> content. The engine writes
    # them (mode 600) before each start; they never hold a secret, only the names of variables.
    files: dict[str, str] = field(default_factory=dict)
    # The CLI's own cache or state in the repository (paths from its root; a trailing ``/`` is a
    # folder): never listed among the files a task changed.
    state_paths: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AgentSettings:
    """The per-agent part of bots.yaml that an adapter needs, already validated."""

    name: str
    kind: str
    command: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    prefix_args: list[str] = field(default_factory=list)  # from a multi-word ``command``; spliced in after argv[0]
    config_dir: str = ""  # this agent's own config dir under the data dir ("" when there is none)
    # The pre-tool hook the CLI must run before every tool call (``core.permissions.hook``): a shell
    # command line, already quoted, for the CLI's hook config; "" when the agent's hook is off (then
    # the adapter keeps its unattended mode). ``hook_timeout_s`` is what the CLI must allow it.
    hook: str = ""
    hook_timeout_s: int = 0
    # The task's permission policy (``Policy.to_dict()``) for a CLI with no hook whose own config can
    # carry part of it (Cursor's ``permissions.allow/deny``); None outside a task (doctor, tests).
    policy: dict[str, Any] | None = None

    def splice(self, argv: list[str]) -> list[str]:
        """Insert ``prefix_args`` right after the executable of an adapter-built argv."""
        return [argv[0], *self.prefix_args, *argv[1:]] if argv else argv


def parser_ref(name: str, **options: str | None) -> str:
    """``name``, or ``name {json}`` when the parser needs options from the command line.

    The runner builds parsers from this one string (``core.agents.parser_for``); options are
    keyword arguments of the parser's constructor, e.g. the model a CLI never names in its output.
    """
    given = {key: value for key, value in options.items() if value is not None}
    return f"{name} {json.dumps(given, sort_keys=True)}" if given else name


class OutputParser(Protocol):
    """Turns an agent's stdout into events while it runs and into a result when it exits."""

    def feed(self, line: str) -> list[AgentEvent]:
        """Parse one line of stdout (without its newline); return the events it holds."""
        ...

    def live_usage(self) -> tuple[Usage, str | None]:
        """Tokens used so far and the model name, for live cost while the agent runs."""
        ...

    def live_cost_usd(self) -> float | None:
        """Cost reported in-band so far, when the CLI reports one while running."""
        ...

    def finish(self, exit_code: int, stderr_tail: str) -> AgentResult:
        """Decide the final result once the process has exited."""
        ...


class AgentAdapter(Protocol):
    """Builds the command line for one kind of agent CLI."""

    kind: str

    def build(self, task_text: str, settings: AgentSettings, *, resume: str | None = None) -> Invocation:
        """Return how to run ``task_text``; ``resume`` is a session id to continue."""
        ...

    def version_argv(self, settings: AgentSettings) -> list[str]:
        """The argv that prints the CLI's version, for ``orchestra doctor``."""
        ...
