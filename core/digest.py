"""The morning digest: what happened since the last one, what waits for you, what it all cost.

``build_digest`` is a pure function of the store, the clock and the config: it sends and records
nothing (the scheduler does both), so ``orchestra digest`` and ``/digest`` can show it at any time
without moving "since the last digest". The chart is plain data in the digest; ``render_chart_png``
draws it with matplotlib (Agg canvas, imported on first use, so building stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.costs import BudgetStatus, CostTracker, Savings, recent, shift
from core.models import Task, TaskState
from core.text import clip, format_duration, money, state_icon, state_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from core.clock import Clock
    from core.config import Config
    from core.store import Store

CHART_DAYS = 14
MESSAGE_LIMIT = 3800  # characters: one Telegram message (4,096) with room to spare
_FIRST_DIGEST_LOOKBACK_S = 24 * 3600


@dataclass(frozen=True)
class DigestTask:
    """One task line of the digest; ``state`` tells a transport which buttons fit."""

    task_id: str
    state: str
    line: str


@dataclass(frozen=True)
class ChartData:
    """Daily cost by agent: one value per day in ``days`` for each agent (largest spender first)."""

    days: tuple[str, ...]  # ISO dates, oldest first
    labels: tuple[str, ...]  # the same days as shown under the bars ("12 Nov")
    series: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(any(values) for values in self.series.values())


@dataclass(frozen=True)
class Digest:
    """The digest as text plus the structure a chat transport needs for buttons and the chart."""

    period: str  # the local date it is for
    since: float
    until: float
    text: str
    finished: tuple[DigestTask, ...]
    finished_counts: dict[str, int]
    waiting: tuple[DigestTask, ...]  # awaiting approval or review: each gets Approve / Reject buttons
    running: tuple[DigestTask, ...]  # each list holds the tasks shown in ``text``; the text counts the rest
    budgets: tuple[BudgetStatus, ...]  # yesterday (daily budget) and this month
    savings: Savings | None
    chart: ChartData

    @property
    def button_task_ids(self) -> list[str]:
        return [t.task_id for t in self.waiting]

    def to_dict(self) -> dict[str, Any]:
        def tasks(items: tuple[DigestTask, ...]) -> list[dict[str, str]]:
            return [{"task_id": t.task_id, "state": t.state, "line": t.line} for t in items]

        return {
            "period": self.period,
            "since": self.since,
            "until": self.until,
            "text": self.text,
            "finished": tasks(self.finished),
            "finished_counts": self.finished_counts,
            "waiting": tasks(self.waiting),
            "running": tasks(self.running),
            "button_task_ids": self.button_task_ids,
            "chart": {"days": list(self.chart.days), "series": {k: list(v) for k, v in self.chart.series.items()}},
        }


def build_digest(store: Store, config: Config, clock: Clock, *, since: float | None = None) -> Digest:
    """Build the digest for now; ``since`` defaults to the end of the last digest sent (else a day ago)."""
    tracker = CostTracker(store, config, clock)
    tz, now, limit = tracker.tz, clock.now(), config.digest.max_lines
    if since is None:
        last = store.last_digest()
        since = float(last["until"]) if last else now - _FIRST_DIGEST_LOOKBACK_S
    finished, counts = store.finished_between(since, now + 1e-6, limit=limit)
    # A finished run waiting for review is listed once, under "Waiting for you", with its buttons.
    finished = [t for t in finished if t.state != TaskState.NEEDS_REVIEW]
    counts.pop(TaskState.NEEDS_REVIEW, None)
    waiting = store.list_tasks(states=[TaskState.AWAITING_APPROVAL, TaskState.NEEDS_REVIEW], limit=1_000_000)
    waiting.sort(key=lambda t: t.created_at)
    running = store.list_tasks(states=[TaskState.RUNNING], limit=1_000_000, newest_first=False)

    today = tracker.period("day", now)
    yesterday = tracker.budget("day", shift(today, -1, tz).start)
    week = tracker.period("week", now)
    week_usd = tracker.totals([week])[0][1]
    month = tracker.budget("month")
    top = store.cost_by("agent", month.period.start, month.period.end)[:3]
    savings = tracker.savings(month.period.start, month.period.end)
    days = recent("day", CHART_DAYS, now, tz)
    by_agent = tracker.by_agent_series(days)
    chart = ChartData(
        tuple(p.key for p in days),
        tuple(f"{p.first_day.day} {p.first_day:%b}" for p in days),
        {agent: tuple(values) for agent, values in by_agent.items()},
    )

    finished_lines = tuple(DigestTask(t.id, t.state.value, _finished_line(t)) for t in finished)
    waiting_lines = tuple(DigestTask(t.id, t.state.value, _waiting_line(t)) for t in waiting)
    running_lines = tuple(DigestTask(t.id, t.state.value, _running_line(t, now)) for t in running)

    local = datetime.fromtimestamp(now, tz)
    since_at = datetime.fromtimestamp(since, tz)
    since_label = f"{since_at:%a} {since_at.day} {since_at:%b} {since_at:%H:%M}"
    total = sum(counts.values())
    footer = [f"Cost: yesterday {yesterday.describe()} · this week {money(week_usd)} · this month {month.describe()}"]
    if top:
        footer.append("Top agents this month: " + " · ".join(f"{a or '?'} {money(usd)} ({n})" for a, usd, n in top))
    if savings is not None:
        footer.append(f"Savings this month: {savings.sentence()}")
    if (accuracy := estimate_accuracy(store, week.start, now + 1e-6)) is not None:
        footer.append(accuracy)

    def compose(cap: int) -> str:
        lines = [f"☀️ Orchestra digest · {local:%a} {local.day} {local:%b}"]
        if total:
            tally = " · ".join(f"{n} {state_label(state)}" for state, n in sorted(counts.items(), key=_by_count))
            lines.append(f"Since {since_label}: {tally}")
            lines += _capped([t.line for t in finished_lines[:cap]], total)
        else:
            lines.append(f"Nothing finished since {since_label}.")
        for title, items in (("Waiting for you", waiting_lines), ("Running", running_lines)):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines += _capped([t.line for t in items[:cap]], len(items))
        return "\n".join(lines + footer)

    cap = limit
    text = compose(cap)
    while len(text) > MESSAGE_LIMIT and cap > 1:  # one chat message: fewer lines per section, all counted
        cap -= 1
        text = compose(cap)
    return Digest(
        period=local.date().isoformat(),
        since=since,
        until=now,
        text=text,
        finished=finished_lines[:cap],
        finished_counts=counts,
        waiting=waiting_lines[:cap],
        running=running_lines[:cap],
        budgets=(yesterday, month),
        savings=savings,
        chart=chart,
    )


def estimate_accuracy(store: Store, start: float, end: float) -> str | None:
    """``Estimates were 18% high this week (12 tasks)``: the tasks' estimated cost against what they
    cost; None without a task that has both."""
    estimated, actual, count = store.estimate_totals(start, end)
    if count == 0 or actual <= 0:
        return None
    off = round(100 * (estimated - actual) / actual)
    tasks = f"{count} task{'' if count == 1 else 's'}"
    if off == 0:
        return f"Estimates were right this week ({tasks})"
    return f"Estimates were {abs(off)}% {'high' if off > 0 else 'low'} this week ({tasks})"


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _capped(lines: list[str], total: int) -> list[str]:
    more = total - len(lines)
    return lines + ([f"… and {more} more (status lists them all)"] if more > 0 else [])


def _finished_line(task: Task) -> str:
    cost = money(task.cost_usd) if task.cost_usd is not None else "cost unknown"
    line = f"{state_icon(task.state)} {task.id} {state_label(task.state)} · {task.agent} · {cost}"
    line += f" · {clip(task.text, 60)}"
    if task.error and task.state not in (TaskState.SUCCEEDED, TaskState.APPROVED, TaskState.NEEDS_REVIEW):
        line += f" — {clip(task.error, 60)}"
    return line


def _waiting_line(task: Task) -> str:
    if task.state == TaskState.AWAITING_APPROVAL:
        estimate = f"est. {money(task.estimate_usd)}" if task.estimate_usd is not None else "no estimate"
        head = f"{state_icon(task.state)} {task.id} needs approval · {task.agent} · {task.category} · {estimate}"
    else:
        cost = money(task.cost_usd) if task.cost_usd is not None else "cost unknown"
        head = f"{state_icon(task.state)} {task.id} needs review · {task.agent} · {task.category} · {cost}"
    return f"{head} · {clip(task.text, 60)}"


def _running_line(task: Task, now: float) -> str:
    took = format_duration(now - task.started_at) if task.started_at else "starting"
    live = f"{money(task.live_cost_usd)} so far" if task.live_cost_usd is not None else "no cost yet"
    return f"{state_icon(task.state)} {task.id} {task.agent} · {took} · {live} · {clip(task.text, 60)}"


# -- the chart -----------------------------------------------------------------------------------
def chart_figure(chart: ChartData) -> Figure:
    """A stacked bar chart of daily cost by agent (a matplotlib Figure on the Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    positions = list(range(len(chart.days)))
    bottom = [0.0] * len(positions)
    for agent, values in chart.series.items():
        axes.bar(positions, values, bottom=bottom, label=agent, width=0.8)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_xticks(positions, chart.labels, rotation=45, ha="right", fontsize=8)
    axes.set_ylabel("USD")
    axes.set_title(f"Daily cost by agent, last {len(positions)} days")
    axes.yaxis.set_major_formatter("${x:,.2f}")
    axes.grid(axis="y", alpha=0.3)
    if chart.series:
        axes.legend(fontsize=8, loc="upper left")
    if chart.empty:
        axes.text(0.5, 0.5, "no cost recorded", transform=axes.transAxes, ha="center", va="center")
    figure.tight_layout()
    return figure


def render_chart_png(chart: ChartData) -> bytes:
    """The chart as PNG bytes (a few hundred ms, longer on first use: run it off the event loop)."""
    import io

    buffer = io.BytesIO()
    chart_figure(chart).savefig(buffer, format="png")
    return buffer.getvalue()


__all__ = ["CHART_DAYS", "ChartData", "Digest", "DigestTask", "build_digest", "chart_figure", "render_chart_png"]
