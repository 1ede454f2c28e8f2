"""Tests for core.routing: accuracy on the labelled sets, agent choice, overrides, hostile text."""

from __future__ import annotations

import random
import re
import statistics
import string
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from core.errors import AgentUnavailable
from core.routing import (
    CATEGORIES,
    RouteDecision,
    Router,
    Rule,
    leading_mention,
    load_default_rules,
    load_rules,
    parse_override,
)
from core.routing.index import _FOLD, _word_stems

DATA = Path(__file__).parent / "data"
AGENTS = {
    "architecture": "claude",
    "backend": "codex",
    "frontend": "gemini",
    "tests": "codex",
    "docs": "gemini",
    "bugfix": "claude",
    "refactor": "codex",
    "devops": "claude",
}


def load_set(name: str) -> list[tuple[str, str]]:
    data = yaml.safe_load((DATA / name).read_text(encoding="utf-8"))
    return [(str(item["text"]), str(item["category"])) for item in data]


def default_router(is_available: Callable[[str], bool] = lambda agent: True) -> Router:
    return Router(load_default_rules(), category_agents=AGENTS, default_agent="claude", is_available=is_available)


def accuracy_report(router: Router, labelled: list[tuple[str, str]]) -> float:
    """Print per-category accuracy and every misroute; return the overall accuracy."""
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    misroutes: list[str] = []
    for text, want in labelled:
        decision = router.route(text)
        total[want] += 1
        if decision.category == want:
            right[want] += 1
        else:
            short = " ".join(text.split())[:90]
            misroutes.append(f"  want {want:<12} got {decision.category:<12} ({decision.rule}): {short}")
    for category in CATEGORIES:
        if total[category]:
            print(f"{category:<13} {right[category]:>3}/{total[category]:<3} {right[category] / total[category]:.0%}")
    print("misroutes:" if misroutes else "misroutes: none", *misroutes, sep="\n")
    score = sum(right.values()) / len(labelled)
    print(f"accuracy {sum(right.values())}/{len(labelled)} = {score:.3f}")
    return score


# -- accuracy ----------------------------------------------------------------------------------


def test_labelled_set_is_big_and_balanced() -> None:
    labelled = load_set("routing_labelled.yaml")
    counts = Counter(category for _, category in labelled)
    assert len(labelled) >= 180
    assert set(counts) == set(CATEGORIES)
    assert min(counts.values()) >= 20
    assert len({text for text, _ in labelled}) == len(labelled), "duplicate texts"


def test_holdout_is_separate_from_labelled_set() -> None:
    labelled = {" ".join(text.lower().split()) for text, _ in load_set("routing_labelled.yaml")}
    holdout = load_set("routing_holdout.yaml")
    assert len(holdout) >= 80
    assert set(Counter(category for _, category in holdout)) == set(CATEGORIES)
    assert not [text for text, _ in holdout if " ".join(text.lower().split()) in labelled]


def test_accuracy_on_labelled_set() -> None:
    assert accuracy_report(default_router(), load_set("routing_labelled.yaml")) >= 0.9


def test_accuracy_on_holdout_set() -> None:
    assert accuracy_report(default_router(), load_set("routing_holdout.yaml")) >= 0.85


@pytest.mark.parametrize(
    ("text", "category"),
    [
        # the object is the tests themselves -> tests, even with "fix" or a CI mention
        ("fix the failing test in test_auth.py", "tests"),
        ("add a React component test", "tests"),
        ("test_checkout_flow is flaky on CI", "tests"),
        # product code misbehaving -> bugfix
        ("the export button doesn't work", "bugfix"),
        # documentation deliverable -> docs, not the area it documents
        ("write docs for the API", "docs"),
        ("document the deployment process", "docs"),
        # infrastructure object -> devops, even with a fix verb
        ("fix the Dockerfile build", "devops"),
        ("the CI pipeline is failing on the lint step", "devops"),
        ("set up GitHub Actions to run tests on every PR", "devops"),
        # intent beats area
        ("refactor the login page CSS", "refactor"),
        ("design the REST API for orders", "architecture"),
    ],
)
def test_hard_case_policy(text: str, category: str) -> None:
    assert default_router().route(text).category == category


# -- the decision ------------------------------------------------------------------------------


