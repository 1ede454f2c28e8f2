"""``orchestra agents`` (and ``/agents``), ``agents add KIND`` and ``agents test NAME``.

Real parts: CLI scripts on a PATH of the test's own, the shipped bots.yaml copied and edited as
text, the real config loader, and for the end to end a fresh data directory, the fake model
server and a real agent CLI from ``.agents/`` (skipped when absent), run as a user would.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from core.agents.base import Usage
from core.agents.catalog import RECIPES
from core.commands.answers import agent_line
from core.config import load_config
from core.config.add_agent import insert_agent
from core.config.facts import PACKAGED_CONFIG
from core.pricing import price_usd
from core.text import money
from tests.conftest import ROOT, requires_tmux
from tests.fakes.model_server import CACHED_TOKENS, OUTPUT_TOKENS, PROMPT_TOKENS, FakeModelServer

SECRET = "sk-orchestra-test-value-never-shown"


def _script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of the test's own: its scripts, then the system's basics (no agent CLI of this machine)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return folder


def _agents_app(make_app: Any, **extra: Any) -> Any:
    return make_app(
        agents__claude={"kind": "claude", "command": "claude", "env_from": {"ANTHROPIC_API_KEY": "TEST_KEY_A"}},
        agents__codex={
            "kind": "codex",
            "command": "codex",
            "env": {"OPENAI_BASE_URL": "https://user:pw@models.example.com/v1?k=1"},
            "env_from": {"OPENAI_API_KEY": "TEST_KEY_B"},
        },
        routing__categories={"tests": "codex", "docs": "claude"},
        **extra,
    )


# -- the listing -------------------------------------------------------------------------------


def test_listing_shows_installed_and_missing_agents_needs_and_install_commands(
    make_app: Any, bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = tmp_path / "probes"
    _script(bin_dir, "codex", f'echo probe >> {count}\necho "codex-cli 9.9.9"')
    monkeypatch.delenv("TEST_KEY_A", raising=False)
    monkeypatch.setenv("TEST_KEY_B", SECRET)
    app = _agents_app(make_app)

    infos = {info.name: info for info in app.service.agents()}

    codex, claude = infos["codex"], infos["claude"]
    assert codex.path == str(bin_dir / "codex") and codex.version == "codex-cli 9.9.9"
    assert codex.install is None and codex.ready
    assert [(n.var, n.source, n.set) for n in codex.needs] == [("OPENAI_API_KEY", "TEST_KEY_B", True)]
    assert codex.endpoint is not None
    assert codex.endpoint.value == "https://models.example.com/v1", "no user, password or query shown"
    assert codex.categories == ("tests",) and not codex.default
    assert claude.path is None and claude.version is None and not claude.ready
    assert claude.install == "npm install -g @anthropic-ai/claude-code@2.1.332"
    assert claude.missing == ["TEST_KEY_A"]
    assert infos["standin"].default and infos["standin"].version == "2.1.332 (Claude Code stand-in)"
    assert infos["echo"].install is None, "a program of one's own has no install command"
    dumped = json.dumps([info.to_dict() for info in infos.values()])
    assert SECRET not in dumped and "pw@" not in dumped

    # The chat: one short line per agent, from the same query.
    assert agent_line(codex) == "• @codex: codex · codex-cli 9.9.9 · 0/2 running · for tests"
    assert agent_line(claude).startswith("• @claude: claude · CLI not found: npm install -g @anthropic-ai/")

    # Cached per binary: a second listing asks no CLI; a changed binary is asked again.
    app.service.agents()
    assert count.read_text().count("probe") == 1
    script = bin_dir / "codex"
    os.utime(script, ns=(time.time_ns(), time.time_ns() + 10**9))
    app.service.agents()
    assert count.read_text().count("probe") == 2


def test_a_hanging_version_probe_costs_the_bound_and_no_more(make_app: Any, bin_dir: Path) -> None:
    _script(bin_dir, "codex", "sleep 30")
    _script(bin_dir, "claude", 'echo "2.1.332 (Claude Code)"')
    app = _agents_app(make_app)

    started = time.monotonic()
    infos = {info.name: info for info in app.service.agents(bound_s=1.0)}

    assert time.monotonic() - started < 3
    assert infos["codex"].installed and infos["codex"].version is None
    assert infos["claude"].version == "2.1.332 (Claude Code)"


def test_cost_so_far_per_agent(make_app: Any, bin_dir: Path) -> None:
    app = _agents_app(make_app)
    for i, usd in enumerate((0.10, 0.30, None)):
        app.store.record_cost({"task_id": f"t{i}", "ts": time.time(), "agent": "codex",
                               "category": "tests", "cost_usd": usd})  # fmt: skip

    codex = next(info for info in app.service.agents(versions=False) if info.name == "codex")

    assert (codex.tasks, codex.unknown_cost) == (3, 1)
    assert codex.cost_usd == pytest.approx(0.40) and codex.per_task_usd == pytest.approx(0.20)
    assert "3 tasks, $0.20/task" in agent_line(codex)


def test_cli_listing_and_json(make_app: Any, bin_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = _agents_app(make_app)
    config = str(app.config_path)

    assert main(["--config", config, "agents"]) == 0
    out = capsys.readouterr().out
    assert "install: npm install -g @openai/codex@0.169.0" in out
    assert "key: OPENAI_API_KEY from $TEST_KEY_B (NOT SET)" in out
    assert main(["--config", config, "agents", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["codex"]["installed"] is False and rows["codex"]["missing"] == ["TEST_KEY_B"]


def test_every_install_command_pins_what_the_makefile_pins() -> None:
    """One table in code; the Makefile (``make agents``, what the real-CLI tests run) must agree."""
    pins = dict(re.findall(r"^([A-Z_]+) = (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE))
    for kind, recipe in RECIPES.items():
        assert tuple(pins[recipe.makefile_var].split()) == recipe.packages, kind
        for package in recipe.packages:
            assert package in recipe.install_command()
    installed = {pins[var] for var in pins if var not in ("AGENTS", "NPM_INSTALL")}
    assert installed == {" ".join(r.packages) for r in RECIPES.values()}, "a pinned CLI has no recipe"


# -- agents add --------------------------------------------------------------------------------


@pytest.fixture
def shipped(tmp_path: Path, home: Path) -> Path:
    copy = tmp_path / "mine" / "bots.yaml"
    copy.parent.mkdir()
    shutil.copyfile(ROOT / "bots.yaml", copy)
    return copy


def _comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("#")]


def _comments_but_ours(text: str) -> list[str]:
    return [line for line in _comments(text) if "added by `orchestra agents add" not in line]


def test_add_keeps_every_comment_validates_and_maps_no_category(
    shipped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = shipped.read_text()

    code = main(["--config", str(shipped), "agents", "add", "codex", "--name", "codex-work", "--key-env", "MY_KEY"])

    assert code == 0, capsys.readouterr().err
    after = shipped.read_text()
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    changes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    assert [op[0] for op in changes] == ["insert"], "one block inserted, every shipped line kept in order"
    added = after.splitlines()[changes[0][3] : changes[0][4]]
    assert all(line.startswith("  ") for line in added) and len(added) == 7, added
    assert after.index(added[0]) < after.index("\nrouting:"), "inside the agents block"
    assert len(_comments(after)) == len(_comments(before)) + 1
    config, _ = load_config(shipped)
    entry = config.agents["codex-work"]
    assert (entry.kind, entry.command, entry.model) == ("codex", "codex", "gpt-5-codex")
    assert dict(entry.env_from) == {"OPENAI_API_KEY": "MY_KEY"} and not entry.env
    assert "codex-work" not in config.routing.categories.values()
    assert config.routing.default_agent == "standin"
    out = capsys.readouterr().out
    assert f"added agent codex-work (codex) to {shipped}" in out
    assert "npm install -g @openai/codex@0.169.0" in out and "set MY_KEY" in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["codex"], "agents.codex is in"),
        (["codex", "--name", "Bad Name"], "agent names are lowercase"),
        (["codex", "--name", "c2", "--base-url-env", "MY_URL"], "use --base-url URL"),
        (["codex", "--name", "c2", "--base-url", "https://me:pw@example.com/v1"], "no secret in bots.yaml"),
        (["nosuchkind"], "no recipe for kind 'nosuchkind'"),
    ],
)
def test_add_refuses_in_one_line_and_changes_nothing(
    shipped: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    before = shipped.read_bytes()

    assert main(["--config", str(shipped), "agents", "add", *argv]) == 1

    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert shipped.read_bytes() == before
    assert [p.name for p in shipped.parent.iterdir()] == ["bots.yaml"], "no temporary file left"


def test_add_with_the_packaged_config_in_use_writes_one_into_the_data_dir(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert load_config()[1] == PACKAGED_CONFIG

    code = main(["agents", "add", "copilot", "--name", "pilot", "--key-env", "K", "--base-url", "http://h:1/v1"])

    assert code == 0
    written = home / "bots.yaml"
    assert load_config()[1] == written and not (work / "bots.yaml").exists()
    entry = load_config()[0].agents["pilot"]
    assert dict(entry.env_from) == {"COPILOT_PROVIDER_API_KEY": "K"}
    assert entry.env["COPILOT_OFFLINE"] == "true" and entry.env["COPILOT_PROVIDER_BASE_URL"] == "http://h:1/v1"
    assert _comments_but_ours(written.read_text()) == _comments(PACKAGED_CONFIG.read_text())


def test_insert_into_a_file_with_an_empty_or_no_agents_block() -> None:
    entry = {"kind": "claude", "command": "claude"}
    for text in ("version: 1\nagents: {}  # none yet\nrouting: {}\n", "version: 1\n# the end"):
        data = yaml.safe_load(insert_agent(text, "c", entry))
        assert data["agents"] == {"c": entry}


# -- agents test -------------------------------------------------------------------------------


def test_agent_test_names_what_is_missing_in_one_line(
    make_app: Any, bin_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(bin_dir, "codex", 'echo "codex-cli 9.9.9"')
    monkeypatch.delenv("TEST_KEY_B", raising=False)
    config = str(_agents_app(make_app).config_path)

    assert main(["--config", config, "agents", "test", "claude"]) == 1
    assert capsys.readouterr().err == (
        "orchestra: claude: claude is not installed: npm install -g @anthropic-ai/claude-code@2.1.332\n"
    )
    assert main(["--config", config, "agents", "test", "codex"]) == 1
    assert "codex: set TEST_KEY_B first" in capsys.readouterr().err
    assert main(["--config", config, "agents", "test", "nobody"]) == 1
    assert "no agent 'nobody'" in capsys.readouterr().err


@requires_tmux
def test_agent_test_on_the_standin_prints_reply_tokens_and_cost(
    make_app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(make_app().config_path)

    assert main(["--config", config, "agents", "test", "standin"]) == 0

    out = capsys.readouterr().out
    assert "standin: 'Reply with OK and nothing else.'" in out
    assert re.search(r"tokens: [\d,]+ in .* [\d,]+ out", out) and "cost: $" in out
    assert "standin works (t1)." in out


# -- end to end: a fresh data directory, the fake model server, a real CLI ----------------------

AGENTS_BIN = Path(os.environ.get("ORCHESTRA_AGENTS_DIR") or ROOT / ".agents") / "node_modules" / ".bin"
KEY_VAR = "ORCHESTRA_TEST_FAKE_KEY"
# kind, the base URL's path on the fake server, model, cost of one model call (None: priced from tokens)
REAL = [
    ("claude", "", "claude-haiku-4-5", (800 * 1.0 + 200 * 0.1 + 50 * 5.0) / 1e6),
    ("codex", "/v1", "gpt-5", None),
]


@requires_tmux
@pytest.mark.real_cli
@pytest.mark.parametrize(("kind", "path", "model", "per_call"), REAL, ids=[r[0] for r in REAL])
def test_add_then_test_from_a_fresh_data_dir_with_a_real_cli(
    tmp_path: Path, kind: str, path: str, model: str, per_call: float | None
) -> None:
    if not (AGENTS_BIN / kind).exists():
        pytest.skip(f"{kind} is not installed under {AGENTS_BIN}: run `make agents-ci`")
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    (tmp_path / "cli-home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "ORCHESTRA_", "TMUX"))}
    env.update(
        PATH=f"{AGENTS_BIN}:{env['PATH']}", HOME=str(tmp_path / "cli-home"), ORCHESTRA_HOME=str(data),
        TMUX_TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "cache"),
        TMPDIR="/dev/shm",  # Codex's bubblewrap helper refuses a CODEX_HOME under the temp dir
        **{KEY_VAR: "sk-orchestra-fake-key"},
    )  # fmt: skip

    def orchestra(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "bot", *args]
        return subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=240, check=False)

    try:
        with FakeModelServer(workdir=str(work)) as server:
            added = orchestra("agents", "add", kind, "--name", f"my-{kind}", "--key-env", KEY_VAR,
                              "--base-url", server.url + path, "--model", model)  # fmt: skip
            assert added.returncode == 0, added.stderr
            # in the folder the fake model writes its file to (Claude Code's Write takes an absolute path)
            tried = orchestra("agents", "test", f"my-{kind}", "--cwd", str(work))
    finally:
        subprocess.run(["tmux", "-L", "orchestra", "kill-server"], env=env, capture_output=True, check=False)

    assert tried.returncode == 0, tried.stdout + tried.stderr
    written = data / "bots.yaml"
    assert load_config(written)[0].agents[f"my-{kind}"].env_from == {
        {"claude": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY"}[kind]: KEY_VAR
    }
    assert "sk-orchestra-fake-key" not in written.read_text()
    assert _comments_but_ours(written.read_text()) == _comments(PACKAGED_CONFIG.read_text())
    calls = len(server.model_calls())
    assert calls >= 1
    usage = Usage(PROMPT_TOKENS * calls, OUTPUT_TOKENS * calls, cache_read_tokens=CACHED_TOKENS * calls)
    cost = per_call * calls if per_call is not None else price_usd(usage, model)
    assert cost is not None
    out = tried.stdout
    assert (
        f"tokens: {usage.input_tokens:,} in ({usage.cache_read_tokens:,} cached) · {usage.output_tokens:,} out" in out
    )
    assert f"cost: {money(cost)} (" in out, out
    assert f"my-{kind} works (t1)." in out
    assert (work / "hello.txt").read_text() == "hello\n", "the agent did the fake model's work"
