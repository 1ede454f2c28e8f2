"""bots.yaml ``plans``: templates a request can become a plan by, the planner agent, and fallbacks."""

from __future__ import annotations

from pydantic import Field, field_validator

from core.config.fields import StrictModel


class TemplateStep(StrictModel):
    """One step of a template: its words (``{task}`` is the request), category and the steps it waits for."""

    title: str = Field(description="What the step is, as its card shows it.")
    text: str | None = Field(
        default=None, description="The step's task; {task} is the request (default: title: request)."
    )
    category: str | None = Field(default=None, description="Its category (its agent by routing.categories).")
    agent: str | None = Field(default=None, description="Its agent, over the category's.")
    after: list[int] = Field(default_factory=list, description="The steps (from 1) it waits for.")


class PlanTemplate(StrictModel):
    """A plan a request becomes when it matches ``match`` (an RE2 pattern, case-insensitive)."""

    match: str = Field(description="The requests it is for, e.g. '(?i)^add .* (feature|with)'.")
    steps: list[TemplateStep] = Field(min_length=1, max_length=20)

    @field_validator("match")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        import re2

        try:
            re2.compile(pattern)
        except re2.error as exc:
            raise ValueError(f"{pattern!r} is not an RE2 pattern: {exc}") from None
        return pattern


class PlansConfig(StrictModel):
    """Plans: one request as steps, independent ones in parallel (see README, Plans)."""

    templates: dict[str, PlanTemplate] = Field(default_factory=dict, description="Named templates, tried in order.")
    planner: str | None = Field(
        default=None, description="The agent asked for a JSON plan by `orchestra delegate --plan auto` or /plan."
    )
    fallback: dict[str, str] = Field(
        default_factory=dict, description="Category -> agent a step runs on after failing twice on its own."
    )


__all__ = ["PlanTemplate", "PlansConfig", "TemplateStep"]