def test_decision_names_the_rule_and_what_matched() -> None:
    router = default_router()
    names = {rule.name for rule in load_default_rules()}
    decision = router.route("add unit tests for the parser")
    assert decision.category == "tests"
    assert decision.agent == "codex"
    assert decision.rule in names and decision.rule.startswith("tests.")
    assert 'matched "unit tests"' in decision.reason
    assert f"(rule {decision.rule})" in decision.reason
    assert "codex" in decision.reason


def test_reason_uses_the_right_article() -> None:
    router = default_router()
    assert "so this is an architecture task" in router.route("design the system architecture").reason
    assert "so this is a docs task" in router.route("write docs for the API").reason


def test_to_dict() -> None:
    decision = RouteDecision(agent="codex", category="tests", rule="tests.kind", reason="because")
    assert decision.to_dict() == {
        "agent": "codex",
        "category": "tests",
        "rule": "tests.kind",
        "reason": "because",
        "require_approval": False,
        "require_review": False,
    }


def test_no_match_goes_to_default_category_and_agent() -> None:
    router = Router([], category_agents=AGENTS, default_agent="claude", default_category="backend")
    decision = router.route("hello there")
    assert (decision.agent, decision.category, decision.rule) == ("claude", "backend", "default")
    assert "no rule matched" in decision.reason
    router = default_router()
    assert router.route("").rule == "default"
    assert router.route("¯\\_(ツ)_/¯").category == "backend"


def test_category_agent_then_default_agent() -> None:
    rules = [Rule("mine.docs", r"\bmanual\b", "docs"), Rule("mine.ops", r"\bops\b", "devops")]
    router = Router(rules, category_agents={"docs": "gemini"}, default_agent="claude")
    assert router.route("write the manual").agent == "gemini"
    decision = router.route("ops work")
    assert (decision.agent, decision.category, decision.rule) == ("claude", "devops", "mine.ops")
    assert "default agent" in decision.reason


def test_rule_agent_beats_category_agent() -> None:
    router = Router(
        [Rule("mine.infra", r"terraform", "devops", agent="codex")],
        category_agents={"devops": "claude"},
        default_agent="claude",
    )
    decision = router.route("add terraform for the bucket")
    assert decision.agent == "codex"
    assert "named by the rule" in decision.reason


# -- user rules --------------------------------------------------------------------------------


def test_user_rule_beats_default_rules() -> None:
    user = Rule("mine.deploy-docs", r"\bdeploy", "docs", agent="gemini")
    router = Router([user, *load_default_rules()], category_agents=AGENTS, default_agent="claude")
    decision = router.route("deploy the staging environment to fly.io")
    assert (decision.agent, decision.category, decision.rule) == ("gemini", "docs", "mine.deploy-docs")
    # when the user rule does not match, the defaults decide
    assert router.route("add unit tests for the parser").rule.startswith("tests.")


def test_first_matching_user_rule_wins() -> None:
    rules = [
        Rule("first", r"login", "bugfix", agent="claude"),
        Rule("second", r"login", "frontend", agent="gemini"),
        *load_default_rules(),
    ]
    decision = Router(rules, category_agents=AGENTS, default_agent="claude").route("login page")
    assert (decision.rule, decision.category) == ("first", "bugfix")


def test_approval_and_review_flags_come_from_any_matching_rule() -> None:
    rules = [
        Rule("prod", r"\bprod(uction)?\b", "devops", require_approval=True),
        Rule("billing", r"billing", "backend", require_review=True),
    ]
    router = Router(rules, category_agents=AGENTS, default_agent="claude")
    decision = router.route("deploy billing to production")
    assert decision.rule == "prod"
    assert decision.require_approval and decision.require_review
    assert "rule billing asks for review" in decision.reason
    assert "asks for approval" not in decision.reason  # the rule that fired asked for it
    plain = router.route("something else")
    assert not plain.require_approval and not plain.require_review
    # the flags survive an override
    assert router.route("prod", override="gemini").require_approval


def test_flags_of_a_weaker_weighted_rule_are_kept() -> None:
    rules = [
        Rule("ops.strong", r"terraform", "devops", weight=4),
        Rule("ops.prod", r"\bprod\b", "devops", weight=1, require_approval=True),
    ]
    decision = Router(rules, category_agents=AGENTS, default_agent="claude").route("terraform for prod")
    assert decision.rule == "ops.strong"
    assert decision.require_approval
    assert "rule ops.prod asks for approval" in decision.reason


