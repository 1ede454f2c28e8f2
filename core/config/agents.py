"""bots.yaml ``agents``: how each agent CLI is started, and what it may see of our environment."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from core.config.fields import EnvVarName, StrictModel
from core.config.permissions import RuleLists

AGENT_KINDS = ("claude", "codex", "gemini", "qwen", "opencode", "droid", "aider", "copilot", "cursor", "command")
_SECRETISH = r"(?i)(KEY|TOKEN|SECRET|PASSWORD)"
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent  # the folder holding core/ and bot/


class AgentConfig(StrictModel):
    """One agent: a CLI Orchestra runs headless in a tmux window, one task at a time per window."""

    kind: Literal["claude", "codex", "gemini", "qwen", "opencode", "droid", "aider", "copilot", "cursor", "command"] = (
        Field(
            default="command",
            description="Which CLI this is: decides its command line and how its output and cost are read; "
            "`command` runs any program ({task} becomes one argument, {task_file} a file, else stdin).",
        )
    )
    command: str = Field(
        min_length=1,
        description="The program, split into words shell-style but never run by a shell; "
        "{python} is Orchestra's interpreter and {orchestra} the folder of its package.",
    )
    args: list[str] = Field(default_factory=list, description="Extra flags, appended after Orchestra's own.")
    env: dict[EnvVarName, str] = Field(
        default_factory=dict,
        description="Literal variables for the agent; no secrets: a name with KEY, TOKEN, SECRET or PASSWORD "
        "in it is refused (use env_from).",
    )
    env_from: dict[EnvVarName, EnvVarName] = Field(
        default_factory=dict,
        description="Secrets by name: the agent's variable -> the variable of ours that holds the value "
        "(read at run time, handed over in a private file, redacted everywhere).",
    )
    env_pass: list[EnvVarName] = Field(
        default_factory=list, description="More of our variables the agent may see, by name."
    )
    sandbox: Literal["none", "bwrap"] = Field(
        default="none",
        description="`bwrap`: run it inside bubblewrap (the task's directory writable, the rest of the file "
        "system read-only, the data dir and ~/.ssh and other secret stores hidden, the network kept).",
    )
    model: str | None = Field(default=None, description="The model to ask the CLI for; null: the CLI's own default.")
    max_concurrent: int = Field(default=2, ge=1, description="Tasks of this agent running at once.")
    enabled: bool = Field(default=True, description="A disabled agent is never routed to.")
    host: str | None = Field(
        default=None, description="The host its tasks run on (a host of `hosts:`); null: the category's, else local."
    )
    description: str = Field(default="", description="Free text shown after the agent in /agents.")
    hook: bool = Field(
        default=True,
        description="Relay each tool call to the permission policy (and the phone) through the CLI's pre-tool "
        "hook; false: the CLI's own unattended mode decides (README Permissions says what each does).",
    )
    permissions: RuleLists = Field(
        default_factory=RuleLists, description="allow / ask / deny rules for this agent, over the global ones."
    )

    @field_validator("command")
    @classmethod
    def _splits(cls, command: str) -> str:
        import shlex

        try:
            words = shlex.split(command)
        except ValueError as exc:  # an unterminated quote or a trailing backslash
            raise ValueError(f"cannot split {command!r} into words ({str(exc).lower()})") from None
        if not words:
            raise ValueError("names no program")
        return command

    @field_validator("env")
    @classmethod
    def _no_secret_values(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if re.search(_SECRETISH, key):
                raise ValueError(f"{key} looks like a secret: name the variable that holds it under env_from instead")
        return env


def expand_command(command: str) -> str:
    """``{python}`` is the interpreter running Orchestra, ``{orchestra}`` the folder of its package."""
    return command.replace("{python}", sys.executable).replace("{orchestra}", str(_PACKAGE_ROOT))


def command_argv(command: str) -> list[str]:
    """Split an agent's ``command`` into argv words (shell-style quoting, never run by a shell)."""
    import shlex

    return [expand_command(word) for word in shlex.split(command)] or [""]


def agent_installed(command: str) -> bool:
    """True when the agent's executable can be found (absolute path or on PATH)."""
    import shutil

    first = command_argv(command)[0]
    return bool(first) and shutil.which(first) is not None
