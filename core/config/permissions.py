"""bots.yaml ``permissions``: which tool calls run, which are asked on the phone, which are refused.

The rule language and how layers combine are ``core.permissions.policy``'s; here are the shipped
defaults (what a careful person would pick) and their validation. A list you write replaces the
default list of the same name; `orchestra config show` prints what is in force.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from core.config.fields import Seconds, StrictModel

# fmt: off
# Reading and editing the task's own folder, planning, and commands that test, lint, build or look.
DEFAULT_ALLOW = [
    "Read(./**)",
    "Edit(./**)",
    *(f"Bash({c})" for c in (
        "pytest *", "python -m pytest *", "python3 -m pytest *", "tox *", "nox *", "unittest *",
        "python -m unittest *", "python3 -m unittest *",
        "npm test *", "npm run test *", "npm run lint *", "npm run build *", "npm run typecheck *",
        "yarn test *", "yarn lint *", "yarn build *", "pnpm test *", "pnpm lint *", "pnpm build *",
        "npx jest *", "npx vitest *", "npx tsc *", "npx eslint *", "npx prettier *",
        "make", "make test *", "make check *", "make lint *", "make build *", "make all *",
        "cargo test *", "cargo build *", "cargo check *", "cargo clippy *", "cargo fmt *",
        "go test *", "go build *", "go vet *", "gofmt *",
        "ruff *", "black *", "isort *", "mypy *", "pyright *", "flake8 *", "pylint *", "eslint *", "tsc *",
        "prettier *",
        "git status *", "git diff *", "git log *", "git show *", "git branch *", "git add *", "git commit *",
        "git rev-parse *", "git ls-files *", "git blame *", "git grep *", "git stash list *",
        "ls *", "pwd", "cd *", "cat *", "head *", "tail *", "wc *", "grep *", "rg *", "find *", "tree *",
        "echo *", "printf *", "true", "false", "test *", "[ *", "diff *", "sort *", "uniq *", "cut *",
        "sed -n *", "awk *", "which *", "command -v *", "type *", "file *", "stat *", "du *", "date *",
        "mkdir *", "touch *", "cp *", "mv *",
    )),
    # Planning, subagents (their own calls are judged one by one), skills and tool lookup, per CLI.
    "TodoWrite", "Task", "Agent", "ExitPlanMode", "TaskOutput", "TaskStop", "ToolSearch", "Skill", "ListAgents",
    "ReportFindings",
    "write_todos", "update_topic", "enter_plan_mode", "activate_skill", "invoke_agent",
    "list_background_processes", "read_background_output",
    "agent", "skill", "tool_search", "get_goal", "update_goal", "create_goal", "list_agents",
    "todowrite", "todoread", "task",
]
# Network, installing packages, publishing, rewriting history, and finds that run or delete.
DEFAULT_ASK = [
    *(f"Bash({c})" for c in (
        "curl *", "wget *", "ssh *", "scp *", "rsync *", "nc *", "telnet *", "ftp *",
        "pip install *", "pip3 install *", "python -m pip *", "python3 -m pip *", "uv pip *", "uv add *",
        "poetry add *", "npm install *", "npm i *", "npm ci *", "npm publish *", "yarn add *", "pnpm add *",
        "cargo install *", "cargo publish *", "go install *", "go get *", "gem install *",
        "apt *", "apt-get *", "brew *", "docker *",
        "git push *", "git pull *", "git fetch *", "git clone *", "git remote *", "git reset --hard *",
        "git clean *", "git checkout *", "git rebase *",
        "find * -delete*", "find * -exec *", "find * -execdir *", "rm *",
        "* .git/hooks*", "* .git/config*",
    )),
    # Git runs these on an allowed commit or fetch: an edit there is code that runs later, unasked.
    "Edit(./.git/**)",
    "WebFetch",
    "WebSearch",
]
# What no one wants an agent to do unattended or by a slip of a tap.
DEFAULT_DENY = [
    *(f"Bash({c})" for c in (
        "rm -rf /", "rm -rf /*", "rm -rf ~", "rm -rf ~/*", "rm -rf $HOME*", "rm -rf --no-preserve-root *",
        "sudo *", "su *", "doas *", "mkfs*", "dd * of=/dev/*", "* > /dev/sd*", "chmod -R 777 /*",
        "chown -R * /*", ":(){*", "* ~/.ssh*", "*/.ssh/*", "shutdown *", "reboot *", "halt *", "poweroff *",
    )),
    "Edit(~/.ssh/**)",
    "Read(~/.ssh/**)",
    "Edit(~/.bashrc)",
    "Edit(~/.profile)",
    "Edit(~/.zshrc)",
]
# fmt: on


def _check_rules(rules: list[str]) -> list[str]:
    from core.permissions.policy import parse_rule

    for rule in rules:
        parse_rule(rule)
    return rules


class RuleLists(StrictModel):
    """allow / ask / deny lists for one agent or one category, laid over the global ones."""

    allow: list[str] = Field(default_factory=list, description="Calls that run without asking.")
    ask: list[str] = Field(default_factory=list, description="Calls asked on the phone first.")
    deny: list[str] = Field(default_factory=list, description="Calls refused without asking (wins over every layer).")

    @field_validator("allow", "ask", "deny")
    @classmethod
    def _rules(cls, rules: list[str]) -> list[str]:
        return _check_rules(rules)


class PermissionsConfig(RuleLists):
    """The global policy: the three lists, what an unanswered question means, and per-category lists."""

    allow: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOW), description="Calls that run without asking.")
    ask: list[str] = Field(default_factory=lambda: list(DEFAULT_ASK), description="Calls asked on the phone first.")
    deny: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DENY), description="Calls refused without asking (wins over every layer)."
    )
    ask_timeout_s: Seconds = Field(
        default=600, gt=0, description="How long a question waits for an answer before on_timeout applies."
    )
    on_timeout: Literal["deny", "allow"] = Field(
        default="deny", description="What an unanswered question means; deny is the safe choice."
    )
    categories: dict[str, RuleLists] = Field(
        default_factory=dict, description="Lists for tasks of one category (e.g. devops), over the agent's and these."
    )
