"""The digest built from a seeded real store with the clock passed in; its chart as a real PNG."""

from __future__ import annotations

import json
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from matplotlib.container import BarContainer

from core.digest import CHART_DAYS, MESSAGE_LIMIT, ChartData, build_digest, chart_figure, render_chart_png
from core.store import Store
from tests.conftest import orchestra
from tests.test_costs import ManualClock, add_task, at, make_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "orchestra.db")


def seed(store: Store) -> None:
    """Yesterday's digest at 08:00, then a day of work: finished, failed, waiting and running tasks."""
    store.record_digest("2026-11-24", at("2026-11-24 08:00"), at("2026-11-23 08:00"), at("2026-11-24 08:00"), 0)
    add_task(store, at("2026-11-24 07:00"), text="before the last digest", cost=0.5)
    add_task(store, at("2026-11-24 10:00"), text="Add REST endpoint for orders", cost=0.42)
    add_task(store, at("2026-11-24 11:00"), text="Fix the login bug", state="failed", agent="codex",
             cost=0.1, error="exited with code 3")  # fmt: skip
    add_task(store, at("2026-11-24 12:00"), text="Write the changelog", state="cancelled", cost=0.05)
    add_task(store, at("2026-11-24 13:00"), text="Refactor billing", state="over_budget", cost=5.2,
             error="stopped: cost $5.20 crossed the cap $5.0")  # fmt: skip
    add_task(store, at("2026-11-24 14:00"), text="Add tests for the parser", state="needs_review", cost=0.8)
    add_task(store, at("2026-11-10 10:00"), text="earlier this month", cost=3.0, agent="codex")
    store.create_task({"text": "Set up the CI pipeline", "agent": "claude", "category": "devops",
                       "state": "awaiting_approval", "cwd": "/", "created_at": at("2026-11-24 18:00"),
                       "estimate_usd": 1.2})  # fmt: skip
    store.create_task({"text": "Migrate the database", "agent": "claude", "category": "backend", "state": "running",
                       "cwd": "/", "created_at": at("2026-11-25 07:40"), "started_at": at("2026-11-25 07:48"),
                       "live_cost_usd": 0.3})  # fmt: skip


def test_digest_contents(store: Store) -> None:
    seed(store)
    config = make_config(budgets={"per_day_usd": 10, "per_month_usd": 100})
    digest = build_digest(store, config, ManualClock(at("2026-11-25 08:00")))
    lines = digest.text.splitlines()
    assert lines[0] == "☀️ Orchestra digest · Wed 25 Nov"
    assert lines[1] == "Since Tue 24 Nov 08:00: 1 cancelled · 1 failed · 1 over budget · 1 succeeded"
    assert lines[2:6] == [
        "💸 t5 over budget · claude · $5.20 · Refactor billing — stopped: cost $5.20 crossed the cap $5.0",
        "⏹ t4 cancelled · claude · $0.05 · Write the changelog",
        "❌ t3 failed · codex · $0.10 · Fix the login bug — exited with code 3",
        "✅ t2 succeeded · claude · $0.42 · Add REST endpoint for orders",
    ]
    assert "before the last digest" not in digest.text
    assert lines[6:9] == [
        "Waiting for you (2):",
        "👀 t6 needs review · claude · backend · $0.80 · Add tests for the parser",
        "🔐 t8 needs approval · claude · devops · est. $1.20 · Set up the CI pipeline",
    ]
    assert lines[9:11] == ["Running (1):", "🏃 t9 claude · 12m00s · $0.30 so far · Migrate the database"]
    assert lines[11] == (
        "Cost: yesterday $7.07 of $10.00 (71%) · this week $7.07 · this month $10.37 of $100.00 (10%)"
    )  # the month includes the running task's live $0.30
    assert lines[12] == "Top agents this month: claude $6.97 (5) · codex $3.10 (2)"
    assert lines[13].startswith("Savings this month: ") and "claude-sonnet-4-5" in lines[13]
    assert digest.button_task_ids == ["t6", "t8"]
    assert [t.state for t in digest.waiting] == ["needs_review", "awaiting_approval"]
    assert [t.task_id for t in digest.running] == ["t9"]
    assert digest.since == at("2026-11-24 08:00") and digest.period == "2026-11-25"
    assert len(digest.text) < 4096  # fits one Telegram message


def test_long_sections_are_capped_and_counted(store: Store) -> None:
    for i in range(30):
        add_task(store, at("2026-11-25 06:00") + i, text=f"task {i}")
    config = make_config(digest={"max_lines": 5})
    digest = build_digest(store, config, ManualClock(at("2026-11-25 08:00")))
    assert digest.text.splitlines()[1] == "Since Tue 24 Nov 08:00: 30 succeeded"  # first digest: the last day
    assert "… and 25 more (status lists them all)" in digest.text
    assert len(digest.finished) == 5


