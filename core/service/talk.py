"""Talking to a task while it runs: ``say`` (a chat reply, ``/say``, ``orchestra say``) and ``stop``.

An agent that reads input as it runs (Claude Code: ``prompt_mode`` ``stream`` in its spec) gets what
is said at once: the words are kept in the store, dropped in the task's ``say/`` folder and the
runner is woken (``core.runner_input`` writes them to the agent, which reads them before its next
step). Any other agent cannot be told mid-run (their CLIs read the prompt once: measured, see
``reference/agent-clis.md``), so the words are kept and become a follow-up in the same session when
the run ends (``core.engine.says``); the answer says which of the two happened. A task that has
finished gets the follow-up at once.

``stop`` ends the current turn and keeps the session where the agent allows it; elsewhere it is a
cancel, and says so.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from core.agents import adapter_for
from core.engine import signal_runner
from core.errors import HostUnavailable, InvalidInput, InvalidTransition
from core.files import TASK_INBOX, adopt, deliver_now, with_files
from core.models import TaskState
from core.protocol import SAY_DIR, SPEC_FILE, STOP_FILE, spec_cwd, task_dir
from core.service.actions import TaskActions
from core.service.base import LOCAL, Actor
from core.store.says import LIVE, QUEUED
from core.text import state_label

if TYPE_CHECKING:
    from collections.abc import Sequence

    from core.models import Task

log = logging.getLogger(__name__)
SAY_CHARS = 4000


def _running_cwd(folder: Path) -> str | None:
    """The working directory the task's agent was launched in here, if it was launched."""
    cwd = spec_cwd(folder)
    return cwd if cwd is not None and Path(cwd).is_dir() else None


