"""``projects:`` in bots.yaml: the repositories tasks run in, and which chats default to which."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.config.fields import EnvVarName, StrictModel, Url

# A chat a project is bound to: ``telegram:CHAT``, ``telegram:CHAT/TOPIC`` (a forum topic) or ``slack:CHANNEL``.
_CHAT = r"(telegram:-?\d+(/\d+)?|slack:[A-Z0-9]+)"
_REPO = r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+"  # gitlab allows subgroups; github is checked below
_API_BASE = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}


class PullRequestsConfig(StrictModel):
    """Where a project's pull requests are opened (``core.pulls``): the forge, the repository, the token.

    GitHub (or Enterprise) pull requests and GitLab merge requests, through the forge's REST API
    or, for GitHub only, the ``gh`` CLI. ``token_env`` and ``api_base_url`` default per provider
    (GITHUB_TOKEN and api.github.com; GITLAB_TOKEN and gitlab.com/api/v4); the token's value is
    read from the environment when a pull request is opened, never written here.
    """

    provider: Literal["github", "gitlab"] = Field(
        default="github", description="The forge: github (GitHub or Enterprise) or gitlab (GitLab or self-managed)."
    )
    repo: str = Field(description="owner/name of the repository on the forge (gitlab: group/subgroup/name too).")
    token_env: EnvVarName = Field(
        default="GITHUB_TOKEN",
        description="The variable holding the API token (default GITHUB_TOKEN; gitlab: GITLAB_TOKEN).",
    )
    api_base_url: Url = Field(
        default=_API_BASE["github"],
        description=f"The REST API (default {_API_BASE['github']}; gitlab: {_API_BASE['gitlab']}; self-hosted: yours).",
    )
    client: Literal["api", "gh"] = Field(
        default="api",
        description="api: the REST API, with the token; gh: the GitHub CLI (its own login, or the token when set).",
    )
    draft: bool = Field(default=False, description="Open pull requests as drafts.")

    @model_validator(mode="before")
    @classmethod
    def _provider_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("provider") == "gitlab":
            data = {"token_env": "GITLAB_TOKEN", "api_base_url": _API_BASE["gitlab"]} | data
        return data

    @field_validator("repo")
    @classmethod
    def _owner_name(cls, repo: str) -> str:
        if not re.fullmatch(_REPO, repo):
            raise ValueError(f"{repo!r} is not owner/name")
        return repo

    @model_validator(mode="after")
    def _fits_the_provider(self) -> PullRequestsConfig:
        if self.provider == "github" and self.repo.count("/") > 1:
            raise ValueError(f"repo {self.repo!r} is not owner/name (only gitlab has subgroups)")
        if self.client == "gh" and self.provider != "github":
            raise ValueError("client gh opens GitHub pull requests only; use client: api for gitlab")
        return self


class ProjectConfig(StrictModel):
    """One repository: where it is, its base branch, and what its tasks default to."""

    path: str = Field(description="The project's directory (`~` is expanded); its tasks run there.")
    base: str | None = Field(
        default=None, description="The base branch; null: the repository's current branch, read when used."
    )
    remote: str | None = Field(default=None, description="The git remote a task's branch is pushed to (e.g. origin).")
    pull_requests: PullRequestsConfig | None = Field(default=None, description="Where pull requests are opened.")
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