def test_a_busy_day_still_fits_one_chat_message(store: Store) -> None:
    for i in range(40):
        add_task(store, at("2026-11-25 06:00") + i, text=f"finished task {i} " + "with a long description " * 5)
        for state in ("awaiting_approval", "running"):
            store.create_task({"text": f"{state} task {i} " + "x" * 200, "agent": "claude", "category": "devops",
                               "state": state, "cwd": "/", "created_at": at("2026-11-25 07:00")})  # fmt: skip
    digest = build_digest(store, make_config(digest={"max_lines": 15}), ManualClock(at("2026-11-25 08:00")))
    assert len(digest.text) <= MESSAGE_LIMIT
    shown = len(digest.waiting)
    assert 1 <= shown < 15 and f"… and {40 - shown} more (status lists them all)" in digest.text
    assert "Waiting for you (40):" in digest.text and len(digest.button_task_ids) == shown


def test_an_empty_store_gives_a_calm_digest(store: Store) -> None:
    digest = build_digest(store, make_config(), ManualClock(at("2026-11-25 08:00")))
    assert digest.text.splitlines()[1:] == [
        "Nothing finished since Tue 24 Nov 08:00.",
        "Cost: yesterday $0.00 · this week $0.00 · this month $0.00",
    ]
    assert digest.chart.empty and digest.button_task_ids == []
    assert render_chart_png(digest.chart).startswith(PNG_SIGNATURE)


def test_chart_series_are_daily_cost_by_agent_over_14_local_days(store: Store) -> None:
    add_task(store, at("2026-11-25 00:30"), agent="claude", cost=2.0)  # the Paris day, not the UTC one
    add_task(store, at("2026-11-24 12:00"), agent="claude", cost=1.0)
    add_task(store, at("2026-11-24 13:00"), agent="codex", cost=4.0)
    add_task(store, at("2026-11-12 09:00"), agent="codex", cost=0.5)  # the first day shown
    add_task(store, at("2026-11-11 23:59"), agent="gemini", cost=9.0)  # one day too old
    chart = build_digest(store, make_config(), ManualClock(at("2026-11-25 08:00"))).chart
    assert len(chart.days) == CHART_DAYS and chart.days[0] == "2026-11-12" and chart.days[-1] == "2026-11-25"
    assert chart.labels[-1] == "25 Nov"
    zeros = [0.0] * CHART_DAYS
    assert chart.series == {
        "codex": (0.5, *zeros[:11], 4.0, 0.0),
        "claude": (*zeros[:12], 1.0, 2.0),
    }
    figure = chart_figure(chart)
    [axes] = figure.axes
    containers = [c for c in axes.containers if isinstance(c, BarContainer)]
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in containers}
    assert bars == {agent: list(values) for agent, values in chart.series.items()}
    stacked = [p.get_y() for p in containers[1].patches]  # claude sits on top of codex
    assert stacked[-2] == 4.0
    assert [t.get_text() for t in axes.get_xticklabels()] == list(chart.labels)


def test_chart_is_a_valid_png(store: Store) -> None:
    add_task(store, at("2026-11-24 12:00"), agent="claude", cost=1.0)
    png = render_chart_png(build_digest(store, make_config(), ManualClock(at("2026-11-25 08:00"))).chart)
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    width, height = struct.unpack(">II", png[16:24])
    assert (length, kind, width, height) == (13, b"IHDR", 800, 400)
    assert png.endswith(b"IEND\xaeB`\x82")


def test_chart_data_with_no_agents_renders() -> None:
    assert render_chart_png(ChartData(("2026-11-25",), ("25 Nov",))).startswith(PNG_SIGNATURE)


def test_digest_command_prints_it_and_writes_the_chart(tmp_path: Path, home: Path, config_data: dict[str, Any]) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(yaml.safe_dump(config_data))
    store = Store(home / "orchestra.db")
    now = datetime.now().timestamp()
    add_task(store, now - 60, text="Add REST endpoint for orders", cost=0.42, agent="standin")
    store.create_task({"text": "Deploy it", "agent": "standin", "category": "devops", "state": "awaiting_approval",
                       "cwd": "/", "created_at": now})  # fmt: skip
    store.close()
    env = {"ORCHESTRA_HOME": str(home)}
    png = tmp_path / "chart.png"
    out = orchestra("digest", "--png", str(png), config=config, env=env)
    assert out.returncode == 0, out.stderr
    assert "✅ t1 succeeded · standin · $0.42 · Add REST endpoint for orders" in out.stdout
    assert "🔐 t2 needs approval" in out.stdout and f"chart: {png}" in out.stdout
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    data = json.loads(orchestra("digest", "--json", config=config, env=env).stdout)
    assert data["button_task_ids"] == ["t2"] and data["chart"]["series"]["standin"][-1] == 0.42
    reopened = Store(home / "orchestra.db")
    assert reopened.last_digest() is None, "showing the digest does not count as sending it"
    bad = orchestra("digest", "--png", str(tmp_path / "no" / "dir.png"), config=config, env=env)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
