"""Voice notes as tasks: transcribe (``core.voice``), keep the transcript, run it once as the sender's task.

A transcript is kept in the store (``transcripts``) as soon as it is heard, so a restart between the
transcript and the tap loses nothing; Run and a corrected text both move it out of ``pending`` or
``editing`` with a compare-and-set before the task is made, so a second tap, or a tap racing the
correction, makes no second task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import InvalidInput, InvalidTransition
from core.service.actions import TaskActions
from core.service.base import Actor
from core.store.transcripts import EDITING, PENDING, RUN, Transcript

if TYPE_CHECKING:
    from pathlib import Path

    from core.service.delegation import Delegation


EDIT_WINDOW_S = 3600.0  # how long after a voice note its sender's next message is taken as its corrected text


class VoiceNotes(TaskActions):
    """Transcripts of voice notes and the tasks made from them; the roles are the chats' to check."""

    def voice_ready(self) -> bool:
        """Whether a transcription endpoint is set up (``voice.url``)."""
        return self.config.voice.endpoint() is not None

    def transcribe_note(
        self, audio: Path, *, mime: str, actor: Actor, user_id: str, message_id: str | None, about: str | None = None
    ) -> Transcript:
        """The transcript of a voice note sent by ``actor`` (kept once per chat update: a redelivered
        note is not sent to the endpoint again), ``about`` the task whose card it replied to; raises
        ``TranscriptionFailed`` with one line."""
        from core.voice import transcribe

        if actor.ref and (known := self.store.transcript_by_ref(actor.ref)) is not None:
            return known
        text = transcribe(self.config.voice, audio, mime=mime)
        with self.store.atomic():
            made = self.store.add_transcript(
                platform=actor.source, chat_id=actor.chat, user_id=user_id, user_name=actor.name, text=text,
                ts=self.clock.now(), ref=actor.ref or None, message_id=message_id, topic=actor.topic, about=about,
            )  # fmt: skip
            self.audit(actor, "voice", None, f"v{made.id}: {self.quote(text, 180)}")
        return made

    def transcript(self, name: str) -> Transcript:
        """``v3`` (or ``3``) as a transcript; ``InvalidInput`` when there is none."""
        digits = name.strip().lower().removeprefix("v")
        found = self.store.transcript(int(digits)) if digits.isdigit() else None
        if found is None:
            raise InvalidInput(f"there is no voice note {name!r}")
        return found

    def editing_transcript(self, platform: str, chat_id: str, user_id: str) -> Transcript | None:
        """The transcript this person asked to correct here: their next message is its text (for
        :data:`EDIT_WINDOW_S` after the note; later text is a task of its own again)."""
        found = self.store.editing_transcript(platform, chat_id, user_id)
        if found is None or self.clock.now() - found.created_at > EDIT_WINDOW_S:
            return None
        return found

    def edit_transcript(self, name: str, *, actor: Actor, user_id: str) -> Transcript:
        """Wait for the sender's corrected text (Edit); a second tap changes nothing."""
        found = self._theirs(name, user_id)
        if found.state == EDITING:
            return found
        if not self.store.move_transcript(found.id, (PENDING,), EDITING):
            raise InvalidTransition(self._settled(self.transcript(name)))
        self.audit(actor, "voice edit", None, found.name)
        return self.transcript(found.name)

    def claim_transcript(self, name: str, *, actor: Actor, user_id: str, text: str | None = None) -> Transcript:
        """Take the transcript (or the sender's corrected ``text``) to act on, once: a second tap gets
        ``InvalidTransition`` naming what it became. :meth:`unclaim` gives it back if acting fails."""
        found = self._theirs(name, user_id)
        body = (text if text is not None else found.text).strip()
        if not body:
            raise InvalidInput("the corrected text is empty; send the task as text")
        if not self.store.move_transcript(
            found.id, (PENDING, EDITING), RUN, decided_at=self.clock.now(), decided_by=actor.name, text=body
        ):
            raise InvalidTransition(self._settled(self.transcript(name)))
        self.audit(actor, "voice run", found.about_task, f"{found.name}: {self.quote(body, 180)}")
        return self.transcript(found.name)

    def unclaim(self, claimed: Transcript, before: Transcript) -> None:
        """Acting on a claimed transcript failed (budget, bad text): Run can be tapped again."""
        self.store.move_transcript(claimed.id, (RUN,), before.state, text=before.text)

    def settle_transcript(self, claimed: Transcript, task_id: str) -> None:
        self.store.move_transcript(claimed.id, (RUN,), RUN, task_id=task_id)

    def run_transcript(self, name: str, *, actor: Actor, user_id: str, text: str | None = None) -> Delegation:
        """Delegate the transcript (or the sender's corrected ``text``) as their task, once.

        The transcript is claimed first (a second tap gets ``InvalidTransition`` naming the task); a
        task that cannot be made (budget, bad text) gives the claim back, so Run can be tapped again.
        """
        before = self.transcript(name)
        claimed = self.claim_transcript(name, actor=actor, user_id=user_id, text=text)
        ref = f"{claimed.platform}:voice:{claimed.name}"  # the task of this transcript, whichever tap made it
        try:
            made = self.delegate(
                claimed.text, actor=Actor(actor.name, actor.source, actor.where, ref, actor.chat, actor.topic)
            )
        except Exception:
            self.unclaim(claimed, before)
            raise
        self.settle_transcript(claimed, made.task.id)
        return made

    def _theirs(self, name: str, user_id: str) -> Transcript:
        found = self.transcript(name)
        if found.user_id != user_id:
            raise InvalidInput(f"{found.name} is {found.user_name}'s voice note; only they can run or edit it")
        return found

    @staticmethod
    def _settled(found: Transcript) -> str:
        if found.state == RUN:
            return f"{found.name} already runs as {found.task_id or 'a task'}"
        return f"{found.name} is {found.state}"


__all__ = ["EDIT_WINDOW_S", "VoiceNotes"]
