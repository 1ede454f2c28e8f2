"""``projects:`` in bots.yaml: the repositories tasks run in, and which chats default to which."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from core.config.fields import EnvVarName, StrictModel, Url

# A chat a project is bound to: ``telegram:CHAT``, ``telegram:CHAT/TOPIC`` (a forum topic) or ``slack:CHANNEL``.
_CHAT = r"(telegram:-?\d+(/\d+)?|slack:[A-Z0-9]+)"
_REPO = r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+"


class PullRequestsConfig(StrictModel):
    """Where a project's pull requests would be opened (validated and kept; nothing opens one yet)."""

    provider: Literal["github"] = Field(default="github", description="The forge: github (GitHub or Enterprise).")
    repo: str = Field(description="owner/name of the repository on the forge.")
    token_env: EnvVarName = Field(default="GITHUB_TOKEN", description="The variable holding the API token.")
    api_base_url: Url = Field(default="https://api.github.com", description="The REST API (GitHub Enterprise: yours).")

    @field_validator("repo")
    @classmethod
    def _owner_name(cls, repo: str) -> str:
        if not re.fullmatch(_REPO, repo):
            raise ValueError(f"{repo!r} is not owner/name")
        return repo


class ProjectConfig(StrictModel):
    """One repository: where it is, its base branch, and what its tasks default to."""

    path: str = Field(description="The project's directory (`~` is expanded); its tasks run there.")
    base: str | None = Field(
        default=None, description="The base branch; null: the repository's current branch, read when used."
    )
    remote: str | None = Field(default=None, description="The git remote branches would be pushed to (e.g. origin).")
    pull_requests: PullRequestsConfig | None = Field(default=None, description="Where pull requests would go.")
    agent: str | None = Field(
        default=None, description="The agent for its tasks (an @agent or a rule naming an agent still wins)."
    )
    categories: dict[str, str] = Field(
        default_factory=dict, description="Category -> agent for its tasks, over routing.categories and `agent`."
    )
    isolation: Literal["worktree", "none"] = Field(
        default="worktree",
        description="worktree: a git worktree and branch per task, cut from base; none: tasks share the checkout.",
    )
    chats: list[str] = Field(
        default_factory=list,
        description="Chats whose tasks default to this project: telegram:CHAT, telegram:CHAT/TOPIC, slack:CHANNEL.",
    )

    @field_validator("path")
    @classmethod
    def _not_empty(cls, path: str) -> str:
        if not path.strip():
            raise ValueError("must name a directory")
        return path

    @field_validator("chats")
    @classmethod
    def _chat_refs(cls, chats: list[str]) -> list[str]:
        for chat in chats:
            if not re.fullmatch(_CHAT, chat):
                raise ValueError(f"{chat!r} is not telegram:CHAT_ID, telegram:CHAT_ID/TOPIC_ID or slack:CHANNEL_ID")
        return chats

    def directory(self) -> Path:
        """The path, ``~`` expanded (not resolved: a missing directory is reported, not created)."""
        return Path(self.path).expanduser()


__all__ = ["ProjectConfig", "PullRequestsConfig"]
