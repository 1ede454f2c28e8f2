"""The runner: the small program that runs inside a task's tmux pane.

It starts the agent from an argv vector (the task text is an argument, stdin or a file, never
shell input), writes the raw output to the task log, shows a readable view in the pane, turns
the output into events, tells the engine about each one at once over a Unix socket, keeps them
on disk too (``events.jsonl``), enforces the timeout and the cost cap, and always ends by writing
``result.json`` atomically. The engine can be down the whole time: it catches up from the files.
What it writes, and the caps on it, are ``core.runner_output``'s; the contract is ``core.protocol``.

It imports only the standard library and the chosen parser, and is started with ``python -S``,
so it is running the agent a few milliseconds after tmux starts it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.agents import parser_for
from core.agents.base import AgentResult, OutputParser, Usage
from core.protocol import CANCEL_FILE, EventKind, TaskSpec, result_document
from core.redact import Redactor
from core.runner_input import Conversation
from core.runner_output import RunOutput
from core.runner_price import list_price
from core.runner_procs import descendants, hang_up_reason, is_bwrap
from core.text import money

_READ_CHUNK = 65536
_STDERR_TAIL = 4000
_DRAIN_S = 2.0  # after the agent exits, how long its background children may hold its output open
_MAX_WAIT_S = 1.0  # the longest the pump sleeps between checks
_RESULT_RETRY_S = 600.0  # how long a result the disk refused is retried before the runner gives up


class Runner:
    """Sees one agent run to its end.

    ``secrets`` (every secret the engine knows of, from the launch handoff) never reach a file the
    runner writes: ``output.log``, ``stderr.log`` (copied from ``stderr_fd`` as it arrives),
    ``events.jsonl`` and ``result.json``. ``stdin_text`` is what an agent of prompt mode stdin reads.
    """

    def __init__(
        self,
        task_dir: Path | str,
        *,
        secrets: list[bytes] | None = None,
        stdin_text: bytes | None = None,
        stderr_fd: int | None = None,
    ) -> None:
        self.dir = Path(task_dir)
        self.spec_error = ""  # why the run cannot go by its spec.json: then it is stopped at once
        try:
            self.spec = TaskSpec.read(self.dir)
            self.parser: OutputParser = _parser(self.spec)
        except ValueError as exc:
            self.spec_error, self.spec = str(exc), TaskSpec.unreadable(self.dir)
            self.parser = parser_for(self.spec.parser)
        self.task_id = self.spec.task_id
        # Agents print their own keys at times (a 401 quoting the key): nothing we keep holds them.
        self.redactor = Redactor.of(v.decode("utf-8", "surrogateescape") for v in secrets or [])
        self.out = RunOutput(
            self.dir,
            self.task_id,
            socket_path=self.spec.socket,
            redactor=self.redactor,
            log_max=self.spec.log_max_bytes,
            events_max=self.spec.events_max_bytes,
            stderr_fd=stderr_fd,
        )
        self.stdin_text = stdin_text
        self.talk: Conversation | None = None  # an agent that reads input as it runs
        self.stop_reason: str | None = None  # cancelled | timed_out | over_budget | agent_error | hung_up
        self.agent_error = ""  # why the parser asked to stop the run (a 401 the CLI would retry for minutes)
        self.tool_errors: list[str] = []  # every parser reports a failed tool call as a tool_result is_error
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.live_cost: float | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._price_ready = threading.Event()
        self._price_started = False

    # -- signals --------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop_reason is None:
            # SIGHUP is tmux closing the pane (its window or the whole server went), not a cancel.
            self.stop_reason = "hung_up" if signum == signal.SIGHUP else "cancelled"
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- main -----------------------------------------------------------------------------
    def failed_to_start(self, command: str, exc: OSError) -> int:
        self.out.emit(EventKind.STARTED, "agent failed to start", {"error": str(exc)}, force=True)
        reason = f"could not start {command}: {exc.strerror or exc}"
        return self.finish(AgentResult(status="failed", errors=[reason]), exited_at=time.time())

    def _refuse(self, pid: int, out_fd: int, in_fd: int | None) -> int:
        """End a run whose spec.json cannot be gone by (no cap, no parser is known): the agent
        ``core.launch`` spawned is killed at once and the task fails with the reason, in one line."""
        self.pid = pid
        self._signal_tree(signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            self.exit_code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        self._stop_leftovers(0.0)
        for fd in (out_fd, in_fd):
            if fd is not None:
                os.close(fd)
        result = AgentResult(status="failed", errors=[f"the runner cannot run it: {self.spec_error}"])
        result.exit_code = self.exit_code
        return self.finish(result, exited_at=time.time())

    def run(self, pid: int, out_fd: int, in_fd: int | None, started: float) -> int:
        """Take over an agent that ``core.launch`` already spawned, and see it to the end."""
        if self.spec_error:
            return self._refuse(pid, out_fd, in_fd)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGCHLD, self._on_child)
        signal.signal(signal.SIGUSR1, self._on_child)  # something was said to the task, or /stop: look now
        self.pid = pid
        if (self.dir / CANCEL_FILE).exists():
            self._on_signal(signal.SIGTERM, None)  # cancelled before we were listening for signals
        self.out.emit(
            EventKind.STARTED,
            f"{self.spec.agent} started",
            {"pid": pid, "runner_pid": os.getpid(), "agent_started_at": started},
            force=True,
        )
        sys.stdout.write(f"orchestra {self.task_id}: {self.spec.agent} running (pid {pid})\n")
        sys.stdout.flush()
        if in_fd is not None:
            text = self.stdin_text if self.stdin_text is not None else (self.dir / "task.md").read_bytes()
            if self.spec.prompt_mode == "stream":  # a conversation: stdin stays open (core.runner_input)
                self.talk = Conversation(in_fd, text, self.dir, self._notice, self.spec)
            else:
                threading.Thread(target=self._feed_stdin, args=(in_fd, text), daemon=True).start()
        exit_code = self._pump(out_fd, started)
        exited_at = time.time()
        result = self.parser.finish(exit_code, self.out.stderr_tail(_STDERR_TAIL))
        result.exit_code = exit_code
        return self.finish(result, exited_at=exited_at)

    def _feed_stdin(self, fd: int, text: bytes) -> None:
        try:
            with open(fd, "wb", closefd=True) as pipe:
                pipe.write(text)
        except OSError:
            pass

    def _notice(self, kind: str, text: str, data: dict[str, Any]) -> None:
        self.out.say(f"orchestra {self.task_id}: {text}\n")
        self.out.emit(kind, text, data, force=True)

    def _preload_pricing(self) -> None:
        for path in self.spec.site_paths:
            if path not in sys.path:
                sys.path.append(path)
        with contextlib.suppress(Exception):  # pricing is optional for the runner
            from core import pricing

            pricing.preload()
        self._price_ready.set()

    def _pump(self, out_fd: int, started: float) -> int:
        """Read the agent's output until the run ends, enforcing timeout, cancel and cost cap.

        The run ends when the agent's own process has exited and its output is closed, or
        ``_DRAIN_S`` after it exited (at the deadline at the latest) if processes it left in the
        background keep the output open; the agent's exit decides the status. Whatever is still
        running below the runner then is stopped (``_stop_leftovers``).
        A stop (timeout, cancel, cost cap) signals the whole tree: SIGTERM, then SIGKILL after
        the grace, repeated on every pass so nothing forked meanwhile survives.
        """
        timeout = self.spec.timeout_s or None
        deadline = started + timeout if timeout else None
        grace = self.spec.cancel_grace_s
        term_at: float | None = None
        exited_at: float | None = None
        sel = selectors.DefaultSelector()
        os.set_blocking(out_fd, False)
        sel.register(out_fd, selectors.EVENT_READ, "out")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        buffer = b""
        out_open = True
        while True:
            now = time.time()
            self._reap()
            if self.talk is not None:
                self.talk.poll()
            if self.exit_code is not None and exited_at is None:
                exited_at = now
            past_deadline = deadline is not None and now >= deadline
            if self.stop_reason is None and past_deadline and exited_at is None:
                self.stop_reason = "timed_out"
            if self.stop_reason is not None and term_at is None:
                term_at = now
                self._signal_tree(signal.SIGTERM)
            elif term_at is not None and now >= term_at + grace:
                self._signal_tree(signal.SIGKILL)
            if exited_at is not None and (not out_open or past_deadline or now >= exited_at + _DRAIN_S):
                break
            # Every wait is bounded: SIGCHLD wakes us early, and no timeout can overflow select.
            wake_at = [now + _MAX_WAIT_S]
            if deadline is not None and self.stop_reason is None:
                wake_at.append(deadline)
            if term_at is not None and now < term_at + grace:
                wake_at.append(term_at + grace)
            if exited_at is not None:
                wake_at.append(exited_at + _DRAIN_S)
            for key, _ in sel.select(max(0.0, min(wake_at) - now)):
                if key.data == "wake":
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 64)
                    continue
                try:
                    chunk = os.read(out_fd, _READ_CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    out_open = False
                    sel.unregister(out_fd)  # a closed pipe leaves the selector: it would be ready forever
                    break
                buffer += chunk
                complete, newline, buffer = buffer.rpartition(b"\n")
                if newline:  # one write per read: the log is current without a syscall per line
                    self.out.log(complete + newline)
                    for line in complete.split(b"\n"):
                        self._line(line)
                if len(buffer) > 8 * 1024 * 1024:  # a line with no end: parse what we have
                    self.out.log(buffer)
                    self._line(buffer)
                    buffer = b""
        sel.close()
        if buffer:
            self.out.log(buffer)
            self._line(buffer)
        self._stop_leftovers(grace)
        os.close(out_fd)
        return self.exit_code if self.exit_code is not None else -1

    def _on_child(self, _signum: int, _frame: Any) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"c")

    def _reap(self) -> None:
        """Collect every child that has ended: the agent, and the orphans we are subreaper for."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                if self.exit_code is None:
                    self.exit_code = -1  # not our child any more: nothing to wait for
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.exit_code = os.waitstatus_to_exitcode(status)

    def _signal_tree(self, sig: int) -> None:
        """Signal the agent's process group and every process below the runner, setsid'd or not; a SIGTERM
        spares bubblewrap's own processes (``runner_procs.is_bwrap``), which end with the agent inside."""
        tree = descendants(os.getpid())
        spare = {p for p in tree if is_bwrap(p)} if sig == signal.SIGTERM else set()
        if self.pid is not None and self.exit_code is None and self.pid not in spare:  # until reaped, ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
        for pid in tree:
            if pid not in spare:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)

    def _stop_leftovers(self, grace: float) -> None:
        """Stop what the agent left running: SIGTERM, then SIGKILL after ``grace``; bounded."""
        self._reap()
        left = descendants(os.getpid())
        if not left:
            return
        sys.stdout.write(f"orchestra {self.task_id}: stopping {len(left)} process(es) the agent left running\n")
        sys.stdout.flush()
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            self._signal_tree(sig)
            until = time.monotonic() + wait
            while time.monotonic() < until:
                time.sleep(0.05)
                self._reap()
                if not descendants(os.getpid()):
                    return
                if sig == signal.SIGKILL:
                    self._signal_tree(sig)  # whatever forked since the last pass

    def _line(self, raw: bytes) -> None:
        line = self.redactor.data(raw).decode("utf-8", "replace").rstrip("\r")
        if self.talk is not None:
            self.talk.saw(line)
        for event in self.parser.feed(line):
            if event.kind == EventKind.USAGE:
                self._update_cost()
            failed_tool = event.kind == EventKind.TOOL_RESULT and event.data.get("is_error") is True
            if failed_tool and len(self.tool_errors) < 50:
                self.tool_errors.append(event.text)
            if event.kind == EventKind.ERROR and event.data.get("stop_run") and self.stop_reason is None:
                self.stop_reason, self.agent_error = "agent_error", str(event.data.get("error") or event.text)
            if not self.out.admit(event.kind, event.text, event.data):
                continue  # past a cap, output events would grow the store without bound
            self.out.show(event, self.live_cost)
            self.out.emit(event.kind, event.text, event.data)

    def _update_cost(self) -> None:
        cost = self.parser.live_cost_usd()
        if cost is None and not self._price_started:
            # Load the price table only for agents that report tokens, and off the reading path.
            self._price_started = True
            threading.Thread(target=self._preload_pricing, daemon=True).start()
        if cost is None and self._price_ready.is_set():
            usage, model = self.parser.live_usage()
            cost, _ = self._price(usage, model)
        if cost is None:
            return
        self.live_cost = cost
        cap = self.spec.cost_cap_usd
        data = {"cost_usd": cost}
        if self.out.admit(EventKind.COST, f"{money(cost)} so far", data):
            self.out.emit(EventKind.COST, f"{money(cost)} so far", data)
        if cap is not None and cost > cap and self.stop_reason is None:
            self.stop_reason = "over_budget"
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _price(self, usage: Usage, model: str | None) -> tuple[float | None, str]:
        return list_price(usage, model, self.spec.configured_model)

    def _counts_tokens(self) -> bool:
        """Whether the agent is a CLI whose output counts tokens (a ``command`` may spend unseen).

        A parser with ``tokens_reported`` says for itself: Cursor's stream may carry no usage at all,
        and then a failed run's cost is unknown, not $0."""
        reported = getattr(self.parser, "tokens_reported", None)
        if callable(reported):
            return bool(reported())
        return self.spec.parser.split(" ")[0] != "command"

    def finish(self, result: AgentResult, *, exited_at: float) -> int:
        result.tool_errors = result.tool_errors or self.tool_errors
        if self.stop_reason == "agent_error":  # the one reason, not the "killed before a result" it led to
            self.stop_reason, result.status, result.errors = None, "failed", [self.agent_error]
        if result.cost_usd is None and (result.usage.input_tokens or result.usage.output_tokens):
            if not self._price_ready.is_set():
                self._preload_pricing()
            priced, note = self._price(result.usage, result.model)
            if priced is not None:
                result.cost_usd, result.cost_source, result.cost_note = priced, "priced", note
        elif result.cost_usd is None and result.status == "failed" and not self.stop_reason and self._counts_tokens():
            result.cost_usd, result.cost_source = 0.0, "priced"  # it failed before any model call: $0, known
        status = {"hung_up": "failed"}.get(self.stop_reason or "", self.stop_reason) or result.status
        if self.talk is not None and self.talk.stopping and self.stop_reason is None:  # /stop: turn ended, session kept
            status = "cancelled"
            result.errors.insert(0, "stopped by request after its current step; the session is kept: reply to go on")
        spent, cap = money(self.live_cost or 0), money(self.spec.cost_cap_usd or 0)
        reasons = {
            "hung_up": hang_up_reason() if self.stop_reason == "hung_up" else "",
            "cancelled": "cancelled by request",
            "timed_out": f"timed out after {self.spec.timeout_s} s",
            "over_budget": f"stopped: cost {spent} crossed the cap {cap}",
        }
        if self.stop_reason in reasons:
            result.errors.insert(0, reasons[self.stop_reason])
        self.out.flush_held()
        payload = result_document(
            self.task_id,
            status,
            result.to_dict(),
            exited_at=exited_at,
            written_at=time.time(),
            live_cost_usd=self.live_cost,
            log_bytes=self.out.log_written,
            events_dropped=self.out.events_dropped,
        )
        payload = self.redactor.value(payload)
        told: list[bool] = []

        def tell_engine() -> None:
            told.append(True)
            self.out.emit(EventKind.RESULT, status, payload, force=True)

        written = self.out.write_result(payload, visible=tell_engine)
        if not told:
            tell_engine()  # the engine can record it even if the disk cannot
        if not written:
            self.out.say(f"orchestra {self.task_id}: disk full; result.json is kept in memory and retried\n")
            deadline = time.monotonic() + _RESULT_RETRY_S
            while not written and time.monotonic() < deadline:
                time.sleep(0.5)
                written = self.out.write_result(payload)
                self.out.retry_events()
        self.out.close()
        cost = f", {money(result.cost_usd)}" if result.cost_usd is not None else ""
        self.out.say(
            f"\norchestra {self.task_id}: {status}{cost}" + (f" — {result.errors[0]}" if result.errors else "") + "\n"
        )
        return 0 if written else 1


def _parser(spec: TaskSpec) -> OutputParser:
    """The spec's output parser; ValueError in one line when it names none that can be made."""
    try:
        return parser_for(spec.parser, resumed_from=spec.resumed_from)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"spec.json: parser {spec.parser!r} cannot be made ({type(exc).__name__}: {exc})") from None
