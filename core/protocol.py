"""The engine↔runner contract: event kinds, the task spec, the runner's records and socket lines.

Both sides import this module: the engine (dispatch, ingest, reconcile) and the runner, which runs
with ``python -S``, so it imports only the standard library. Everything the two processes say to
each other through files in the task directory or over ``engine.sock`` is built and checked here,
but for ``launch.bin`` (the agent's keys and the task as sent), which is ``core.launch``'s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeGuard


class EventKind(StrEnum):
    """What an event says. Every kind reaches the engine's listeners; the runner's are stored too."""

    # From the agent's output, through its parser (core/agents/*).
    INIT = "init"
    TEXT = "text"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    USAGE = "usage"
    ERROR = "error"
    RAW = "raw"
    # From the runner itself.
    STARTED = "started"
    COST = "cost"
    NOTICE = "notice"
    RESULT = "result"
    # From the engine, to its listeners only (never in a runner's file).
    DISPATCHED = "dispatched"
    FINISHED = "finished"
    PERMISSION = "permission"  # a permission request was opened or answered (``core.engine.asks``)


RUN_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timed_out", "over_budget"})
"""The statuses a runner's result may end with: each one a ``TaskState`` value."""

# The files of a task directory (``home/tasks/ID``) that both sides read or write.
SPEC_FILE = "spec.json"  # the engine writes it before the window opens; the runner reads it once
EVENTS_FILE = "events.jsonl"  # the runner appends every event; the engine replays what it missed
RESULT_FILE = "result.json"  # the runner writes it once, atomically, at the end
CANCEL_FILE = "cancel"  # a cancel that may land before the runner listens for signals
SAY_DIR, SAID_DIR = (
    "say",
    "said",
)  # what people said to the running agent: to pass on, passed on (``core.runner_input``)
STOP_FILE = "stop"  # /stop: end the current turn, keep the session (agents that read input as they run)
ENGINE_SOCKET = "run/engine.sock"  # in the data directory: runners, hooks and CLIs write lines to the engine
# (in a folder of its own: a sandbox binds the folder, so it sees the socket a restarted engine makes)


def task_dir(home: Path, task_id: str) -> Path:
    """Where a task's files live."""
    return home / "tasks" / task_id


