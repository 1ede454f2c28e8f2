"""bots.yaml ``triggers``: an HTTP endpoint (off by default) where signed webhooks start tasks."""

from __future__ import annotations

from pydantic import Field

from core.config.fields import EnvVarName, StrictModel


class TriggerRule(StrictModel):
    """An event that starts a task: what it must be, and the task's text made from the payload."""

    event: str = Field(description="GitHub's X-GitHub-Event (issues, workflow_run, …), or a generic event name.")
    action: str | None = Field(default=None, description="The payload's `action` it must have (e.g. labeled).")
    label: str | None = Field(default=None, description="For issues: the label just added (`label.name`).")
    conclusion: str | None = Field(default=None, description="For workflow_run: its conclusion (e.g. failure).")
    task: str = Field(description="The task's text; {issue.title}, {workflow_run.html_url}, … come from the payload.")
    project: str | None = None
    agent: str | None = None


class TriggersConfig(StrictModel):
    """Webhooks that start tasks: GitHub's (``X-Hub-Signature-256``) and a generic one (a shared secret)."""

    enabled: bool = False
    listen: str = "127.0.0.1"
    port: int = Field(default=8766, ge=1, le=65535)
    github_secret_env: EnvVarName | None = Field(default=None, description="The variable holding GitHub's secret.")
    generic_secret_env: EnvVarName | None = Field(default=None, description="The variable holding the shared secret.")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, le=25_000_000)
    rules: list[TriggerRule] = Field(default_factory=list)


__all__ = ["TriggerRule", "TriggersConfig"]
