"""What Orchestra knows of each agent CLI it has a recipe for: the package at the version it is
tested with, the variable its key is read from, where its endpoint is set.

One table, so ``orchestra agents`` (the install command of a missing CLI) and ``orchestra agents
add`` (a working entry for bots.yaml) say the same thing; the Makefile's pins (``make agents``,
what the real-CLI tests run) must agree with it, and a test checks that they do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class CliRecipe:
    """One agent CLI: how to install it at its tested version and how an entry for it is written."""

    kind: str
    binary: str  # the program name the package puts on PATH
    packages: tuple[str, ...]  # pinned, exactly as the Makefile installs them
    installer: Literal["npm", "pipx"]
    makefile_var: str  # the Makefile variable that pins the same packages
    key_env: str  # the variable the CLI reads its API key from
    base_url_env: str  # the variable that points it at another endpoint
    # True: the adapter reads the endpoint from the entry's literal ``env`` when it builds the
    # command line (it writes the CLI's own config from it), so a variable of ours cannot set it.
    base_url_literal: bool = False
    model: str | None = None  # the model a new entry asks for (None: the CLI's own default)
    # With an endpoint of one's own: the key's variable changes, and these literals go in ``env``.
    endpoint_key_env: str = ""
    endpoint_env: dict[str, str] = field(default_factory=dict)
    note: str = ""  # what an install needs besides the command

    def install_command(self) -> str:
        """The command that installs it at the tested version (global, for one person's machine)."""
        if self.installer == "pipx":
            return "pipx install " + " ".join(self.packages)
        command = "npm install -g " + " ".join(self.packages)
        return f"{command} && {self.note}" if self.note else command


RECIPES: dict[str, CliRecipe] = {
    recipe.kind: recipe
    for recipe in (
        CliRecipe(
            "claude", "claude", ("@anthropic-ai/claude-code@2.1.332",), "npm", "CLAUDE_CODE",
            "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
        ),
        CliRecipe(
            "codex", "codex", ("@openai/codex@0.169.0",), "npm", "CODEX",
            "OPENAI_API_KEY", "OPENAI_BASE_URL", base_url_literal=True, model="gpt-5-codex",
        ),
        CliRecipe(
            "gemini", "gemini", ("@google/gemini-cli@0.61.0",), "npm", "GEMINI",
            "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", model="gemini-2.5-pro",
        ),
        CliRecipe(
            "qwen", "qwen", ("@qwen-code/qwen-code@0.24.4",), "npm", "QWEN",
            "OPENAI_API_KEY", "OPENAI_BASE_URL", model="qwen3-coder-plus",
        ),
        CliRecipe(
            "opencode", "opencode", ("opencode-linux-x64@1.18.34",), "npm", "OPENCODE",
            "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", base_url_literal=True, model="anthropic/claude-sonnet-4-5",
            endpoint_key_env="OPENAI_API_KEY",
            # the bare binary (its wrapper stops at an older version) declares no command of its own
            note='ln -s "$(npm root -g)/opencode-linux-x64/bin/opencode" ~/.local/bin/opencode',
        ),
        CliRecipe(
            "droid", "droid", ("@factory/cli@0.225.1", "@factory/cli-linux-x64@0.225.2"), "npm", "DROID",
            "FACTORY_API_KEY", "OPENAI_BASE_URL", base_url_literal=True, endpoint_key_env="OPENAI_API_KEY",
        ),
        CliRecipe(
            "aider", "aider", ("aider-chat==0.86.2",), "pipx", "AIDER",
            "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", base_url_literal=True, model="sonnet",
            endpoint_key_env="OPENAI_API_KEY",
        ),
        CliRecipe(
            "copilot", "copilot", ("@github/copilot@1.0.102",), "npm", "COPILOT",
            "COPILOT_GITHUB_TOKEN", "COPILOT_PROVIDER_BASE_URL", endpoint_key_env="COPILOT_PROVIDER_API_KEY",
            endpoint_env={"COPILOT_OFFLINE": "true", "COPILOT_PROVIDER_TYPE": "openai",
                          "COPILOT_PROVIDER_WIRE_API": "completions"},
        ),
    )
}  # fmt: skip


def recipe_for(kind: str) -> CliRecipe | None:
    """The recipe for an agent kind, or None (``command``, or a CLI with no tested version)."""
    return RECIPES.get(kind)


__all__ = ["RECIPES", "CliRecipe", "recipe_for"]
