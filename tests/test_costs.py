"""Costs, budgets, alerts and savings on a real SQLite store, with the clock passed in."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from core import pricing
from core.agents.base import Usage
from core.config import Config, parse_config
from core.costs import CostTracker, check_budget_alerts, cost_report, period_of, render_cost_report, shift
from core.errors import BudgetExceeded
from core.models import TaskState
from core.service import Service
from core.store import Store
from core.tmux import TmuxManager
from tests.conftest import ROOT, orchestra

PARIS = ZoneInfo("Europe/Paris")


class ManualClock:
    """A clock the test sets; nothing here sleeps to make time pass."""

    def __init__(self, ts: float) -> None:
        self.ts = ts

    def now(self) -> float:
        return self.ts


def at(local: str) -> float:
    """Epoch seconds of a wall-clock time in Paris, e.g. ``at("2026-11-25 08:00")``."""
    return datetime.fromisoformat(local).replace(tzinfo=PARIS).timestamp()


def make_config(**sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = yaml.safe_load((ROOT / "bots.yaml").read_text())
    data["digest"] = {**data.get("digest", {}), "timezone": "Europe/Paris"}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return parse_config(data)


def add_task(store: Store, ts: float, *, agent: str = "claude", category: str = "backend", cost: float | None = 1.0,
             state: str = "succeeded", model: str = "claude-sonnet-4-5", tokens: tuple[int, int] = (10_000, 1_000),
             text: str = "a task", **fields: Any) -> str:  # fmt: skip
    """A finished task and its cost row, as the engine records them."""
    task = store.create_task({"text": text, "agent": agent, "category": category, "state": state, "cwd": "/",
                              "created_at": ts - 60, "started_at": ts - 50, "finished_at": ts, "cost_usd": cost,
                              **fields})  # fmt: skip
    store.record_cost({"task_id": task.id, "ts": ts, "agent": agent, "category": category, "model": model,
                       "input_tokens": tokens[0], "output_tokens": tokens[1], "cache_read_tokens": 0,
                       "cache_write_tokens": 0, "cost_usd": cost, "source": "cli"})  # fmt: skip
    return task.id


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "orchestra.db")


# -- periods -------------------------------------------------------------------------------------
def test_days_follow_the_local_zone_across_daylight_saving() -> None:
    spring = period_of("day", at("2026-03-29 12:00"), PARIS)
    autumn = period_of("day", at("2026-10-25 12:00"), PARIS)
    assert (spring.end - spring.start) / 3600 == 23
    assert (autumn.end - autumn.start) / 3600 == 25
    assert spring.start == at("2026-03-29 00:00") and spring.key == "2026-03-29"
    week = period_of("week", at("2026-11-25 10:00"), PARIS)
    assert (week.key, week.first_day.isoformat(), week.start) == ("2026-W48", "2026-11-23", at("2026-11-23 00:00"))
    month = period_of("month", at("2026-10-31 23:59"), PARIS)
    assert (month.key, month.start, month.end) == ("2026-10", at("2026-10-01 00:00"), at("2026-11-01 00:00"))
    assert shift(month, -10, PARIS).key == "2025-12"
    assert shift(period_of("week", at("2026-01-01 12:00"), PARIS), 0, PARIS).key == "2026-W01"


def test_spend_lands_on_the_local_day_not_the_utc_day(store: Store) -> None:
    # 00:30 in Paris is still the previous day in UTC: it counts for the Paris day.
    add_task(store, at("2026-11-25 00:30"), cost=2.0, agent="claude")
    add_task(store, at("2026-11-24 23:30"), cost=1.0, agent="codex", category="tests")
    add_task(store, at("2026-11-25 18:00"), cost=None, agent="codex")  # unknown cost: counted apart
    tracker = CostTracker(store, make_config(), ManualClock(at("2026-11-25 20:00")))
    today = tracker.period("day")
    spend = tracker.spend(today.start, today.end)
    assert (spend.total_usd, spend.tasks, spend.unknown) == (2.0, 2, 1)
    assert spend.by_agent == [("claude", 2.0, 1), ("codex", 0.0, 1)]
    yesterday = shift(today, -1, PARIS)
    assert tracker.spend(yesterday.start, yesterday.end).by_category == [("tests", 1.0, 1)]
    assert tracker.by_agent_series([yesterday, today]) == {"claude": [0.0, 2.0], "codex": [1.0, 0.0]}


# -- budgets -------------------------------------------------------------------------------------
def test_running_tasks_count_toward_todays_budget(store: Store) -> None:
    add_task(store, at("2026-11-25 09:00"), cost=6.0)
    store.create_task({"text": "still going", "agent": "claude", "category": "backend", "state": "running",
                       "cwd": "/", "created_at": at("2026-11-25 09:30"), "live_cost_usd": 4.5})  # fmt: skip
    tracker = CostTracker(store, make_config(budgets={"per_day_usd": 10}), ManualClock(at("2026-11-25 10:00")))
    day = tracker.budget("day")
    assert (day.spent_usd, day.running_usd, day.exceeded) == (10.5, 4.5, True)
    assert day.describe() == "$10.50 of $10.00 (105%)"
    assert tracker.budget("day", at("2026-11-24 12:00")).spent_usd == 0.0  # yesterday: no live cost


def test_thresholds_alert_once_per_period(store: Store) -> None:
    clock = ManualClock(at("2026-11-25 09:00"))
    tracker = CostTracker(store, make_config(budgets={"per_day_usd": 10, "alert_thresholds": [50, 80, 100]}), clock)
    channels = ["console", "telegram"]
    assert check_budget_alerts(tracker, channels) == []
    add_task(store, at("2026-11-25 08:00"), cost=5.5)
    [first] = check_budget_alerts(tracker, channels)
    assert first.key == "alert:day:2026-11-25:50"
    assert check_budget_alerts(tracker, channels) == []  # asked again: nothing new
    add_task(store, at("2026-11-25 08:30"), cost=5.0)  # 105%: 80 and 100 crossed together
    [second] = check_budget_alerts(tracker, channels)
    assert second.threshold == 100 and "Daily budget 100% used: $10.50 of $10.00 (105%)" in second.text
    assert "New tasks need approval until tomorrow" in second.text
    assert check_budget_alerts(tracker, channels) == []
    for channel in channels:
        texts = [n.text for n in store.outbox_queue(channel)]
        assert len(texts) == 2, "one message for 50%, one for 80+100%, never the 80% late"
        assert "50% used: $5.50" in texts[0]
    assert {a["key"] for a in store.alerts("budget")} == {
        "alert:day:2026-11-25:50", "alert:day:2026-11-25:80", "alert:day:2026-11-25:100",
    }  # fmt: skip
    clock.ts = at("2026-11-26 09:00")  # a new day starts from zero
    add_task(store, at("2026-11-26 08:00"), cost=6.0)
    assert [a.key for a in check_budget_alerts(tracker, channels)] == ["alert:day:2026-11-26:50"]


def test_a_budget_changed_at_run_time_alerts_afresh_and_bots_yaml_keys_stay(store: Store) -> None:
    clock = ManualClock(at("2026-11-25 09:00"))
    tracker = CostTracker(store, make_config(budgets={"per_day_usd": 10, "alert_thresholds": [80, 100]}), clock)
    add_task(store, at("2026-11-25 08:00"), cost=8.5)
    assert [a.key for a in check_budget_alerts(tracker, ["console"])] == ["alert:day:2026-11-25:80"]
    store.set_budget_override("per_day_usd", 20.0, "@ada", clock.now())  # /budget day 20
    assert check_budget_alerts(tracker, ["console"]) == [], "42% of the new budget: nothing to say"
    add_task(store, at("2026-11-25 08:30"), cost=8.0)
    [again] = check_budget_alerts(tracker, ["console"])
    assert again.key == "alert:day:2026-11-25:80:20" and "$16.50 of $20.00" in again.text
    store.clear_budget_override("per_day_usd")  # back to bots.yaml's $10: its 80% was already said
    assert [a.key for a in check_budget_alerts(tracker, ["console"])] == ["alert:day:2026-11-25:100"]


def test_month_budget_alerts_with_its_own_key(store: Store) -> None:
    clock = ManualClock(at("2026-11-25 09:00"))
    tracker = CostTracker(store, make_config(budgets={"per_month_usd": 100, "alert_thresholds": [80]}), clock)
    add_task(store, at("2026-11-02 10:00"), cost=85)
    [alert] = check_budget_alerts(tracker, ["console"])
    assert alert.key == "alert:month:2026-11:80"
    assert alert.text.removeprefix("💰 ") == "Monthly budget 80% used: $85.00 of $100.00 (85%) this month."


def service(store: Store, config: Config, clock: ManualClock, tmp_path: Path) -> Service:
    tmux = TmuxManager("orch-test-unused", "test", config_file="/dev/null")
    return Service(config, store, tmux, clock, tmp_path, autostart_engine=False)


def test_daily_budget_switches_new_tasks_to_approval(store: Store, tmp_path: Path) -> None:
    clock = ManualClock(at("2026-11-25 09:00"))
    svc = service(store, make_config(budgets={"per_day_usd": 10}), clock, tmp_path)
    before = svc.delegate("write docs for the API", cwd=str(tmp_path))
    assert before.task.state == TaskState.QUEUED and not before.needs_approval
    add_task(store, at("2026-11-25 08:00"), cost=10.0)
    held = svc.delegate("write docs for the CLI", cwd=str(tmp_path))
    assert held.task.state == TaskState.AWAITING_APPROVAL
    assert held.approval_reason == "the daily budget is spent: $10.00 of $10.00 (100%) today"
    [note] = store.outbox_queue("console", task_id=held.task.id)
    assert note.kind == "approval" and "daily budget is spent" in note.text
    assert svc.approve(held.task.id).state == TaskState.QUEUED  # a person can still let it through
    clock.ts = at("2026-11-26 09:00")
    assert svc.delegate("write docs for the SDK", cwd=str(tmp_path)).task.state == TaskState.QUEUED


def test_refuse_mode_refuses_with_one_line_and_stores_nothing(store: Store, tmp_path: Path) -> None:
    config = make_config(budgets={"per_month_usd": 50, "when_exceeded": "refuse"})
    svc = service(store, config, ManualClock(at("2026-11-25 09:00")), tmp_path)
    add_task(store, at("2026-11-03 08:00"), cost=60.0)
    with pytest.raises(BudgetExceeded) as info:
        svc.delegate("add a REST endpoint", cwd=str(tmp_path))
    message = str(info.value)
    assert message == (
        "refused: the monthly budget is spent: $60.00 of $50.00 (120%) this month; "
        "new tasks are refused until next month (budgets.when_exceeded)"
    )
    assert [t.id for t in store.list_tasks()] == ["t1"]  # only the seeded one


def test_refusal_is_one_line_in_the_terminal(tmp_path: Path, home: Path, config_data: dict[str, Any]) -> None:
    config_data["budgets"].update(per_day_usd=1, when_exceeded="refuse")
    config = tmp_path / "bots.yaml"
    config.write_text(yaml.safe_dump(config_data))
    store = Store(home / "orchestra.db")
    add_task(store, datetime.now().timestamp(), cost=3.0)
    store.close()
    out = orchestra("delegate", "--task", "fix the login bug", config=config, env={"ORCHESTRA_HOME": str(home)})
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "orchestra: refused: the daily budget is spent: $3.00 of $1.00 (300%) today; "
        "new tasks are refused until tomorrow (budgets.when_exceeded)"
    )


def test_estimate_is_the_median_of_similar_tasks(store: Store, tmp_path: Path) -> None:
    for cost in (0.1, 0.4, 0.2):
        add_task(store, at("2026-11-20 10:00"), agent="standin", category="docs", cost=cost)
    svc = service(store, make_config(), ManualClock(at("2026-11-25 09:00")), tmp_path)
    delegation = svc.delegate("write docs for the API", agent="standin", cwd=str(tmp_path))
    assert (delegation.estimate_usd, delegation.estimate_basis) == (0.2, 3)
    fresh = svc.delegate("add a REST endpoint", agent="standin", cwd=str(tmp_path))
    assert (fresh.estimate_usd, fresh.estimate_basis) == (0.5, 0)  # budgets.default_estimate_usd


# -- savings and the report ----------------------------------------------------------------------
def test_savings_against_the_priciest_model_used_and_a_configured_one(store: Store) -> None:
    clock = ManualClock(at("2026-11-25 09:00"))
    sonnet = pricing.price_usd(Usage(10_000, 1_000), "claude-sonnet-4-5")
    gpt = pricing.price_usd(Usage(20_000, 2_000), "gpt-5")
    assert sonnet and gpt
    add_task(store, at("2026-11-10 10:00"), model="claude-sonnet-4-5", cost=sonnet)
    add_task(store, at("2026-11-11 10:00"), model="gpt-5", tokens=(20_000, 2_000), cost=gpt, agent="codex")
    add_task(store, at("2026-11-12 10:00"), model="gpt-5", tokens=(0, 0), cost=0.3)  # no tokens: left out
    month = period_of("month", clock.now(), PARIS)
    savings = CostTracker(store, make_config(), clock).savings(month.start, month.end)
    assert savings is not None and savings.reference_model == "claude-sonnet-4-5"
    expected = sonnet + pricing.price_usd(Usage(20_000, 2_000), "claude-sonnet-4-5")  # type: ignore[operator]
    assert savings.reference_usd == pytest.approx(expected)
    assert savings.actual_usd == pytest.approx(sonnet + gpt) and savings.tasks == 2
    assert savings.saved_usd > 0 and "saved" in savings.sentence()
    opus = CostTracker(store, make_config(budgets={"reference_model": "claude-opus-4-1"}), clock)
    against_opus = opus.savings(month.start, month.end)
    assert against_opus is not None and against_opus.reference_usd == pytest.approx(expected * 5)


def test_savings_on_the_reference_model_itself_say_so(store: Store) -> None:
    clock = ManualClock(at("2026-11-25 09:00"))
    add_task(store, at("2026-11-10 10:00"), model="claude-sonnet-4-5", cost=0.05)
    month = period_of("month", clock.now(), PARIS)
    savings = CostTracker(store, make_config(), clock).savings(month.start, month.end)
    assert savings is not None and savings.all_on_reference
    assert savings.sentence().startswith("none to show: every priced task ran on claude-sonnet-4-5, the reference")
    assert CostTracker(store, make_config(), clock).savings(0, month.start) is None  # nothing priced before


def test_cost_report_breaks_down_by_agent_category_day_week_month(store: Store) -> None:
    clock = ManualClock(at("2026-11-25 20:00"))
    add_task(store, at("2026-11-25 10:00"), cost=1.0, agent="claude", category="backend")
    add_task(store, at("2026-11-24 10:00"), cost=2.0, agent="codex", category="tests")
    add_task(store, at("2026-11-20 10:00"), cost=4.0, agent="claude", category="tests")
    add_task(store, at("2026-10-20 10:00"), cost=8.0, agent="gemini", category="docs")
    config = make_config(budgets={"per_day_usd": 5, "per_month_usd": 100})
    report = cost_report(CostTracker(store, config, clock))
    data = report.to_dict()
    assert data["periods"] == {
        "today": {"cost_usd": 1.0, "tasks": 1},
        "yesterday": {"cost_usd": 2.0, "tasks": 1},
        "this week": {"cost_usd": 3.0, "tasks": 2},
        "this month": {"cost_usd": 7.0, "tasks": 3},
    }
    assert data["by_agent"] == [("claude", 5.0, 2), ("codex", 2.0, 1)]
    assert data["by_category"] == [("tests", 6.0, 2), ("backend", 1.0, 1)]
    assert [(d["period"], d["cost_usd"]) for d in data["by_day"]][::4] == [("2026-11-19", 0), ("2026-11-23", 0)]
    assert [d["cost_usd"] for d in data["by_day"]] == [0, 4.0, 0, 0, 0, 2.0, 1.0]
    assert [(w["period"], w["cost_usd"]) for w in data["by_week"]][-2:] == [("2026-W47", 4.0), ("2026-W48", 3.0)]
    assert [(m["period"], m["cost_usd"]) for m in data["by_month"]][-2:] == [("2026-10", 8.0), ("2026-11", 7.0)]
    assert json.dumps(data)  # the CLI's --json
    text = render_cost_report(report)
    assert "today       $1.00 of $5.00 (20%) budget" in text
    assert "this month  $7.00 of $100.00 (7%) budget" in text
    assert "by agent (this month):\n  claude" in text
    assert render_cost_report(report, only="week").startswith("by week:\n")
    everything = cost_report(CostTracker(store, config, clock), all_time=True).to_dict()
    assert everything["total_usd"] == 15.0 and everything["by_agent"][0] == ("gemini", 8.0, 1)


def test_cost_command_shows_budgets_and_breakdowns(tmp_path: Path, home: Path, config_data: dict[str, Any]) -> None:
    config_data["budgets"].update(per_day_usd=10)
    config = tmp_path / "bots.yaml"
    config.write_text(yaml.safe_dump(config_data))
    store = Store(home / "orchestra.db")
    add_task(store, datetime.now().timestamp(), cost=2.5, agent="standin")
    store.close()
    env = {"ORCHESTRA_HOME": str(home)}
    out = orchestra("cost", config=config, env=env)
    assert out.returncode == 0, out.stderr
    assert "today       $2.50 of $10.00 (25%) budget" in out.stdout
    assert "standin" in out.stdout and "by week:" in out.stdout and "Savings (this month)" in out.stdout
    by_agent = orchestra("cost", "--by", "agent", config=config, env=env)
    assert by_agent.stdout.startswith("by agent (this month):\n  standin")
    data = json.loads(orchestra("cost", "--json", "--days", "3", config=config, env=env).stdout)
    assert data["scope"] == "last 3 days" and data["total_usd"] == 2.5


def test_config_errors_name_the_budget_and_digest_keys() -> None:
    from core.errors import ConfigError

    data: dict[str, Any] = yaml.safe_load((ROOT / "bots.yaml").read_text())
    data["budgets"]["when_exceeded"] = "panic"
    data["budgets"]["alert_thresholds"] = [50, 0]
    data["digest"]["timezone"] = "Mars/Olympus"
    data["digest"]["time"] = "25:61"
    data["watchdog"]["silent_after_s"] = -1
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    message = str(info.value)
    assert "budgets.when_exceeded: must be one of 'approve' or 'refuse'" in message
    assert "budgets.alert_thresholds: 0 is not a percentage between 1 and 1000" in message
    assert "digest.timezone: 'Mars/Olympus' is not a known time zone" in message
    assert "digest.time: '25:61' is not a time of day like 08:00" in message
    assert "watchdog.silent_after_s: must be > 0" in message
    data = yaml.safe_load((ROOT / "bots.yaml").read_text())
    data["digest"]["time"] = 8 * 60 + 30  # what YAML makes of an unquoted 8:30
    assert parse_config(data).digest.time == "08:30"
