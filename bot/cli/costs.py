"""The CLI's money commands: cost (the report), budget (see or change one) and digest (the morning digest, now)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bot.cli.output import as_json
from core.errors import OrchestraError

if TYPE_CHECKING:
    import argparse

    from bot.app import App


def cost(app: App, args: argparse.Namespace) -> int:
    from core.costs import render_cost_report

    report = app.service.cost_report(days=args.days, all_time=args.all)
    if args.json:
        print(as_json(report.to_dict()))
        return 0
    print(render_cost_report(report, only=args.by))
    return 0


def budget(app: App, args: argparse.Namespace) -> int:
    if args.which is not None:
        if args.value is None:
            raise OrchestraError(f"give the new {args.which} budget: an amount, off or reset")
        line = app.service.set_budget(args.which, args.value)
        if not args.json:
            print(f"per-{line.word} budget is now {line.shown()}")
    if args.json:
        print(as_json([dataclasses.asdict(line) for line in app.service.budgets()]))
    else:
        print(app.service.budget_report())
    return 0


def digest(app: App, args: argparse.Namespace) -> int:
    shown = app.service.digest()
    if args.png is not None:
        from core.digest import render_chart_png

        try:
            args.png.write_bytes(render_chart_png(shown.chart))
        except OSError as exc:
            raise OrchestraError(f"cannot write the chart to {args.png}: {exc.strerror or exc}") from None
    if args.json:
        print(as_json({**shown.to_dict(), "chart_png": str(args.png) if args.png else None}, ensure_ascii=False))
        return 0
    print(shown.text)
    if args.png is not None:
        print(f"chart: {args.png}")
    return 0