def test_classify() -> None:
    router = default_router()
    category, rule = router.classify("write docs for the API")
    assert category == "docs" and rule is not None and rule.category == "docs"
    assert router.classify("hello") == ("backend", None)


def test_invalid_pattern_names_the_rule() -> None:
    with pytest.raises(ValueError, match="broken"):
        Router([Rule("broken", "(unclosed", "docs")], category_agents={}, default_agent="claude")


# -- availability and overrides ----------------------------------------------------------------


def test_override_wins() -> None:
    decision = default_router().route("add unit tests for the parser", override="gemini")
    assert (decision.agent, decision.rule, decision.category) == ("gemini", "override", "tests")
    assert "gemini" in decision.reason and "tests" in decision.reason


def test_unavailable_override_raises() -> None:
    router = default_router(is_available=lambda agent: agent != "codex")
    with pytest.raises(AgentUnavailable, match='agent "codex" is not available') as info:
        router.route("fix the login bug", override="codex")
    assert info.value.agent == "codex"


def test_unavailable_agent_is_skipped_for_the_next_candidate() -> None:
    rules = [
        Rule("mine.a", r"alpha", "tests", agent="codex"),
        Rule("mine.b", r"alpha", "docs", agent="gemini"),
    ]
    router = Router(rules, category_agents={}, default_agent="claude", is_available=lambda a: a != "codex")
    decision = router.route("alpha task")
    # the agent comes from the next candidate; the category stays what the text is about
    assert (decision.agent, decision.rule, decision.category) == ("gemini", "mine.a", "tests")
    assert "codex skipped: not available" in decision.reason
    assert "rule mine.b" in decision.reason


def test_skip_takes_the_agent_of_the_next_best_category_and_keeps_the_category() -> None:
    router = default_router(is_available=lambda agent: agent != "codex")
    decision = router.route("refactor the login page CSS")  # refactor -> codex is out
    assert decision.agent != "codex"
    assert decision.category == "refactor"
    assert "codex skipped: not available" in decision.reason


def test_falls_back_to_default_agent_when_every_candidate_is_out() -> None:
    router = Router(
        [Rule("mine", r"alpha", "tests", agent="codex")],
        category_agents={},
        default_agent="claude",
        is_available=lambda a: a != "codex",
    )
    decision = router.route("alpha")
    assert (decision.agent, decision.rule, decision.category) == ("claude", "default", "tests")
    assert "codex skipped: not available" in decision.reason


def test_raises_when_even_the_default_agent_is_out() -> None:
    router = Router(
        [Rule("mine", r"alpha", "tests", agent="codex")],
        category_agents={},
        default_agent="claude",
        is_available=lambda a: False,
    )
    with pytest.raises(AgentUnavailable, match='tried "codex", "claude"') as info:
        router.route("alpha")
    assert info.value.tried == ("codex", "claude")
    with pytest.raises(AgentUnavailable, match='agent "claude" is not available'):
        router.route("nothing matches")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@codex fix the login bug", ("codex", "fix the login bug")),
        ("@codex fix x", ("codex", "fix x")),
        ("   @codex fix x", ("codex", "fix x")),
        ("\n@codex\nfix x", ("codex", "fix x")),
        ("@Codex: fix x", ("codex", "fix x")),
        ("@codex, fix x", ("codex", "fix x")),
        ("@codex", ("codex", "")),
        ("@unknown fix x", (None, "@unknown fix x")),
        ("mail bob@example.com", (None, "mail bob@example.com")),
        ("bob@codex fix x", (None, "bob@codex fix x")),
        ("fix x @codex", (None, "fix x @codex")),
        ("@codex.example.com fix", (None, "@codex.example.com fix")),
        ("@codexx fix", (None, "@codexx fix")),
        ("", (None, "")),
        ("@", (None, "@")),
    ],
)
def test_parse_override(text: str, expected: tuple[str | None, str]) -> None:
    assert parse_override(text, ["codex", "claude"]) == expected


# -- hostile text and speed --------------------------------------------------------------------


