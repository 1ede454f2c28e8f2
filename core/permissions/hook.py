"""The pre-tool hook every agent CLI runs before a tool call: judge it, ask a person if needed, answer.

A CLI runs ``<python> -S <orchestra>/core/permissions/hook.py <kind>`` (``hook_command``) with the
call's JSON on stdin. The hook finds its task through ``ORCHESTRA_TASK_DIR`` (the engine puts it in
the agent's environment) and the task's ``spec.json``, which holds the policy in force
(``core.permissions.policy``) and the engine's socket. Then:

* ``core.agents.<kind>.hook_call`` turns the payload into a neutral ``ToolCall`` (None: no tool
  call, allowed);
* the policy allows it: the hook answers at once, without the engine;
* the policy denies it: the engine is told (one line, best effort: the denial reaches the
  completion) and the CLI gets the reason the model reads;
* the policy asks: the hook sends ``ask`` on the engine's socket and blocks until the ``answer``
  line. The engine keeps the question in the store and sends it to the phone; if the socket breaks
  (an engine restart), the hook connects again and asks again under the same key, so the question
  is never asked twice or lost. No answer by ``ask_timeout_s`` (plus a margin: the engine decides
  first) means what ``on_timeout`` says, and an engine that never answers means deny, never allow.

``core.agents.<kind>.hook_reply`` writes the decision in the CLI's own format. Anything that goes
wrong inside the hook (no task, a broken spec, a payload it cannot read) denies, with the reason.

Drive it without an engine (tests): make a folder with a ``spec.json`` holding
``{"task_id": ..., "socket": <path>, "permissions": Policy.to_dict()}``, point ``ORCHESTRA_TASK_DIR``
at it, and answer ``ask`` lines on that socket with ``answer_message``.

Standard library only, started with ``python -S``: it runs on every tool call.
"""

from __future__ import annotations

import json
import os
import sys
import time

if __name__ == "__main__":  # run as a script: the package root, not this folder, goes first on the path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.permissions.call import Decision, HookReply, ToolCall, clip
from core.permissions.policy import Policy, grant_rule
from core.questions import QUESTION, UNANSWERED, question_detail

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: the hook imports this on every tool call
if TYPE_CHECKING:
    from typing import Any

TASK_DIR_ENV = "ORCHESTRA_TASK_DIR"
ASK, ANSWER, DENIED = "ask", "answer", "denied"
_MAX_PAYLOAD = 8 * 1024 * 1024
_MARGIN_S = 15.0  # the engine decides a timeout; the hook's own deadline is a backstop after it (at most this)
_RETRY_S = 0.5


def hook_command(kind: str) -> str:
    """The shell line a CLI's config names as its pre-tool hook (CLIs run hooks through a shell)."""
    import shlex

    return shlex.join([sys.executable, "-S", os.path.abspath(__file__), kind])


def ask_message(task_id: str, key: str, call: ToolCall, rule: str, why: str) -> dict[str, object]:
    """Hook -> engine: ask a person about ``call`` (``key`` is the question's, stable across retries)."""
    return {"t": ASK, "task": task_id, "key": key, "call": call.to_dict(), "rule": rule, "why": why}


def denied_message(task_id: str, key: str, call: ToolCall, reason: str) -> dict[str, object]:
    """Hook -> engine: the policy refused ``call`` (recorded, listed in the completion)."""
    return {"t": DENIED, "task": task_id, "key": key, "call": call.to_dict(), "reason": reason}


def answer_message(key: str, allow: bool, reason: str = "") -> dict[str, object]:
    """Engine -> hook: the decision on the question ``key``."""
    return {"t": ANSWER, "key": key, "allow": allow, "reason": reason}


def decide(payload: object, kind: str, environ: dict[str, str] | None = None) -> Decision:
    """The decision on one hook payload of a CLI of ``kind`` (blocks while a person is asked)."""
    env = os.environ if environ is None else environ
    if not isinstance(payload, dict):
        return Decision(False, "Orchestra's permission hook got no tool call it could read, so it is denied")
    adapter = _adapter(kind)
    asking = getattr(adapter, "hook_question", None)
    question = asking(payload) if asking is not None else None  # the agent asks a person: no policy judges that
    call = adapter.hook_call(payload) if question is None else ToolCall(QUESTION)
    if call is None:  # not a tool call (another hook event)
        return Decision(True)
    directory = env.get(TASK_DIR_ENV, "")
    if not directory:
        return Decision(False, f"Orchestra's permission hook ran outside an Orchestra task ({TASK_DIR_ENV} unset)")
    with open(os.path.join(directory, "spec.json"), encoding="utf-8") as fh:
        spec = json.load(fh)
    if not isinstance(spec.get("permissions"), dict):
        return Decision(False, "this task has no permission policy (its agent was not started with a hook)")
    policy = Policy.from_dict(spec["permissions"])
    task_id, socket_path = str(spec.get("task_id", "")), str(spec.get("socket", ""))
    key = os.urandom(8).hex()
    wait_s = policy.ask_timeout_s + min(_MARGIN_S, policy.ask_timeout_s)
    if question is not None:
        questions, tool_input = question
        answers = ask_questions(socket_path, task_id, key, questions, kind, wait_s)
        if isinstance(answers, Decision):
            return answers
        return Decision(True, "answered by a person through Orchestra", adapter.hook_answers(tool_input, answers))
    judgement = policy.judge(call)
    if judgement.verdict == "allow":
        return Decision(True)
    if judgement.verdict == "deny":
        reason = f"Orchestra's permission policy refuses {clip(call.shown(), 200)} ({judgement.why}); do not retry it."
        _send(socket_path, denied_message(task_id, key, call, reason))
        return Decision(False, reason)
    message = ask_message(task_id, key, call, grant_rule(call, policy), judgement.why)
    return _ask(socket_path, message, wait_s)


