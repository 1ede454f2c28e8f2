"""Projects in a chat: ``/projects`` (each project, its directory, what runs in it) and ``/project``
(this chat's default: ``/project api``, ``/project none``, alone: which one and why)."""

from __future__ import annotations

from core.commands.answers import Answers
from core.messages import Inbound, Outbound


class ProjectChat(Answers):
    """The project commands (the role is checked before: changing the default is for operators)."""

    def _projects(self, inbound: Inbound, _args: str) -> list[Outbound]:
        rows = self.service.projects()
        if not rows:
            return [self._note(inbound, "📁 No projects in bots.yaml: tasks run in its `workspace`.")]
        lines = [f"📁 Projects ({len(rows)}):"]
        for row in rows:
            git = f"branch {row.base or '?'}" if row.git else "not a git repository"
            state = git if row.exists else "⚠️ missing"
            active = f"{row.running} running, {row.queued} queued" if row.running or row.queued else "idle"
            mark = " (default)" if row.default else ""
            lines.append(f"#{row.name}{mark} · {row.path} · {state} · {active}")
        chosen, why = self.service.chat_project(self._actor(inbound))
        if chosen:
            lines.append(f"This chat: #{chosen} ({why}).")
        lines.append(f"Start a task with #name to pick one; {self.syntax.command('project', 'NAME')} sets this chat's.")
        return [self._note(inbound, "\n".join(lines))]

    def _project(self, inbound: Inbound, args: str) -> list[Outbound]:
        actor = self._actor(inbound)
        word = args.strip().split(maxsplit=1)[0].lstrip("#") if args.strip() else ""
        if not word:
            chosen, why = self.service.chat_project(actor)
            fallback = self.service.config.default_project
            if chosen:
                said = f"📁 This chat's tasks go to #{chosen} ({why})."
            elif fallback:
                said = f"📁 This chat has no project of its own; tasks go to #{fallback} (default_project)."
            else:
                said = "📁 This chat has no project; tasks run in bots.yaml's workspace."
            usage, clear = self.syntax.command("project", "NAME"), self.syntax.command("project", "none")
            return [self._note(inbound, f"{said}\n{usage} sets one, {clear} clears it.")]
        if word.lower() in ("none", "off", "clear"):
            self.service.set_chat_project(None, actor)
            chosen, why = self.service.chat_project(actor)
            after = f" Tasks here still go to #{chosen} ({why})." if chosen else ""
            return [self._reply(inbound, f"📁 This chat's project is cleared (by {inbound.user_name}).{after}")]
        name = self.service.set_chat_project(word, actor)
        return [self._reply(inbound, f"📁 Tasks from this chat now go to #{name} (set by {inbound.user_name}).")]


__all__ = ["ProjectChat"]