def hostile_texts() -> list[str]:
    rng = random.Random(7)
    alphabet = (
        string.printable
        + "\x00\x01\x07\x1b\x7f😀🔥👩‍💻\u202e\u202d\u200f\u0645\u0631\u062d\u0628\u0627İıſK"
        + "*+?()[]{}|\\^$."
    )
    noise = "".join(rng.choice(alphabet) for _ in range(100_000))
    return [
        noise,
        "x " * 50_000,
        "(" * 100_000,
        "\\" * 1000 + ".*+?" * 1000,
        "\u202eoʇ ʇsǝʇ ʎʇʞɐlɟ ɐ xᴉɟ\u202c " * 500,
        "🔥" * 30_000 + " fix the Dockerfile build",
        "a" * 99_990 + " unit tests",
        "\x00" * 1000 + "refactor the login page CSS",
    ]


@pytest.mark.parametrize(
    ("text", "mention"),
    [
        ("@nosuchagent fix it", "nosuchagent"),
        ("  @Ghost: fix it", "Ghost"),
        ("@standin", "standin"),
        ("mail bob@example.com about it", None),
        ("fix it @codex", None),
        ("@types/node is outdated", None),
        ("@bob@example.com ping", None),
    ],
)
def test_leading_mention(text: str, mention: str | None) -> None:
    assert leading_mention(text) == mention


def test_hostile_text_routes_quickly() -> None:
    router = default_router()
    for text in hostile_texts():
        start = time.perf_counter()
        decision = router.route(text)
        elapsed = time.perf_counter() - start
        assert decision.category in CATEGORIES
        assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms for a {len(text)}-char text"
        assert "\n" not in decision.reason


def test_long_text_uses_head_and_tail() -> None:
    router = default_router()
    assert router.route("x " * 50_000 + "fix the Dockerfile build").category == "devops"
    assert router.route("add unit tests " + "x " * 50_000).category == "tests"


def test_routing_is_fast() -> None:
    router = default_router()
    texts = [text for text, _ in load_set("routing_labelled.yaml")]
    timings = []
    for _ in range(20):
        for text in texts:
            start = time.perf_counter()
            router.route(text)
            timings.append(time.perf_counter() - start)
    median = statistics.median(timings)
    print(f"median {median * 1e6:.1f} µs per task")
    assert median < 500e-6  # the target is < 100 µs; the slack is for slow CI machines


def test_a_backtracking_user_rule_cannot_stall_routing() -> None:
    # Python's re needs ~2^n steps for (a+)+$ on n a's and no end: seconds here, hours at 40.
    router = Router(
        [Rule("mine.evil", r"(a+)+$", "docs"), *load_default_rules()], category_agents=AGENTS, default_agent="claude"
    )
    for text in ("a" * 24 + "!", "a" * 3000 + "!", "fix " + "a" * 3999 + "!"):
        start = time.perf_counter()
        decision = router.route(text)
        elapsed = time.perf_counter() - start
        assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms for a {len(text)}-char text"
        assert decision.rule != "mine.evil"
    assert router.route("a" * 30).rule == "mine.evil"


def test_user_rules_refuse_what_re2_cannot_bound() -> None:
    for pattern in (r"(\w+) \1", r"deploy(?! docs)", r"(?<=prod)uction"):
        with pytest.raises(ValueError, match=r"mine\.x.*RE2"):
            Router([Rule("mine.x", pattern, "docs")], category_agents={}, default_agent="claude")
    trusted = Rule("shipped", r"deploy(?! docs)", "devops", weight=1.0, trusted=True)
    assert Router([trusted], category_agents={}, default_agent="claude").route("deploy it").rule == "shipped"


def test_user_rules_take_any_text() -> None:
    router = Router([Rule("mine.fix", r"\bfix", "bugfix")], category_agents={}, default_agent="claude")
    assert router.route("fix \udcff it").rule == "mine.fix"  # a lone surrogate (argv's surrogateescape)
    assert router.route("ça: fix it").rule == "mine.fix"
    assert router.route("ça: affixe").rule == "default"


# -- the word-stem index is exact --------------------------------------------------------------


def test_index_gives_the_same_matches_as_a_full_search() -> None:
    router = default_router()
    texts = [text for text, _ in load_set("routing_labelled.yaml") + load_set("routing_holdout.yaml")]
    texts += [text.upper() for text in texts[:50]] + [text.replace("i", "İ") for text in texts[:50]]
    texts += [text[:2000] for text in hostile_texts()]
    texts += ["ſtaging ſerver", "KUBERNETES pods", "RUNNİNG TESTS ON Cİ", "fix: ı broke the buıld"]
    for text in texts:
        fast = [(index, match.span()) for index, match in router.index.matches(text)]
        full = [
            (index, match.span())
            for index, regex in enumerate(router.index._regexes)
            if (match := regex.search(text)) is not None
        ]
        assert fast == full, text[:80]


