"""A task's branch in a chat: Diff, Merge, Open PR and Discard, as buttons under its completion and as
``/diff /merge /pr /discard ID`` (or in reply to the task's message). Discard asks first.

Everything is read from the store and git when the tap comes, so the buttons of a completion sent
before a restart work after it. What changed the repository (a merge, a pull request, a discard)
is said to every chat by :meth:`core.service.Branches` itself; the tapper also gets a toast.
"""

from __future__ import annotations

import dataclasses

from core.branches import MergeConflict
from core.commands.answers import Answers, toast
from core.errors import OrchestraError
from core.messages import Attachment, Inbound, Keyboard, Outbound, discard_keyboard

BRANCH_TAPS = ("diff", "merge", "pr", "discard", "discard_yes", "discard_no")
PLAN_TAPS = ("plan_approve", "plan_edit", "plan_cancel", "plan_retry", "plan_skip")
BRANCH_COMMANDS = ("diff", "merge", "pr", "discard")


class BranchChat(Answers):
    """The branch commands and taps; roles are checked before (diff is for viewers, the rest for operators)."""

    # -- commands ---------------------------------------------------------------------------------
    def _diff(self, inbound: Inbound, args: str) -> list[Outbound]:
        return [self._diff_answer(inbound, self._task_or_latest(args).id)]

    def _merge(self, inbound: Inbound, args: str) -> list[Outbound]:
        ok, said = self._merge_answer(inbound, self._task_or_latest(args).id)
        return [] if ok else [said]  # a merge is said to every chat

    def _pr(self, inbound: Inbound, args: str) -> list[Outbound]:
        ok, said = self._pr_answer(inbound, self._task_or_latest(args).id)
        return [said] if not ok or "already open" in said.text else []  # a new one is said to every chat

    def _discard(self, inbound: Inbound, args: str) -> list[Outbound]:
        return [self._discard_question(inbound, self._task_or_latest(args).id)]

    # -- taps -------------------------------------------------------------------------------------
    def _branch_tap(self, inbound: Inbound) -> list[Outbound]:
        tap = inbound.tap
        assert tap is not None
        from core.plans import parse_plan_ref

        if tap.action in PLAN_TAPS:
            return self._plan_tap(inbound)
        task = self.service.find(tap.task_id)
        if parse_plan_ref(tap.task_id) is not None:
            task = self.service.plan_steps(tap.task_id)[-1]
            task = dataclasses.replace(task, id=tap.task_id)  # the branch is the plan's: named by it
        if task is None:
            return [toast(f"There is no task {tap.task_id!r}."), self._edit_buttons(tap.message_id, ())]
        if tap.action == "diff":
            return [toast(""), self._diff_answer(inbound, task.id)]
        if tap.action == "discard":
            return [toast(""), self._discard_question(inbound, task.id)]
        if tap.action == "discard_no":
            return [toast("Kept."), self._edit(tap.message_id, f"Kept {task.id}'s branch; nothing was removed.")]
        if tap.action == "discard_yes":
            try:
                branch = self.service.discard_branch(task.id, actor=self._actor(inbound))
            except OrchestraError as exc:
                return [toast(str(exc)), self._edit(tap.message_id, f"🗑 {exc}")]
            self.changed(task.id)
            done = f"🗑 Discarded {task.id}: {branch.branch} and its worktree (by {inbound.user_name})."
            return [toast(f"🗑 {task.id} discarded"), self._edit(tap.message_id, done)]
        answer = self._merge_answer if tap.action == "merge" else self._pr_answer
        ok, said = answer(inbound, task.id)
        self.changed(task.id)
        if not ok:
            return [toast(said.text.splitlines()[0]), said]
        if tap.action == "pr":  # after a PR one may still merge; a second tap is answered here alone
            return [toast(said.text.splitlines()[0]), *([said] if "already open" in said.text else [])]
        return [toast(said.text.splitlines()[0]), self._edit_buttons(tap.message_id, _without(tap.keyboard, ()))]

    def _plan_tap(self, inbound: Inbound) -> list[Outbound]:
        tap = inbound.tap
        assert tap is not None
        actor = self._actor(inbound)
        try:
            if tap.action == "plan_edit":
                plan = self.service.get_plan(tap.task_id)
                if plan.state != "awaiting_approval":
                    return [toast(f"{plan.id} is {plan.state}; only a plan waiting for approval is edited")]
                ask = (f"✏️ Reply to this message with {plan.id} as it should be: a numbered list, one step a line. "
                       f"It replaces {plan.id}, which waits until then.")  # fmt: skip
                return [toast(""), Outbound(ask, task_id=plan.id, reply_to=tap.message_id)]
            if tap.action == "plan_approve":
                plan = self.service.approve_plan(tap.task_id, actor=actor)
                said = f"✅ {plan.id} approved by {inbound.user_name}; its first steps start"
            elif tap.action == "plan_cancel":
                plan = self.service.cancel_plan(tap.task_id, actor=actor)
                said = f"⏹ {plan.id} cancelled by {inbound.user_name}"
            elif tap.action == "plan_retry":
                again = self.service.retry_step(tap.task_id, actor=actor)
                said = f"🔁 {tap.task_id} runs again as {again.id}"
            else:
                plan = self.service.skip_step(tap.task_id, actor=actor)
                said = f"⏭ {tap.task_id} skipped by {inbound.user_name}; {plan.id} goes on"
        except OrchestraError as exc:
            return [toast(str(exc)), self._edit_buttons(tap.message_id, ())]
        return [toast(said), self._edit_buttons(tap.message_id, ())]

    # -- answers ----------------------------------------------------------------------------------
    def _diff_answer(self, inbound: Inbound, task_id: str) -> Outbound:
        try:
            got = self.service.branch_diff(task_id)
        except OrchestraError as exc:
            return self._reply(inbound, f"🧾 {exc}")
        tb, diff = got.branch, got.diff
        if not diff.files:
            return self._about(task_id, inbound, f"🧾 {task_id}: {tb.branch} changes nothing against {tb.base}.")
        lines = diff.stat.splitlines()
        stat = "\n".join(lines if len(lines) <= 12 else [*lines[:11], "…", lines[-1]])
        clipped = " (patch clipped at 8 MB)" if diff.clipped else ""
        return Outbound(
            f"🧾 {task_id} · {tb.branch} vs {tb.base} · {diff.files} file{'' if diff.files == 1 else 's'}{clipped}",
            code=stat[:900],
            attachment=Attachment("document", f"{task_id}.patch", path=str(got.patch_path)),
            task_id=task_id,
            reply_to=inbound.message_id,
        )

    def _merge_answer(self, inbound: Inbound, task_id: str) -> tuple[bool, Outbound]:
        try:
            tb, merged = self.service.merge_branch(task_id, actor=self._actor(inbound))
        except MergeConflict as exc:
            text = (
                f"⚠️ {task_id} was not merged: {exc}.\n"
                f"Resolve it on the branch (reply to the task to have the agent merge the base in), or discard it."
            )
            return False, self._about(task_id, inbound, text)
        except OrchestraError as exc:
            return False, self._about(task_id, inbound, f"⚠️ {task_id} was not merged: {exc}")
        how = "fast-forward" if merged.fast_forward else "merge commit"
        return True, self._about(task_id, inbound, f"🔀 {task_id} merged into {tb.base} ({how})")

    def _pr_answer(self, inbound: Inbound, task_id: str) -> tuple[bool, Outbound]:
        try:
            _tb, pr = self.service.pull_request(task_id, actor=self._actor(inbound))
        except OrchestraError as exc:
            return False, self._about(task_id, inbound, f"⚠️ {exc}")
        if pr.existed:
            return True, self._about(
                task_id, inbound, f"🔗 {task_id}: pull request #{pr.number} was already open\n{pr.url}"
            )
        return True, self._about(task_id, inbound, f"🔗 {task_id}: pull request #{pr.number} opened")

    def _discard_question(self, inbound: Inbound, task_id: str) -> Outbound:
        try:
            tb = self.service.task_branch(task_id, action="discard")
        except OrchestraError as exc:
            return self._reply(inbound, f"🗑 {exc}")
        files = len(tb.task.summary.get("files") or [])
        what = f"{files} changed file{'' if files == 1 else 's'}" if files else "no changed file"
        return self._reply(
            inbound,
            f"🗑 Discard {task_id}? This deletes its worktree and the branch {tb.branch} "
            f"({what}, not merged into {tb.base}).",
            buttons=discard_keyboard(task_id),
        )


def _without(keyboard: Keyboard, keep: tuple[str, ...]) -> Keyboard:
    """The keyboard without its branch buttons (but those in ``keep``)."""
    gone = {"merge", "pr", "discard", "diff"} - set(keep)
    rows = (tuple(b for b in row if b.action not in gone) for row in keyboard)
    return tuple(row for row in rows if row)


__all__ = ["BRANCH_COMMANDS", "BRANCH_TAPS", "PLAN_TAPS", "BranchChat"]
