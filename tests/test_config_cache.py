"""The validated-config cache: fast when bots.yaml is unchanged, never wrong when it changed."""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import load_config
from core.config.cache import _FORMAT, FileCache, cache_dir, read_file
from core.errors import ConfigError
from tests.conftest import ROOT, orchestra

SECRETS = {
    "ANTHROPIC_API_KEY": "sk-ant-cache-secret-1",
    "OPENAI_API_KEY": "sk-openai-cache-secret-2",
    "GEMINI_API_KEY": "gemini-cache-secret-3",
    "DASHSCOPE_API_KEY": "dashscope-cache-secret-4",
    "FACTORY_API_KEY": "factory-cache-secret-5",
    "TELEGRAM_BOT_TOKEN": "123456:telegram-cache-secret-6",
    "TELEGRAM_WEBHOOK_SECRET": "webhook-cache-secret-7",
    "SLACK_BOT_TOKEN": "xoxb-slack-cache-secret-8",
    "SLACK_APP_TOKEN": "xapp-slack-cache-secret-9",
    "SLACK_SIGNING_SECRET": "signing-cache-secret-10",
    "ORCHESTRA_TEST_SECRET": "orchestra-var-cache-secret-11",  # ORCHESTRA_* are part of the key
}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("ORCHESTRA_CONFIG", raising=False)
    return tmp_path / "xdg-cache" / "orchestra"


def shipped_text() -> str:
    return (ROOT / "bots.yaml").read_text()


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pickle"))


def config_entry(path: Path) -> Path:
    """The entry of the validated config itself (the facts of the file have one of their own)."""
    raw, info = read_file(path)
    return FileCache(path, raw, info, kind="config").file


def test_a_valid_config_is_cached_privately_and_read_back(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "bots.yaml"
    path.write_text(shipped_text())
    cache.mkdir(parents=True, mode=0o755)  # made by hand, readable by all
    first, _ = load_config(path)
    assert cache_dir() == cache
    assert len(entries(cache)) == 2, "the config, and the facts a read command starts from"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(entry.stat().st_mode) == 0o600 for entry in entries(cache))
    again, found = load_config(path)
    assert found == path and again == first and again.agents["claude"].env_from == first.agents["claude"].env_from