def ask_questions(
    socket_path: str, task_id: str, key: str, questions: list[dict[str, Any]], cli_tool: str, wait_s: float
) -> dict[str, str] | Decision:
    """Ask a person ``questions`` one after another (each waits ``wait_s`` at most): question -> answer,
    or the Decision that ends it (no answer in time, skipped, the task over: the model reads why)."""
    if not questions:
        return Decision(
            False, "The question had no text, so no one was asked; ask again with the question written out."
        )
    answers: dict[str, str] = {}
    for number, question in enumerate(questions):
        call = ToolCall(QUESTION, question["question"], question_detail(question), cli_tool)
        message = ask_message(task_id, f"{key}-q{number}", call, "", "the agent asks you")
        message["question"] = True
        decision = _ask(socket_path, message, wait_s)
        if not decision.allow:
            return Decision(False, decision.reason or UNANSWERED)
        answers[question["question"]] = decision.reason
    return answers


def _ask(socket_path: str, message: dict[str, object], wait_s: float) -> Decision:
    """Send the question and wait for its answer, reconnecting until ``wait_s`` has passed."""
    import socket

    deadline = time.monotonic() + wait_s
    line = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "replace")
    while (left := deadline - time.monotonic()) > 0:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(min(left, 5.0))
                sock.connect(socket_path)
                sock.sendall(line)
                answer = _read_answer(sock, str(message["key"]), deadline)
            if answer is not None:
                return answer
        except OSError:
            pass  # no engine, or it went away: ask the next one under the same key
        time.sleep(min(_RETRY_S, max(0.0, deadline - time.monotonic())))
    return Decision(False, "no one answered the permission request in time (Orchestra's engine did not reply)")


def _read_answer(sock: object, key: str, deadline: float) -> Decision | None:
    """The answer line for ``key``; None when the engine hung up first."""
    import socket

    assert isinstance(sock, socket.socket)
    buffer = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(min(left, 30.0))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return None
        buffer += chunk
        while b"\n" in buffer:
            raw, buffer = buffer.split(b"\n", 1)
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("t") == ANSWER and obj.get("key") == key:
                return Decision(obj.get("allow") is True, str(obj.get("reason") or ""))
    return None


def _send(socket_path: str, message: dict[str, object]) -> None:
    """One line to the engine, if it is there to hear it (a denial never waits for it)."""
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(socket_path)
            sock.sendall((json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def _adapter(kind: str) -> Any:
    """Where a CLI's ``hook_call`` and ``hook_reply`` live: a light module, never the whole adapter
    (the hook runs on every tool call: an adapter's imports would cost ~25 ms each time)."""
    import importlib

    generic = importlib.import_module("core.agents.hooks")
    if kind in generic.GENERIC:
        return _Generic(generic, kind)
    return importlib.import_module(f"core.agents.{kind}_hooks")


class _Generic:
    """The hook functions of a CLI in ``core.agents.hooks.GENERIC``."""

    def __init__(self, module: Any, kind: str) -> None:
        self.module, self.kind = module, kind

    def hook_call(self, payload: dict[str, Any]) -> ToolCall | None:
        return self.module.generic_call(self.kind, payload)  # type: ignore[no-any-return]

    def hook_reply(self, decision: Decision) -> HookReply:
        return self.module.generic_reply(self.kind, decision)  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    kind = argv[0] if argv else ""
    try:
        raw = sys.stdin.buffer.read(_MAX_PAYLOAD)
        payload = json.loads(raw.decode("utf-8", "replace")) if raw.strip() else {}
        decision = decide(payload, kind)
    except Exception as exc:  # noqa: BLE001 - whatever breaks, the safe answer is no
        decision = Decision(False, f"Orchestra's permission hook failed ({type(exc).__name__}: {clip(str(exc), 200)})")
    try:
        reply: HookReply = _adapter(kind).hook_reply(decision)
    except Exception as exc:  # noqa: BLE001 - an unknown kind: the generic form every CLI reads as "blocked"
        reply = HookReply(stderr=decision.reason or f"blocked ({exc})", exit_code=0 if decision.allow else 2)
    if reply.stdout:
        sys.stdout.write(reply.stdout)
        sys.stdout.flush()
    if reply.stderr:
        sys.stderr.write(reply.stderr)
        sys.stderr.flush()
    return reply.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