class Talk(TaskActions):
    """``say`` and ``stop``; the roles are the surfaces' to check (operators in chats)."""

    def live_input(self, task_id: str) -> bool:
        """Whether the task's agent reads what is said while it runs (its spec says ``stream``), here or
        on its host (the local copy of its spec says the same)."""
        try:
            spec = json.loads((task_dir(self.home, task_id) / SPEC_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:  # its window is still opening: what its agent's invocation will be
            return self._streams(task_id)
        except (OSError, ValueError):
            return False
        return isinstance(spec, dict) and spec.get("prompt_mode") == "stream"

    def _streams(self, task_id: str) -> bool:
        task = self.get(task_id)
        try:
            settings = self.config.agent_settings(task.agent)
            return adapter_for(settings.kind).build("", settings).prompt_mode == "stream"
        except (KeyError, ValueError):  # an agent no longer configured: nothing reads input
            return False

    def say(self, task_id: str, text: str, *, actor: Actor = LOCAL, files: Sequence[Path] = ()) -> str:
        """Tell task ``task_id`` ``text``; returns the line saying whether it was delivered or kept.

        ``files`` (staged by ``core.inbox``) go with the words: into a running agent's working
        directory at once, into a queued task's folder for its launch, or with a finished task's follow-up.
        """
        text = text.strip() or ("Look at the attached files." if files else "")
        if not text:
            raise InvalidInput("say what? Write the message after the task id (say t7 use the v2 API)")
        if len(text) > SAY_CHARS:
            raise InvalidInput(f"that message is {len(text)} characters; {SAY_CHARS} at most")
        task = self.get(task_id)
        if task.state.finished:
            if task.state == TaskState.REJECTED:
                raise InvalidTransition(f"{task.id} was rejected; delegate a new task instead")
            follow = self.retry(task.id, feedback=text, actor=actor, files=files).task
            return f"💬 {task.id} had finished, so {follow.id} continues it in the same session with your message."
        if files and not (actor.ref and self.store.say_by_ref(actor.ref)):
            text = with_files(text, self._hand_over(task, files))
        live = task.state == TaskState.RUNNING and self.live_input(task.id)
        with self.store.atomic():
            said, made = self.store.add_say(
                task.id, text, by=actor.name, via=actor.source, ts=self.clock.now(), how=LIVE if live else QUEUED,
                ref=actor.ref or None,
            )  # fmt: skip
            if made:
                self.audit(actor, "say", task.id, self.quote(text, 200))
        if live:
            if made and not self._drop(task, said.id, {"text": text, "by": actor.name}):
                return (
                    f"💬 Kept for {task.id}: host {task.host} cannot be reached now,"
                    " so it goes as a follow-up when this run ends."
                )
            return f"💬 Sent to {task.id}'s running agent ({task.agent}): it reads it before its next step."
        why = (
            f"{task.agent} cannot read messages while it runs"
            if task.state == TaskState.RUNNING
            else f"{task.id} is {state_label(task.state)}"
        )
        return f"💬 Kept for {task.id}: {why}, so it goes as a follow-up in the same session when this run ends."

    def _hand_over(self, task: Task, files: Sequence[Path]) -> list[str]:
        """Give a task that has not ended the files sent to it: the names it will find them under."""
        folder = task_dir(self.home, task.id)
        if task.remote and task.state == TaskState.RUNNING:
            return self._hand_over_there(task, files)
        cwd = _running_cwd(folder) if task.state == TaskState.RUNNING else None
        if cwd is None:
            return adopt(files, folder / TASK_INBOX)  # its launch copies them into its working directory
        try:
            return deliver_now(files, cwd, folder)
        except OSError as exc:
            raise InvalidInput(f"could not put the files in {task.id}'s working directory ({exc})") from None

    def _hand_over_there(self, task: Task, files: Sequence[Path]) -> list[str]:
        """Files for a task running on a host: kept in its folder here, and put in its inbox there."""
        from core.hosts import remote

        folder = task_dir(self.home, task.id)
        names = adopt(files, folder / TASK_INBOX)
        cwd = spec_cwd(folder)
        if cwd is None:  # its window is still opening: its launch takes them
            return names
        try:
            remote.put_files(self.hosts.of(task), cwd, {n: (folder / TASK_INBOX / n).read_bytes() for n in names})
        except HostUnavailable as exc:
            raise InvalidInput(f"could not send the files to {task.id} on host {task.host} ({exc})") from None
        return names

    def stop(self, task_id: str, *, actor: Actor = LOCAL) -> str:
        """End the running task's current turn, keeping its session (a reply continues it); an agent
        that cannot be interrupted is cancelled instead, and the line says so."""
        task = self.get(task_id)
        if task.state != TaskState.RUNNING:
            raise InvalidTransition(f"{task.id} is {state_label(task.state)}: there is no turn to stop")
        if not self.live_input(task.id):
            self.cancel(task.id, actor=actor)
            return f"⏹ {task.agent} cannot be interrupted mid-turn, so {task.id} is being cancelled instead."
        self.audit(actor, "stop", task.id, "the current turn")
        if task.remote:
            from core.hosts import remote

            try:
                remote.stop(self.hosts.of(task), task.id, self._runner_pid(task.id))
            except HostUnavailable as exc:
                raise InvalidTransition(f"could not stop {task.id}: {exc}") from None
        else:
            directory = task_dir(self.home, task.id)
            directory.mkdir(parents=True, exist_ok=True)  # claimed, its window still opening: its runner sees it
            (directory / STOP_FILE).touch()
            signal_runner(self.store, self.tmux, task.id, signal.SIGUSR1)
        return f"⏹ {task.id} stops after its current step; its session is kept: reply to its card to go on."

    def _drop(self, task: Task, say_id: int, content: dict[str, str]) -> bool:
        """Leave the words for the runner (whole or not at all, readable by its owner only) and wake it;
        False when its host cannot be reached (the words stay kept for the follow-up)."""
        if task.remote:
            from core.hosts import remote

            data = json.dumps(content, ensure_ascii=False).encode()
            try:
                remote.say(self.hosts.of(task), task.id, say_id, data, self._runner_pid(task.id))
            except HostUnavailable as exc:
                self.store.keep_say(say_id)
                log.warning("%s: what was said stays for its follow-up: %s", task.id, exc)
                return False
            return True
        self._drop_here(task.id, say_id, content)
        return True

    def _drop_here(self, task_id: str, say_id: int, content: dict[str, str]) -> None:
        folder = task_dir(self.home, task_id) / SAY_DIR
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{say_id}.tmp"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(content, handle, ensure_ascii=False)
        os.replace(partial, folder / f"{say_id}.json")
        signal_runner(self.store, self.tmux, task_id, signal.SIGUSR1)


__all__ = ["SAY_CHARS", "Talk"]
