"""The adapters of the six CLIs beside Claude Code: command lines, config files, registries.

What the CLIs print is replayed in ``test_agents_replay.py``; here is what Orchestra hands them.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.agents import ADAPTERS, PARSERS, adapter_for, parser_for
from core.agents.base import AgentSettings, parser_ref
from core.config import AGENT_KINDS, parse_config
from core.engine import write_agent_files

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "Fix it; rm -rf ~ $(id) `id`\nsecond line {task} %s"


def agent(kind: str, tmp_path: Path, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {"name": kind, "kind": kind, "command": kind, "config_dir": str(tmp_path / kind)}
    values.update(overrides)
    return AgentSettings(**values)


# -- Codex -----------------------------------------------------------------------------------


def test_codex_runs_write_enabled_with_its_own_home(tmp_path: Path) -> None:
    settings = agent("codex", tmp_path, model="gpt-5", env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    inv = adapter_for("codex").build(HOSTILE, settings)

    home = str(tmp_path / "codex")
    assert inv.argv == [
        "codex", "exec", "--json", "--skip-git-repo-check", "-s", "workspace-write", "-m", "gpt-5", HOSTILE,
    ]  # fmt: skip
    assert inv.prompt_mode == "arg"
    assert inv.env == {"CODEX_HOME": home, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    config = inv.files[f"{home}/config.toml"]
    assert config.index('model_provider = "orchestra"') < config.index("[")  # root keys before tables
    assert 'base_url = "http://127.0.0.1:9/v1"' in config
    assert 'env_key = "OPENAI_API_KEY"' in config and 'wire_api = "responses"' in config
    assert "check_for_update_on_startup = false" in config
    assert parser_for(inv.parser).__class__.__name__ == "CodexParser"
    assert json.loads(inv.parser.split(" ", 1)[1]) == {"home": home, "model": "gpt-5"}


def test_codex_full_auto_is_dropped_and_user_sandbox_wins(tmp_path: Path) -> None:
    inv = adapter_for("codex").build("go", agent("codex", tmp_path, args=["--full-auto"]))
    assert "--full-auto" not in inv.argv and inv.argv[4:6] == ["-s", "workspace-write"]
    own = adapter_for("codex").build(
        "go", agent("codex", tmp_path, args=["--dangerously-bypass-approvals-and-sandbox"])
    )
    assert "-s" not in own.argv and "--dangerously-bypass-approvals-and-sandbox" in own.argv


def test_codex_resume_stdin_retries_and_user_home(tmp_path: Path) -> None:
    settings = agent("codex", tmp_path, env={"ORCHESTRA_MAX_RETRIES": "0"})
    inv = adapter_for("codex").build("-v is not a flag here", settings, resume="0199-abc")
    assert inv.argv[-3:] == ["resume", "0199-abc", "-"]
    assert inv.prompt_mode == "stdin"
    assert "ORCHESTRA_MAX_RETRIES" not in inv.env
    config = next(iter(inv.files.values()))
    assert "request_max_retries = 0" in config and "stream_max_retries = 0" in config
    assert 'base_url = "https://api.openai.com/v1"' in config

    mine = adapter_for("codex").build("go", agent("codex", tmp_path, env={"CODEX_HOME": "/home/me/.codex"}))
    assert mine.files == {} and mine.env == {"CODEX_HOME": "/home/me/.codex"}


# -- Gemini ----------------------------------------------------------------------------------


def test_gemini_prompt_is_one_element_even_with_a_leading_dash(tmp_path: Path) -> None:
    settings = agent("gemini", tmp_path, model="gemini-2.5-pro", env={"ORCHESTRA_MAX_RETRIES": "2"})
    inv = adapter_for("gemini").build("--help me", settings, resume="1cbe7bfe")

    assert inv.argv == [
        "gemini", "--prompt=--help me", "--output-format", "stream-json", "--yolo", "--skip-trust",
        "-m", "gemini-2.5-pro", "--resume", "1cbe7bfe",
    ]  # fmt: skip
    assert inv.env == {"GEMINI_CLI_HOME": str(tmp_path / "gemini")}
    written = json.loads(inv.files[str(tmp_path / "gemini" / ".gemini" / "settings.json")])
    assert written["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert written["privacy"]["usageStatisticsEnabled"] is False
    assert written["general"]["maxAttempts"] == 3


def test_gemini_long_text_goes_on_stdin_and_approval_mode_is_the_users(tmp_path: Path) -> None:
    inv = adapter_for("gemini").build("x" * 100_001, agent("gemini", tmp_path, args=["--approval-mode", "auto_edit"]))
    assert inv.prompt_mode == "stdin" and inv.argv[1] == "--prompt="
    assert "--yolo" not in inv.argv and inv.argv[-2:] == ["--approval-mode", "auto_edit"]


# -- Qwen Code -------------------------------------------------------------------------------


def test_qwen_positional_prompt_and_defaults(tmp_path: Path) -> None:
    inv = adapter_for("qwen").build(HOSTILE, agent("qwen", tmp_path, model="qwen3-coder-plus"), resume="75b2")
    assert inv.argv == [
        "qwen", "--output-format", "stream-json", "--yolo", "--auth-type", "openai",
        "-m", "qwen3-coder-plus", "--resume", "75b2", HOSTILE,
    ]  # fmt: skip
    assert inv.env["QWEN_HOME"] == str(tmp_path / "qwen")
    assert json.loads(next(iter(inv.files.values())))["privacy"]["usageStatisticsEnabled"] is False

    oauth = adapter_for("qwen").build("-x", agent("qwen", tmp_path, args=["--auth-type", "qwen-oauth"]))
    assert oauth.argv.count("--auth-type") == 1 and oauth.prompt_mode == "stdin" and "-x" not in oauth.argv


# -- opencode --------------------------------------------------------------------------------


def test_opencode_own_provider_names_the_key_variable(tmp_path: Path) -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    inv = adapter_for("opencode").build("-rf everything", agent("opencode", tmp_path, model="gpt-4.1-mini", env=env))

    assert inv.argv == [
        "opencode",
        "run",
        "--format",
        "json",
        "--auto",
        "-m",
        "orchestra/gpt-4.1-mini",
        "--",
        "-rf everything",
    ]
    path = str(tmp_path / "opencode" / "opencode.json")
    assert inv.env["OPENCODE_CONFIG"] == path
    config = json.loads(inv.files[path])
    provider = config["provider"]["orchestra"]
    assert provider["options"] == {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "{env:OPENAI_API_KEY}"}
    assert provider["models"] == {"gpt-4.1-mini": {"name": "gpt-4.1-mini"}}
    assert config["autoupdate"] is False and config["share"] == "disabled"


def test_opencode_catalog_model_and_resume(tmp_path: Path) -> None:
    inv = adapter_for("opencode").build(
        "go", agent("opencode", tmp_path, model="anthropic/claude-sonnet-4-5"), resume="ses_1"
    )
    assert inv.argv[5:9] == ["-m", "anthropic/claude-sonnet-4-5", "--session", "ses_1"]
    assert "provider" not in json.loads(next(iter(inv.files.values())))


# -- Droid -----------------------------------------------------------------------------------


def test_droid_byok_settings_and_autonomy(tmp_path: Path) -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    inv = adapter_for("droid").build(HOSTILE, agent("droid", tmp_path, model="gpt-4.1-mini", env=env))
    path = str(tmp_path / "droid" / "settings.json")
    assert inv.argv == [
        "droid", "exec", "-o", "stream-json", "--auto", "medium", "--settings", path,
        "-m", "custom:gpt-4.1-mini", HOSTILE,
    ]  # fmt: skip
    model = json.loads(inv.files[path])["customModels"][0]
    assert model["apiKey"] == "${OPENAI_API_KEY}" and model["provider"] == "generic-chat-completion-api"


def test_droid_resumes_only_factory_sessions(tmp_path: Path) -> None:
    hosted = adapter_for("droid").build("go", agent("droid", tmp_path, model="claude-sonnet-4-5"), resume="452")
    assert hosted.argv[-3:] == ["--session-id", "452", "go"]
    byok = agent("droid", tmp_path, model="m", env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert "--session-id" not in adapter_for("droid").build("go", byok, resume="452").argv


def test_droid_odd_text_goes_through_a_file_and_unsafe_mode_is_kept(tmp_path: Path) -> None:
    inv = adapter_for("droid").build("-v", agent("droid", tmp_path, args=["--skip-permissions-unsafe"]))
    assert inv.argv[-2:] == ["-f", "{task_file}"] and inv.prompt_mode == "file"
    assert "--auto" not in inv.argv and inv.files == {}


# -- Aider -----------------------------------------------------------------------------------


def test_aider_reads_the_task_file_and_logs_outside_the_repo(tmp_path: Path) -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    inv = adapter_for("aider").build(HOSTILE, agent("aider", tmp_path, model="openai/gpt-4.1", env=env))

    assert inv.argv[:3] == ["aider", "--message-file", "{task_file}"] and inv.prompt_mode == "file"
    for flag in ("--yes-always", "--no-pretty", "--no-stream", "--no-auto-commits", "--no-gitignore", "--no-analytics"):
        assert flag in inv.argv
    log = inv.argv[inv.argv.index("--analytics-log") + 1]
    assert log.startswith(str(tmp_path / "aider" / "runs")) and inv.files == {log: ""}
    assert inv.argv[inv.argv.index("--chat-history-file") + 1].startswith(os.path.dirname(log))
    assert inv.env == {"OPENAI_API_BASE": "http://127.0.0.1:9/v1", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    assert json.loads(inv.parser.split(" ", 1)[1]) == {"analytics": log, "model": "openai/gpt-4.1"}
    other = adapter_for("aider").build("go", agent("aider", tmp_path))
    assert other.argv[other.argv.index("--analytics-log") + 1] != log, "each task gets its own log"


# -- all of them -----------------------------------------------------------------------------

NEW_KINDS = ["codex", "gemini", "qwen", "opencode", "droid", "aider"]


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_registry_version_probe_and_config_kind(kind: str, tmp_path: Path) -> None:
    adapter = adapter_for(kind)
    assert adapter.kind == kind and kind in AGENT_KINDS and kind in PARSERS
    assert adapter.version_argv(agent(kind, tmp_path, command="/opt/bin/x")) == ["/opt/bin/x", "--version"]
    config = parse_config(
        {"agents": {"a": {"kind": kind, "command": kind}}, "routing": {"default_agent": "a"}}, source="t"
    )
    assert config.agent_settings("a").config_dir.endswith(os.path.join("agents", "a"))


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_config_files_never_hold_the_secret(kind: str, tmp_path: Path) -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-live-secret-value"}
    inv = adapter_for(kind).build("go", agent(kind, tmp_path, model="gpt-4.1-mini", env=env))
    for content in inv.files.values():
        assert "sk-live-secret-value" not in content
    assert all(os.path.isabs(path) for path in inv.files)


def test_adapters_need_a_config_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config dir"):
        adapter_for("codex").build("go", agent("codex", tmp_path, config_dir=""))


def test_engine_writes_invocation_files_private(tmp_path: Path) -> None:
    target = tmp_path / "agents" / "codex" / "config.toml"
    write_agent_files({str(target): "a = 1\n"})
    write_agent_files({str(target): "a = 2\n"})
    assert target.read_text() == "a = 2\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["config.toml"], "no temporary file left"


def test_parser_ref_round_trip() -> None:
    assert parser_ref("gemini") == "gemini"
    assert parser_ref("codex", model=None, home="/h") == 'codex {"home": "/h"}'
    assert parser_for(parser_ref("codex", model="gpt-5", home="/h")).live_usage()[1] == "gpt-5"


def test_parser_modules_import_without_site_packages() -> None:
    modules = sorted({path.partition(":")[0] for path in PARSERS.values()} | {"core.agents.common"})
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
        + "; ".join(f"import {m}" for m in modules)
        + "; print(sorted(m for m in ('pydantic', 'genai_prices', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert set(ADAPTERS) == set(PARSERS) == set(AGENT_KINDS)


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_KEYS = st.sampled_from(
    "type item usage part tokens stats result status error message text role content delta tool_name "  # noqa: SIM905
    "tool_id parameters session_id sessionID thread_id finalText cost input output cache models".split()
)
_JSON = st.recursive(
    _SCALARS | st.sampled_from(["item.completed", "turn.completed", "step_finish", "completion", "result"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(NEW_KINDS), lines=st.lists(st.text(max_size=120) | _JSON.map(json.dumps), max_size=15))
def test_any_output_yields_events_and_a_result(kind: str, lines: list[str]) -> None:
    parser = parser_for(kind)
    for line in lines:
        for event in parser.feed(line):
            assert len(event.text) <= 200
    parser.live_usage()
    parser.live_cost_usd()
    result = parser.finish(0, "tail")
    assert result.status in ("succeeded", "failed")
    assert result.cost_usd is None or result.cost_usd >= 0
