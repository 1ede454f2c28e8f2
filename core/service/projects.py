"""Projects: which one a task runs in (``#api``, ``--project``, the chat's default, ``default_project``),
its directory and routing, each chat's ``/project`` default, and what ``/projects`` lists."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import OrchestraError, TaskRejected
from core.models import TaskState
from core.service.base import Actor, ServiceBase

if TYPE_CHECKING:
    from core.config.projects import ProjectConfig
    from core.models import Task
    from core.routing import Router

# A leading ``#name`` shaped like a project's name (``#123`` and ``# Heading`` are task text).
_HASH = re.compile(r"\s*#([A-Za-z][A-Za-z0-9_-]{0,31})(?=[\s:,;]|\Z)[\s:,;]*(.*)\Z", re.DOTALL)
_GIT_TIMEOUT_S = 5


class UnknownProject(TaskRejected):
    """A task or ``/project`` named a project bots.yaml does not have."""


@dataclass(frozen=True)
class ProjectStatus:
    """One project as ``/projects`` and ``orchestra projects`` show it."""

    name: str
    path: str
    base: str  # configured, else the checkout's current branch, else ""
    exists: bool
    git: bool
    running: int
    queued: int  # waiting for a slot or for approval
    default: bool  # bots.yaml's default_project


class ProjectChoice(ServiceBase):
    """Decides a task's project; only reads the config and the store (``/project`` writes one row)."""

    def split_project(self, text: str) -> tuple[str | None, str]:
        """A leading ``#name`` split off the text: (the project, the rest); ``(None, text)`` when there is
        none or bots.yaml has no projects. Raises :class:`UnknownProject` for a ``#name`` it does not have."""
        projects = self.config.projects
        match = _HASH.match(text) if projects else None
        if match is None:
            return None, text
        wanted = match.group(1).lower()
        if wanted not in projects:
            raise UnknownProject(f"unknown project #{match.group(1)}; projects: {self._project_names()}")
        rest = match.group(2).strip()
        if not rest:
            raise TaskRejected(f"nothing to do: say what to do in #{wanted} after its name")
        return wanted, rest

    def choose_project(
        self, text: str, *, project: str | None, cwd: str | None, actor: Actor, parent: Task | None
    ) -> tuple[str | None, str]:
        """The task's project and its text without the ``#name``: a follow-up keeps its parent's; then
        ``#name``, ``project`` (``--project``), the chat's ``/project``, the chat's binding in bots.yaml,
        ``default_project``. An explicit ``cwd`` without a named project means no project."""
        if parent is not None:
            return parent.project, text
        named, text = self.split_project(text)
        if named is not None and project is not None and named != project.lower():
            raise TaskRejected(f"the task says #{named} but --project says {project}; give one")
        chosen = named or (self.check_project(project) if project is not None else None)
        if chosen is not None:
            if cwd is not None:
                raise TaskRejected(f"project {chosen} has its own directory; give the project or --cwd, not both")
            return chosen, text
        if cwd is not None:
            return None, text
        return self.chat_project(actor)[0] or self.config.default_project, text

    def check_project(self, name: str) -> str:
        """The project's name as bots.yaml spells it; :class:`UnknownProject` (one line) if it has none such."""
        if name.lower() not in self.config.projects:
            raise UnknownProject(f"unknown project {name!r}; projects: {self._project_names()}")
        return name.lower()

    def chat_project(self, actor: Actor) -> tuple[str | None, str]:
        """The project a chat's tasks default to, and why: ``/project`` in it, else bots.yaml's ``chats``
        (a forum topic's binding before its chat's). ``(None, "")`` from the CLI or an unbound chat."""
        if not actor.chat:
            return None, ""
        keys = [chat_key(actor.source, actor.chat, actor.topic), chat_key(actor.source, actor.chat)]
        for key in dict.fromkeys(keys):
            chosen = self.store.chat_project(key)
            if chosen is not None and chosen in self.config.projects:  # a project since removed: ignored
                return chosen, "set with /project"
        for key in dict.fromkeys(keys):
            for name, project in self.config.projects.items():
                if key in project.chats:
                    return name, "bound in bots.yaml"
        return None, ""

    def set_chat_project(self, name: str | None, actor: Actor) -> str | None:
        """``/project NAME`` (None: clear it) for the actor's chat or forum topic; audited."""
        if not actor.chat:
            raise OrchestraError("a chat's default project is set in a chat; the CLI takes --project")
        key = chat_key(actor.source, actor.chat, actor.topic)
        with self.store.atomic():
            if name is None:
                self.store.clear_chat_project(key)
            else:
                name = self.check_project(name)
                self.store.set_chat_project(key, name, actor.name, self.clock.now())
            self.audit(actor, "project", None, f"{key} -> {name or 'none'}")
        return name

    def project_workdir(self, name: str) -> str:
        """The project's directory; one line (:class:`TaskRejected`) when it is missing, nothing created."""
        path = self.config.projects[name].directory()
        if not path.is_dir():
            raise TaskRejected(f"project {name}: {path} does not exist (projects.{name}.path in bots.yaml)")
        return str(path.resolve())

    def project_router(self, router: Router, name: str) -> Router:
        """The router for a project's tasks: its ``agent`` for every category, its ``categories`` over that."""
        project = self.config.projects[name]
        if project.agent is None and not project.categories:
            return router
        base = self.config.routing.categories
        agents = {category: project.agent for category in base} if project.agent else dict(base)
        return router.with_agents({**agents, **project.categories}, project.agent or router.default_agent)

    def projects(self) -> list[ProjectStatus]:
        """Every project with its directory's state and its active tasks' counts, in bots.yaml's order."""
        counts = self.store.active_by_project()
        rows = []
        for name, project in self.config.projects.items():
            path = project.directory()
            exists = path.is_dir()
            branch = _current_branch(project) if exists else None
            by_state = counts.get(name, {})
            running = by_state.get(TaskState.RUNNING.value, 0)
            rows.append(
                ProjectStatus(
                    name=name, path=str(path), base=project.base or branch or "", exists=exists,
                    git=branch is not None, running=running, queued=sum(by_state.values()) - running,
                    default=name == self.config.default_project,
                )
            )  # fmt: skip
        return rows

    def _project_names(self) -> str:
        return ", ".join(f"#{name}" for name in self.config.projects) or "none in bots.yaml"


def _current_branch(project: ProjectConfig) -> str | None:
    """The checkout's current branch (``HEAD`` when detached); None when it is not a git repository."""
    try:
        done = subprocess.run(
            ["git", "-C", str(project.directory()), "symbolic-ref", "--short", "-q", "HEAD"],
            capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode == 1:
        return "HEAD"  # a repository on a detached HEAD
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def chat_key(platform: str, chat_id: str, topic: str = "") -> str:
    """How a chat (and a Telegram forum topic in it) is named in a project's ``chats`` and the store."""
    return f"{platform}:{chat_id}" + (f"/{topic}" if topic else "")


__all__ = ["ProjectChoice", "ProjectStatus", "UnknownProject", "chat_key"]
