"""Files and voice notes in a chat: a photo or document with a task (or a reply to a task's card), and a
voice note whose transcript is shown with Run / Edit before anything runs.

The transport has already fetched and staged the files (``core.inbox``); here they are given to the
task they came with, or refused in one line. What a person corrects after Edit (their next message
in that chat, or a reply to the transcript) is the task instead of the transcript.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.commands.answers import Answers, toast
from core.commands.parsing import parse_command
from core.errors import InvalidTransition, OrchestraError
from core.inbox import VOICE_HINT, is_voice, staged
from core.messages import Button, Inbound, Keyboard, Outbound
from core.store.transcripts import EDITING, PENDING

if TYPE_CHECKING:
    from core.models import Task
    from core.store.transcripts import Transcript

VOICE_TAPS = ("voice_run", "voice_edit")


def transcript_keyboard(name: str, *, editing: bool = False) -> Keyboard:
    """Run / Edit under a transcript (only Run once Edit was tapped: the corrected text is awaited)."""
    run = Button("▶️ Run", "voice_run", name)
    return ((run,),) if editing else ((run, Button("✏️ Edit", "voice_edit", name)),)


def transcript_text(found: Transcript) -> str:
    about = f" (to {found.about_task})" if found.about_task else ""
    return f"🎙 {found.name} · {found.user_name} said{about}:\n{found.text}"


class FilesChat(Answers):
    """Messages that carry files or a voice note, the transcript's buttons and its correction."""

    def _with_files(self, inbound: Inbound) -> list[Outbound]:
        """A message with files: a voice note to transcribe, files for a task, or for the task it replies to."""
        text = inbound.text.strip()
        what = f"{len(inbound.files)} file(s): {self.service.quote(text, 150)}"
        refused = self._authorize(inbound, "delegate", what)
        if refused is not None:
            return refused
        paths = staged(inbound)
        if len(paths) < len(inbound.files):
            return [self._note(inbound, "📎 The file did not arrive; send it again.")]
        if is_voice(inbound):
            about = self._replied_task(inbound)
            return self._voice(inbound, paths[0], about.id if about is not None else None)
        parsed = parse_command(text) if text.startswith("/") else None
        if parsed is not None and parsed[0] != "delegate":
            return [self._note(inbound, "📎 Files go with a task: send them with its text as the caption.")]
        text = parsed[1] if parsed is not None else text
        about = self._replied_task(inbound)
        if about is not None:
            return self._files_to_task(inbound, about, text, paths)
        if not text:
            names = ", ".join(f.name for f in inbound.files)
            return [
                self._note(
                    inbound, f"📎 Got {names}: send the task as its caption (or reply to a task's card with it)."
                )
            ]
        delegation = self.service.delegate(text, actor=self._actor(inbound), files=paths)
        return [self._card(inbound, delegation.task, why=delegation.approval_reason)]

    def _files_to_task(self, inbound: Inbound, task: Task, text: str, paths: list[Path]) -> list[Outbound]:
        """Files in reply to a task's card: with the words to the running agent, or a follow-up of a finished one."""
        action = "retry" if task.state.finished else "say"
        refused = self._authorize(inbound, action, f"files to {task.id}: {self.service.quote(text, 150)}")
        if refused is not None:
            return refused
        line = self.service.say(task.id, text, actor=self._actor(inbound), files=paths)
        self.changed(task.id)
        return [self._about(task.id, inbound, line)]

    # -- voice ---------------------------------------------------------------------------------
    def _voice(self, inbound: Inbound, audio: Path, about: str | None) -> list[Outbound]:
        if not self.service.voice_ready():
            return [self._note(inbound, VOICE_HINT)]
        try:
            found = self.service.transcribe_note(
                audio, mime=inbound.files[0].mime, actor=self._actor(inbound), user_id=inbound.user_id,
                message_id=inbound.message_id, about=about,
            )  # fmt: skip
        except OrchestraError as exc:
            return [self._note(inbound, f"🎙 Could not transcribe the voice note: {exc}.")]
        if found.state not in (PENDING, EDITING):
            return [self._reply(inbound, f"{transcript_text(found)}\n\n{found.name} runs as {found.task_id}.")]
        hint = (
            f"Run sends it to {found.about_task} as a reply would, or Edit to send the corrected text."
            if found.about_task
            else "Run it as a task, or Edit to send the corrected text."
        )
        return [self._reply(inbound, f"{transcript_text(found)}\n\n{hint}", buttons=transcript_keyboard(found.name))]

    def _voice_tap(self, inbound: Inbound) -> list[Outbound]:
        tap = inbound.tap
        assert tap is not None
        actor = self._actor(inbound)
        try:
            if tap.action == "voice_edit":
                found = self.service.edit_transcript(tap.task_id, actor=actor, user_id=inbound.user_id)
                ask = "✏️ Send the corrected text: your next message here (or a reply to this one) becomes the task."
                return [
                    toast("Send the corrected text"),
                    self._edit(
                        tap.message_id,
                        f"{transcript_text(found)}\n\n{ask}",
                        transcript_keyboard(found.name, editing=True),
                    ),
                ]
            found = self.service.transcript(tap.task_id)
            if found.about_task:
                said = self._say_transcript(inbound, found, None)
                done = f"{transcript_text(found)}\n\n▶️ Sent to {found.about_task} by {inbound.user_name}."
                return [toast(f"▶️ {found.name} sent to {found.about_task}"), self._edit(tap.message_id, done), *said]
            made = self.service.run_transcript(tap.task_id, actor=actor, user_id=inbound.user_id)
        except InvalidTransition as exc:
            return [toast(str(exc)), self._edit_buttons(tap.message_id, ())]
        return [
            toast(f"▶️ {found.name} runs as {made.task.id}"),
            self._edit(tap.message_id, f"{transcript_text(found)}\n\n▶️ Run as {made.task.id} by {inbound.user_name}."),
            self._card(inbound, made.task, why=made.approval_reason),
        ]

    def _corrected(self, inbound: Inbound) -> Transcript | None:
        """The transcript this message corrects: a reply to it, or the sender's next message after Edit."""
        named = {b.task_id for row in inbound.replied_keyboard for b in row if b.action in VOICE_TAPS}
        if len(named) == 1:
            found = self.service.transcript(named.pop())
            if found.state in (PENDING, EDITING) and found.user_id == inbound.user_id:
                return found
        return self.service.editing_transcript(inbound.chat.platform, inbound.chat.chat_id, inbound.user_id)

    def _run_corrected(self, inbound: Inbound, found: Transcript, text: str) -> list[Outbound]:
        refused = self._authorize(inbound, "delegate", f"{found.name} corrected: {self.service.quote(text, 150)}")
        if refused is not None:
            return refused
        try:
            if found.about_task:
                return self._say_transcript(inbound, found, text)
            made = self.service.run_transcript(
                found.name, actor=self._actor(inbound), user_id=inbound.user_id, text=text
            )
        except InvalidTransition as exc:
            return [self._note(inbound, f"🎙 {exc}.")]
        return [self._card(inbound, made.task, why=made.approval_reason)]

    def _say_transcript(self, inbound: Inbound, found: Transcript, text: str | None) -> list[Outbound]:
        """A voice note sent in reply to a task's card, confirmed: what a typed reply with its text does
        (steer the running agent, follow up a finished task, answer yes or no to an approval)."""
        task = self.service.find(found.about_task or "")
        if task is None:
            raise InvalidTransition(f"{found.about_task} is gone")
        claimed = self.service.claim_transcript(
            found.name, actor=self._actor(inbound), user_id=inbound.user_id, text=text
        )
        ref = f"{found.platform}:voice:{found.name}"  # a tap handled again says it once
        spoken = replace(inbound, tap=None, text=claimed.text, files=(), event_id=ref, replied_to=None)
        try:
            answers = self._reply_to_task(spoken, task, claimed.text)
        except Exception:
            self.service.unclaim(claimed, found)
            raise
        self.service.settle_transcript(claimed, task.id)
        return answers

    # Defined by :class:`core.commands.Commands` and its other parts.
    def _authorize(self, inbound: Inbound, action: str, what: str) -> list[Outbound] | None:
        raise NotImplementedError

    def _replied_task(self, inbound: Inbound) -> Task | None:
        raise NotImplementedError

    def _reply_to_task(self, inbound: Inbound, task: Task, text: str) -> list[Outbound]:
        raise NotImplementedError


__all__ = ["VOICE_TAPS", "FilesChat", "transcript_keyboard", "transcript_text"]