def test_an_edit_that_keeps_the_size_and_mtime_is_seen_at_once(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "bots.yaml"
    path.write_text(shipped_text().replace("max_concurrent: 4   ", "max_concurrent: 3   ", 1))
    assert load_config(path)[0].limits.max_concurrent == 3
    before = path.stat()
    path.write_text(shipped_text().replace("max_concurrent: 4   ", "max_concurrent: 7   ", 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # an edit within one mtime tick
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert load_config(path)[0].limits.max_concurrent == 7


def test_a_bad_file_after_a_good_one_is_refused_every_time(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "bots.yaml"
    good = shipped_text()
    path.write_text(good)
    load_config(path)
    before = path.stat()
    path.write_text(good.replace("max_concurrent: 4   ", "max_concurrent: 0   ", 1))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    for _ in range(2):
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value) == f"{path}: limits.max_concurrent: must be ≥ 1"
    checked = orchestra("config", "check", config=path, env={"ORCHESTRA_HOME": str(tmp_path / "home")})
    assert checked.returncode == 1
    assert checked.stderr.strip().splitlines() == [f"orchestra: {path}: limits.max_concurrent: must be ≥ 1"]


def test_a_changed_orchestra_home_is_honoured(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./bots.yaml: $ORCHESTRA_HOME/bots.yaml is the one found
    homes = []
    for name, agents in (("a", 3), ("b", 5)):
        home = tmp_path / name
        home.mkdir()
        text = shipped_text().replace("max_concurrent: 4   ", f"max_concurrent: {agents}   ", 1)
        (home / "bots.yaml").write_text(text)
        homes.append(home)
    for _ in range(2):  # the second round comes from the cache
        for home, agents in zip(homes, (3, 5), strict=True):
            monkeypatch.setenv("ORCHESTRA_HOME", str(home))
            config, path = load_config(None)
            assert (path, config.limits.max_concurrent, config.home()) == (home / "bots.yaml", agents, home)
    shared = tmp_path / "shared.yaml"  # one file, two homes: the home is read when asked, never cached
    shared.write_text(shipped_text())
    for home in homes * 2:
        monkeypatch.setenv("ORCHESTRA_HOME", str(home))
        assert load_config(shared)[0].home() == home


def test_the_cache_holds_no_secret_value(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    data: dict[str, Any] = yaml.safe_load(shipped_text())
    data["telegram"].update(enabled=True, mode="webhook", webhook={"url": "https://bot.example.com/telegram"})
    data["slack"]["enabled"] = True
    path = tmp_path / "bots.yaml"
    path.write_text(yaml.safe_dump(data))
    config, _ = load_config(path)
    assert set(config.known_secrets()) >= set(SECRETS) - {"ORCHESTRA_TEST_SECRET"}  # all of them are in use
    assert load_config(path)[0] == config
    stored = b"".join(entry.read_bytes() for entry in entries(cache))
    assert len(entries(cache)) == 2
    for value in [*SECRETS.values(), "telegram-cache-secret-6"]:
        assert value.encode() not in stored, value


def test_an_unusable_entry_or_folder_costs_only_speed(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bots.yaml"
    path.write_text(shipped_text())
    expected, _ = load_config(path)
    entry = config_entry(path)
    entry.write_bytes(b"not a pickle at all")
    assert load_config(path)[0] == expected
    assert entry.read_bytes() != b"not a pickle at all"  # validated again and rewritten
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # the cache folder cannot be made
    assert load_config(path)[0] == expected


def test_an_entry_someone_else_could_write_is_never_unpickled(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "bots.yaml"
    path.write_text(shipped_text())
    load_config(path)
    entry = config_entry(path)
    marker = tmp_path / "ran"
    head = entry.read_bytes()[: len(_FORMAT) + 32]  # the format tag and the key's digest
    entry.write_bytes(head + pickle.dumps(_Boom(str(marker))))
    assert load_config(path)[0].limits.max_concurrent == 4
    assert marker.exists()  # ours and private: unpickled (and, not being a Config, validated again)
    marker.unlink()
    entry.write_bytes(head + pickle.dumps(_Boom(str(marker))))
    entry.chmod(0o666)
    assert load_config(path)[0].limits.max_concurrent == 4
    assert not marker.exists()


class _Boom:
    """Unpickling this creates a file: proof that an entry was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.marker),))


def test_the_default_rules_and_their_stems_come_back_the_same(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.routing import index
    from core.routing.rules import load_default_rules

    monkeypatch.setattr(index, "_STEMS", {})
    fresh = load_default_rules()  # parsed, validated, stored with the stems of every pattern
    worked_out = dict(index._STEMS)
    assert len(entries(cache)) == 1 and len(worked_out) == len({rule.pattern for rule in fresh})
    monkeypatch.setattr(index, "_STEMS", {})
    assert load_default_rules() == fresh
    assert index._STEMS == worked_out == {rule.pattern: index._word_stems(rule.pattern) for rule in fresh}


def test_a_read_starts_from_the_cached_facts_without_pydantic_and_a_bad_file_still_refuses_it(
    tmp_path: Path, cache: Path
) -> None:
    """`orchestra status` on an unchanged bots.yaml needs only the data dir and the secrets' names."""
    path = tmp_path / "bots.yaml"
    path.write_text(shipped_text())
    env = {"ORCHESTRA_HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(cache.parent)}
    assert orchestra("status", config=path, env=env).returncode == 0  # the first run validates and caches
    probe = "import sys, runpy; sys.argv = ['orchestra', '--config', sys.argv[1], 'status']\n"
    probe += "try: runpy.run_module('bot', run_name='__main__')\nexcept SystemExit: pass\n"
    probe += "print('pydantic' in sys.modules, file=sys.stderr)"
    proc = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=False,
                          env={**os.environ, **env}, cwd=str(ROOT), timeout=60)  # fmt: skip
    assert proc.stderr.strip().splitlines()[-1] == "False", proc.stderr
    path.write_text(shipped_text().replace("max_concurrent: 4   ", "max_concurrent: 0   ", 1))
    bad = orchestra("status", config=path, env=env)
    assert bad.returncode == 1 and "max_concurrent" in bad.stderr and bad.stdout == ""