def test_index_is_exact_for_user_rules_too() -> None:
    """The default rules that RE2 accepts, as a user's RE2 rules: index and full search agree."""
    rules = []
    for rule in load_default_rules():
        try:
            rules.append(Rule(rule.name, rule.pattern, rule.category, weight=rule.weight))
        except ValueError:
            continue
    usable = []
    for rule in rules:
        try:
            Router([rule], category_agents={}, default_agent="claude")
        except ValueError:
            continue
        usable.append(rule)
    router = Router(usable, category_agents={}, default_agent="claude")
    assert len(usable) > 60 and router.index._ascii_only
    texts = [text for text, _ in load_set("routing_labelled.yaml")[:150]]
    texts += [text.upper() for text in texts[:30]] + [text.replace("i", "İ") for text in texts[:30]]
    texts += ["ſtaging ſerver", "KUBERNETES pods", "RUNNİNG TESTS ON Cİ", "éfix the buıld", "naïve docs"]
    for text in texts:
        fast = [(index, match.span()) for index, match in router.index.matches(text)]
        full = [
            (index, match.span())
            for index, regex in enumerate(router.index._regexes)
            if (match := regex.search(text)) is not None
        ]
        assert fast == full, text[:80]


def test_fold_table_covers_every_character_ignorecase_maps_to_ascii() -> None:
    ascii_word = string.ascii_lowercase + string.digits + "_"
    word_class = re.compile(r"[a-z0-9_]", re.IGNORECASE)
    for code in range(0x80, 0x110000):
        char = chr(code)
        if word_class.fullmatch(char):  # IGNORECASE matches this to an ASCII word character
            folded = char.translate(_FOLD).lower()
            assert folded in ascii_word, hex(code)
            assert re.fullmatch(folded, char, re.IGNORECASE), hex(code)


@pytest.mark.parametrize(
    ("pattern", "stems"),
    [
        (r"\b(docker\w*|k8s|(the )?helm)\b", {"docker", "k8s", "the", "helm"}),
        (r"\bre-?factor", {"re"}),
        (r"(?-i:\b(GET|POST)\s+/)|\bapi/", {"get", "post", "api"}),
        (r"(?:(?<=\bthe )|(?<=\ba ))\bbuilds?", {"build"}),
        (r"\b(unit|e2e)[- ]?tests?\b", {"unit", "e2e"}),
        (r"^\s*plan\b", None),
        (r"\w+_test\.py", None),
        (r"docker", None),  # no word boundary: could start mid-word
        (r"\.(md|rst)\b", None),
        (r"\b(a|\w+)", None),
    ],
)
def test_word_stems(pattern: str, stems: set[str] | None) -> None:
    assert _word_stems(pattern) == (None if stems is None else frozenset(stems))


# -- rule files --------------------------------------------------------------------------------


def test_default_rules_are_well_formed() -> None:
    rules = load_default_rules()
    assert len({rule.name for rule in rules}) == len(rules)
    assert {rule.category for rule in rules} == set(CATEGORIES)
    for rule in rules:
        assert rule.agent is None, rule.name
        assert rule.weight is not None and rule.weight > 0, rule.name
        assert rule.name.split(".")[0] == rule.category, rule.name
        re.compile(rule.pattern)


def test_rule_defaults() -> None:
    rule = Rule("tests.pytest", r"\bpytest\b", "tests")
    assert (rule.agent, rule.require_approval, rule.require_review, rule.weight) == (None, False, False, None)


def test_load_rules_validates(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("- {name: a, pattern: x, category: docs, agent: codex, require_approval: true}\n")
    assert load_rules(path, default_weight=None) == [
        Rule("a", "x", "docs", agent="codex", require_approval=True, weight=None)
    ]
    path.write_text("- {name: a, pattern: x}\n")
    with pytest.raises(ValueError, match="category"):
        load_rules(path)
    path.write_text("- {name: a, pattern: x, category: docs, colour: red}\n")
    with pytest.raises(ValueError, match="colour"):
        load_rules(path)
    path.write_text("name: a\n")
    with pytest.raises(ValueError, match="list"):
        load_rules(path)