# -- the task spec ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSpec:
    """What the runner needs to know about its run (``spec.json``; no secret in it once redacted).

    The agent's environment, its keys and the task text as sent travel in ``launch.bin`` instead
    (``core.launch``). ``argv`` holds ``task_file_marker`` where the task file's path goes.
    """

    task_id: str
    agent: str
    argv: tuple[str, ...]
    task_file_marker: str
    env: dict[str, str]  # the adapter's own variables (redacted): for a person reading the file
    prompt_mode: str  # arg | stdin | file | stream: see ``core.agents.base.Invocation``
    parser: str  # a ``core.agents.parser_for`` reference
    state_paths: tuple[str, ...]
    cwd: str
    timeout_s: float | None
    cost_cap_usd: float | None
    cancel_grace_s: float
    socket: str  # the engine's socket
    log_max_bytes: int  # 0: no cap
    events_max_bytes: int  # 0: no cap
    site_paths: tuple[str, ...]  # where the runner finds the optional price table's packages
    resumed_from: dict[str, Any] | None  # a resumed session's totals before this run ({} unknown)
    configured_model: str | None  # priced instead when the model the CLI names has no price
    # The permission policy the task's hook judges tool calls by (``core.permissions.policy.Policy``
    # as a dict); None when the agent has no hook.
    permissions: dict[str, Any] | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    def redacted(self, redact: Callable[[Any], Any]) -> TaskSpec:
        """The same spec with ``redact`` applied to every value (``Redactor.value``)."""
        return TaskSpec.from_dict(redact(json.loads(self.to_json())))

    @classmethod
    def from_json(cls, text: str) -> TaskSpec:
        """Parse ``spec.json``; ValueError, in one line naming the field, when it is not a spec."""
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"spec.json is not JSON ({exc})") from None
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: Any) -> TaskSpec:
        if not isinstance(obj, dict):
            raise ValueError(f"spec.json holds {type(obj).__name__}, not an object")  # noqa: TRY004 - one error type for a bad file
        values: dict[str, Any] = {}
        for spec_field in fields(cls):
            name = spec_field.name
            if name not in obj:
                raise ValueError(f"spec.json has no {name!r}")
            check, what = _SPEC_TYPES[name]
            value = obj[name]
            if not check(value):
                raise ValueError(f"spec.json: {name!r} must be {what}, not {_shown(value)}")
            values[name] = tuple(value) if isinstance(value, list) else value
        mode = values["prompt_mode"]
        if mode not in ("arg", "stdin", "file", "stream"):
            raise ValueError(f"spec.json: 'prompt_mode' must be arg, stdin, file or stream, not {_shown(mode)}")
        return cls(**values)

    @classmethod
    def unreadable(cls, directory: Path) -> TaskSpec:
        """What a runner goes by when its spec.json is broken: only enough to say so and end the run.

        The task directory (``home/tasks/ID``) names the task and the engine's socket; no cap and no
        parser is known, so the run is stopped at once.
        """
        return cls(
            task_id=directory.name,
            agent="",
            argv=("",),
            task_file_marker="",
            env={},
            prompt_mode="arg",
            parser="command",
            state_paths=(),
            cwd="",
            timeout_s=None,
            cost_cap_usd=None,
            cancel_grace_s=0.0,
            socket=str(directory.parent.parent / ENGINE_SOCKET),
            log_max_bytes=0,
            events_max_bytes=0,
            site_paths=(),
            resumed_from=None,
            configured_model=None,
            permissions=None,
        )

    @classmethod
    def read(cls, directory: Path) -> TaskSpec:
        """The spec in a task directory; ValueError in one line when it is missing or broken."""
        try:
            text = (directory / SPEC_FILE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read spec.json ({getattr(exc, 'strerror', None) or exc})") from None
        return cls.from_json(text)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_strs(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _is_count(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _is_seconds(value: Any) -> bool:
    return _is_number(value) and value >= 0


def _or_none(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


_SPEC_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "task_id": (lambda v: isinstance(v, str) and bool(v), "a task id"),
    "agent": (_is_str, "a string"),
    "argv": (lambda v: _is_strs(v) and bool(v), "a non-empty list of strings"),
    "task_file_marker": (_is_str, "a string"),
    "env": (_is_str_map, "an object of strings"),
    "prompt_mode": (_is_str, "a string"),
    "parser": (lambda v: isinstance(v, str) and bool(v), "a parser name"),
    "state_paths": (_is_strs, "a list of strings"),
    "cwd": (_is_str, "a string"),
    "timeout_s": (_or_none(_is_seconds), "a number of seconds or null"),
    "cost_cap_usd": (_or_none(_is_seconds), "a number or null"),
    "cancel_grace_s": (_is_seconds, "a number of seconds"),
    "socket": (lambda v: isinstance(v, str) and bool(v), "a socket path"),
    "log_max_bytes": (_is_count, "a whole number of bytes"),
    "events_max_bytes": (_is_count, "a whole number of bytes"),
    "site_paths": (_is_strs, "a list of strings"),
    "resumed_from": (_or_none(lambda v: isinstance(v, dict)), "an object or null"),
    "configured_model": (_or_none(_is_str), "a string or null"),
    "permissions": (_or_none(lambda v: isinstance(v, dict)), "an object or null"),
}


def _shown(value: Any) -> str:
    return f"{json.dumps(value)[:60]}" if value is not None else "null"


# -- socket lines -------------------------------------------------------------------------------
# Every line on engine.sock is one JSON object; ``t`` says which of these it is.
EVENT, KICK, CANCEL, ANSWERED = "event", "kick", "cancel", "answered"
# The permission hook's lines (``ask``, ``denied``; the engine's ``answer``) are ``core.permissions.hook``'s.


def event_message(task_id: str, seq: int, ts: float, kind: str, text: str, data: dict[str, Any]) -> dict[str, Any]:
    """A runner's event: sent on the socket and appended to ``events.jsonl``, the same line."""
    return {"t": EVENT, "task": task_id, "seq": seq, "ts": ts, "kind": kind, "text": text, "data": data}


def kick_message() -> dict[str, Any]:
    """Ask the engine to dispatch: a task was queued."""
    return {"t": KICK}


def cancel_message(task_id: str) -> dict[str, Any]:
    """Ask the engine to stop a running task's agent."""
    return {"t": CANCEL, "task": task_id}


def answered_message(key: str) -> dict[str, Any]:
    """Tell the engine a person answered the permission request ``key`` (the answer is in the store)."""
    return {"t": ANSWERED, "key": key}


def encode(message: dict[str, Any]) -> bytes:
    """One socket line."""
    return (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "replace")


def message_type(obj: Any) -> str | None:
    """The ``t`` of a decoded socket line; None when it is no message."""
    kind = obj.get("t") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) else None


# -- the runner's records -----------------------------------------------------------------------
def event_record(obj: Any) -> dict[str, Any] | None:
    """A runner event with every field of the type the engine uses, or None when it is not one.

    The one check for records from the socket and from events.jsonl alike: a line that is valid
    JSON but no event (``123``, ``[]``, ``{"seq": "x9"}``) is skipped, never raised on.
    """
    if not isinstance(obj, dict):
        return None
    task, seq, kind, ts = obj.get("task"), obj.get("seq"), obj.get("kind"), obj.get("ts")
    text, data = obj.get("text", ""), obj.get("data") or {}
    if not (isinstance(task, str) and task and _is_int(seq) and seq > 0 and isinstance(kind, str) and kind):
        return None
    if not (isinstance(text, str) and isinstance(data, dict) and (ts is None or _is_number(ts))):
        return None
    checks: dict[str, tuple[str, ...]] = {
        EventKind.STARTED: ("agent_started_at", "runner_pid", "pid"),
        EventKind.COST: ("cost_usd",),
    }
    if any(data.get(key) is not None and not _is_number(data[key]) for key in checks.get(kind, ())):
        return None
    if kind == EventKind.COST and data.get("cost_usd") is None:
        return None
    if kind == EventKind.STARTED and data.get("runner_pid") is not None and not _is_int(data["runner_pid"]):
        return None
    if kind == EventKind.USAGE:
        usage = data.get("usage") or {}
        if not isinstance(usage, dict) or not all(_is_int(usage.get(k, 0)) for k in ("input_tokens", "output_tokens")):
            return None
    if kind == EventKind.RESULT and result_payload(data) is None:
        return None
    return {"task": task, "seq": seq, "kind": kind, "ts": ts, "text": text, "data": data}


def result_document(
    task_id: str,
    status: str,
    result: dict[str, Any],
    *,
    exited_at: float,
    written_at: float,
    live_cost_usd: float | None,
    log_bytes: int,
    events_dropped: int,
) -> dict[str, Any]:
    """``result.json`` (and the data of the ``result`` event): how the run ended and what it made.

    ``status`` is one of ``RUN_STATUSES``; ``result`` is ``AgentResult.to_dict()``.
    """
    return {
        "task_id": task_id,
        "status": status,
        "result": result,
        "exited_at": exited_at,
        "written_at": written_at,
        "live_cost_usd": live_cost_usd,
        "log_bytes": log_bytes,
        "events_dropped": events_dropped,
    }


def failed_result(status: str, reason: str) -> dict[str, Any]:
    """The result the engine records for a run that left none (its runner is gone)."""
    return {"status": status, "result": {"status": "failed", "errors": [reason]}}


def spec_cwd(directory: Path) -> str | None:
    """The working directory the task's agent was launched in, from its ``spec.json`` (for a task on
    another host, the local copy: a path there); None before its launch or when it cannot be read."""
    try:
        spec = json.loads((directory / SPEC_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cwd = spec.get("cwd") if isinstance(spec, dict) else None
    return cwd if isinstance(cwd, str) and cwd.startswith("/") else None


def read_result(directory: Path) -> dict[str, Any] | None:
    """A task directory's ``result.json``; None when there is none yet; ValueError when it is broken."""
    path = directory / RESULT_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    try:
        payload = result_payload(json.loads(text))
    except ValueError:
        payload = None
    if payload is None:
        raise ValueError(f"{path} is not a result; skipped: {text[:200]!r}")
    return payload


def result_payload(obj: Any) -> dict[str, Any] | None:
    """A runner's result (result.json, or the data of its ``result`` event), or None when broken."""
    if not isinstance(obj, dict) or obj.get("status", "failed") not in RUN_STATUSES:
        return None
    result = obj.get("result") or {}
    exited_at = obj.get("exited_at")
    if not isinstance(result, dict) or not (exited_at is None or _is_number(exited_at)):
        return None
    usage = result.get("usage") or {}
    lists = [result.get(k, []) for k in ("errors", "permission_denials")]
    optional_text = [result.get(k) for k in ("session_id", "model")]
    if not (
        isinstance(usage, dict)
        and all(_is_int(v) for v in usage.values())
        and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in lists)
        and all(v is None or isinstance(v, str) for v in optional_text)
        and (result.get("cost_usd") is None or _is_number(result["cost_usd"]))
        and (result.get("exit_code") is None or _is_int(result["exit_code"]))
        and isinstance(result.get("final_text", ""), str)
    ):
        return None
    return obj


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
