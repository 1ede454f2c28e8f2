"""The permission policy: allow, ask and deny rules matched against a neutral tool call.

A rule is ``Tool`` or ``Tool(pattern)``: ``Bash(pytest *)``, ``Edit(src/**)``, ``Read``,
``WebFetch(https://docs.python.org/*)``, ``mcp__*``. Patterns are globs: for ``Bash`` ``*`` is any
text and ``pytest *`` also matches a bare ``pytest``; for paths (``Edit``, ``Read``) ``*`` stays in
one folder, ``**`` crosses folders, a relative pattern is relative to the task's working directory
(and never matches outside it) and ``~`` is the home folder; others match their subject (a URL, a
query) as text.

The verdict of a call, over layers from the most specific (a task's own grants, its category, its
agent) to the global lists:

1. a ``deny`` rule of any layer that matches wins: the call is refused, never asked;
2. otherwise the first layer with a matching rule decides; ``ask`` beats ``allow`` within a layer;
3. nothing matches: ``ask``.

A shell command is split into its simple commands (``a && b | c; d``) and each is judged: any denied
part denies the whole, any asked part asks. A command Orchestra cannot see into (``$(...)``,
backquotes, an unbalanced quote) is asked, and an allowed command that names a path outside the
working directory is asked too, unless the rule that allowed it names the command exactly.

Standard library only: the hook program evaluates it under ``python -S`` on every tool call.
"""

from __future__ import annotations

import os
import re
import shlex
from functools import lru_cache

from core.permissions.call import BASH, EDIT, READ, Record, ToolCall

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: the hook imports this on every tool call
if TYPE_CHECKING:
    from typing import Any, Literal

    Verdict = Literal["allow", "ask", "deny"]
    Expiry = Literal["deny", "allow"]

VERDICTS: tuple[Verdict, ...] = ("deny", "ask", "allow")
MAX_SUBJECT = 100_000  # a longer command or path is asked, never matched
RUN_TIME = "set at run time"  # the layer of the rules an admin added from a chat or the terminal

_RULE = re.compile(r"^\s*([A-Za-z0-9_*.:-]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_PATH_TOOLS = frozenset({EDIT, READ})
_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "|&", ";;", "(", ")"})
_REDIRECTS = frozenset({">", ">>", "<", ">|", "&>", "&>>", "<<<"})
_OPAQUE = ("$(", "`", "<(", ">(")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_HARMLESS_PATHS = ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/tty", "/dev/zero", "/dev/urandom")
# Commands whose second word says what they do (``git push`` is not ``git status``).
_TWO_WORD = frozenset({
    "git", "npm", "npx", "pnpm", "yarn", "pip", "pip3", "uv", "cargo", "go", "docker", "kubectl", "make", "brew", "apt",
})  # fmt: skip


class Rule(Record):
    """One parsed rule; ``text`` is how it was written."""

    __slots__ = ("pattern", "text", "tool")

    def __init__(self, tool: str, pattern: str | None, text: str) -> None:
        self.tool = tool
        self.pattern = pattern
        self.text = text

    def names(self, tool: str) -> bool:
        return self.tool == tool or ("*" in self.tool and _text_glob(self.tool, plain=True).fullmatch(tool) is not None)


def parse_rule(text: str) -> Rule:
    """``Tool`` or ``Tool(pattern)``; ValueError in one line when it is neither."""
    match = _RULE.match(text) if isinstance(text, str) else None
    if match is None or not match.group(1):
        raise ValueError(f"{text!r} is not a rule: write Tool or Tool(pattern), e.g. Bash(pytest *) or Edit(src/**)")
    tool, pattern = match.group(1), match.group(2)
    if pattern is not None and not pattern.strip():
        raise ValueError(f"{text!r}: the pattern in the parentheses is empty (write {tool} alone to match every call)")
    return Rule(tool=tool, pattern=pattern.strip() if pattern is not None else None, text=text.strip())


class Layer(Record):
    """One level of rules: a task's grants, a category's, an agent's, or the global lists."""

    __slots__ = ("allow", "ask", "deny", "name")

    def __init__(
        self, name: str, allow: tuple[Rule, ...] = (), ask: tuple[Rule, ...] = (), deny: tuple[Rule, ...] = ()
    ) -> None:
        self.name = name
        self.allow = allow
        self.ask = ask
        self.deny = deny

    @classmethod
    def of(cls, name: str, lists: dict[str, Any]) -> Layer:
        return cls(name, *(tuple(parse_rule(r) for r in lists.get(kind) or ()) for kind in ("allow", "ask", "deny")))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "allow": [r.text for r in self.allow],
            "ask": [r.text for r in self.ask],
            "deny": [r.text for r in self.deny],
        }


class Judgement(Record):
    """A verdict, the rule that gave it ("" when no rule matched) and why, in a few words."""

    __slots__ = ("rule", "verdict", "why")

    def __init__(self, verdict: Verdict, rule: str = "", why: str = "") -> None:
        self.verdict: Verdict = verdict
        self.rule = rule
        self.why = why


class Policy(Record):
    """The layers that apply to one task, most specific first, and the folder it works in."""

    __slots__ = ("ask_timeout_s", "cwd", "home", "layers", "on_timeout")

    def __init__(
        self,
        cwd: str,
        layers: tuple[Layer, ...] = (),
        ask_timeout_s: float = 600.0,
        on_timeout: Expiry = "deny",
        home: str | None = None,
    ) -> None:
        self.cwd = cwd
        self.layers = layers
        self.ask_timeout_s = ask_timeout_s
        self.on_timeout: Expiry = on_timeout
        self.home = os.path.expanduser("~") if home is None else home

    # -- (de)serialising: the policy travels in spec.json ----------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "cwd": self.cwd,
            "layers": [layer.to_dict() for layer in self.layers],
            "ask_timeout_s": self.ask_timeout_s,
            "on_timeout": self.on_timeout,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        on_timeout: Expiry = "allow" if data.get("on_timeout") == "allow" else "deny"
        return cls(
            cwd=str(data.get("cwd") or os.getcwd()),
            layers=tuple(Layer.of(str(layer.get("name", "")), layer) for layer in data.get("layers") or ()),
            ask_timeout_s=float(data.get("ask_timeout_s") or 600.0),
            on_timeout=on_timeout,
        )

    def with_grants(self, grants: list[str]) -> Policy:
        """This policy with a task's "allow for this task" rules on top (a deny still wins)."""
        return self.with_rules("this task", {"allow": grants})

    def with_rules(self, name: str, lists: dict[str, list[str]]) -> Policy:
        """This policy with one more layer on top (``allow`` / ``ask`` / ``deny`` lists; none: unchanged)."""
        if not any(lists.values()):
            return self
        return Policy(self.cwd, (Layer.of(name, lists), *self.layers), self.ask_timeout_s, self.on_timeout, self.home)

    # -- judging -----------------------------------------------------------------------------------
    def judge(self, call: ToolCall) -> Judgement:
        """allow, ask or deny ``call``, with the rule that decided."""
        if len(call.subject) > MAX_SUBJECT:  # past any rule's intent, and a person sees it clipped anyway
            return Judgement("ask", "", f"it is too long to judge ({len(call.subject):,} characters)")
        if call.tool == BASH:
            return self._judge_command(call.subject)
        return self._judge_one(call.tool, call.subject)

    def _judge_one(self, tool: str, subject: str) -> Judgement:
        for layer in self.layers:
            for rule in layer.deny:
                if self._matches(rule, tool, subject):
                    return Judgement("deny", rule.text, f"denied by {rule.text}")
        for layer in self.layers:
            asked = next((r for r in layer.ask if self._matches(r, tool, subject)), None)
            if asked is not None:
                return Judgement("ask", asked.text, f"asked by {asked.text}")
            allowed = next((r for r in layer.allow if self._matches(r, tool, subject)), None)
            if allowed is not None:
                return Judgement("allow", allowed.text, f"allowed by {allowed.text}")
        return Judgement("ask", "", "no rule allows it")

    def _judge_command(self, command: str) -> Judgement:
        whole = self._judge_one(BASH, command.strip())
        if whole.verdict == "deny":
            return whole
        parts = split_command(command)
        if parts is None:
            rough = (self._judge_one(BASH, p) for p in rough_parts(command))
            denied = next((j for j in rough if j.verdict == "deny"), None)
            if denied is not None:
                return denied
            if whole.verdict == "allow" and _exact(whole.rule, command.strip()):  # a grant of this very line
                return whole
            return Judgement("ask", "", "the command runs commands Orchestra cannot see into")
        judged = [(part, self._judge_one(BASH, canonical(part))) for part in parts]
        for verdict in VERDICTS:
            hit = next(((p, j) for p, j in judged if j.verdict == verdict), None)
            if hit is None:
                continue
            if verdict != "allow":
                return hit[1]
        for part, judgement in judged:
            outside = self.outside_paths(part)
            if outside and not _exact(judgement.rule, part):
                return Judgement("ask", "", f"it touches {outside[0]}, outside the working directory")
        return judged[-1][1] if judged else Judgement("allow", "", "an empty command")

    def _matches(self, rule: Rule, tool: str, subject: str) -> bool:
        if not rule.names(tool):
            return False
        if rule.pattern is None:
            return True
        if tool in _PATH_TOOLS:
            return self._path_matches(rule.pattern, subject, tool)
        return _text_matches(rule.pattern, subject)

    def _path_matches(self, pattern: str, subject: str, tool: str) -> bool:
        if not subject and tool == EDIT:  # an edit that names no file is not "inside" anything
            return False
        path = self.resolve(subject or ".")
        if pattern.startswith("~"):
            pattern = self.home + pattern[1:]
        relative = not pattern.startswith("/")
        if relative:
            if not self.inside(path):
                return False
            base = os.path.normpath(self.resolve("."))
            pattern = os.path.join(base, pattern.removeprefix("./"))
        return _path_glob(os.path.normpath(pattern) if "**" not in pattern else pattern).fullmatch(path) is not None

    # -- paths -------------------------------------------------------------------------------------
    def resolve(self, path: str) -> str:
        """``path`` as an absolute real path (``~`` expanded, relative to the working directory)."""
        path = self.home + path[1:] if path.startswith("~") else path
        return os.path.realpath(os.path.join(self.cwd, path))

    def inside(self, path: str) -> bool:
        root = os.path.realpath(self.cwd)
        return path == root or path.startswith(root.rstrip("/") + "/")

    def outside_paths(self, part: str) -> list[str]:
        """The paths a simple command names that lie outside the working directory."""
        found = []
        for word in _words(part):
            for candidate in (word, word.partition("=")[2]):
                if candidate.startswith(("/", "~", "../")) or candidate == ".." or "/../" in candidate:
                    path = self.resolve(candidate)
                    if not self.inside(path) and not path.startswith(_HARMLESS_PATHS):
                        found.append(candidate)
                    break
        return found


def grant_rule(call: ToolCall, policy: Policy) -> str:
    """The rule "Allow for this task" adds: the same tool and pattern, for the rest of the run."""
    if call.tool == BASH:
        parts = split_command(call.subject)
        if parts is None:  # opaque: only this very line can be granted
            return f"{BASH}({call.subject.strip()})"
        judged = [p for p in parts if policy.judge(ToolCall(BASH, p)).verdict != "allow"]
        part = (judged or parts)[0]
        if policy.outside_paths(part):
            return f"{BASH}({part})"
        words = [w for w in _words(part) if not _ASSIGNMENT.match(w)]
        head = words[:2] if words and words[0] in _TWO_WORD and len(words) > 1 else words[:1]
        return f"{BASH}({' '.join(head)} *)" if head else BASH
    if call.tool in _PATH_TOOLS and call.subject:
        folder = os.path.dirname(policy.resolve(call.subject))
        return f"{call.tool}({folder.rstrip('/')}/**)"
    if call.subject.startswith(("http://", "https://")):
        scheme, _, rest = call.subject.partition("://")
        return f"{call.tool}({scheme}://{rest.split('/', 1)[0]}/*)"
    return call.tool


# -- shell commands -----------------------------------------------------------------------------
def split_command(command: str) -> list[str] | None:
    """The simple commands of a shell line, each as its words; None when it cannot be seen into."""
    if any(mark in command for mark in _OPAQUE):
        return None
    lexer = shlex.shlex(command.replace("\r", " ").replace("\n", " ; "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    parts: list[str] = []
    current: list[str] = []
    try:
        for token in lexer:
            if token in _SEPARATORS:
                if current:
                    parts.append(" ".join(current))
                current = []
            else:
                current.append(token)
    except ValueError:  # an unbalanced quote
        return None
    if current:
        parts.append(" ".join(current))
    return parts


def rough_parts(command: str) -> list[str]:
    """A command cut at its separators without parsing: for deny rules when it cannot be parsed."""
    return [p.strip() for p in re.split(r"&&|\|\||[;|&\n]|\$\(|`|\)", command) if p.strip()]


def canonical(part: str) -> str:
    """A simple command as rules see it: leading ``NAME=value`` dropped, ``rm``'s flags in one form."""
    words = _words(part)
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    if words and words[0] in ("rm", "/bin/rm", "/usr/bin/rm"):
        flags = "".join(w.lstrip("-") for w in words[1:] if w.startswith("-") and not w.startswith("--"))
        long = {w for w in words[1:] if w.startswith("--")}
        recursive = "r" in flags.lower() or "--recursive" in long
        force = "f" in flags or "--force" in long
        targets = [w for w in words[1:] if not w.startswith("-")]
        extra = [w for w in sorted(long) if w not in ("--recursive", "--force")]
        head = ["rm", "-rf"] if recursive and force else ["rm"] + [w for w in words[1:] if w.startswith("-")]
        words = [*head, *extra, *targets]
    return " ".join(words)


def _words(part: str) -> list[str]:
    try:
        return shlex.split(part)
    except ValueError:
        return part.split()


def _exact(rule_text: str, part: str) -> bool:
    if not rule_text:
        return False
    rule = parse_rule(rule_text)
    return rule.pattern is not None and "*" not in rule.pattern and rule.pattern in (part, canonical(part))


def _text_matches(pattern: str, subject: str) -> bool:
    """``subject`` matches a text glob; the common shapes (``cmd``, ``cmd *``) without a regex, since
    the hook judges on every tool call in a fresh process (~80 compiled patterns cost ~10 ms)."""
    star = pattern.find("*")
    if star == -1:
        return subject == pattern
    if star == len(pattern) - 1 and pattern.endswith(" *"):
        head = pattern[:-2]
        return subject == head or subject.startswith(head + " ")
    return _text_glob(pattern).fullmatch(subject) is not None


@lru_cache(maxsize=1024)
def _text_glob(pattern: str, *, plain: bool = False) -> re.Pattern[str]:
    """``*`` is any text; ``cmd *`` also matches a bare ``cmd``."""
    optional_tail = not plain and pattern.endswith(" *")
    core = pattern[:-2] if optional_tail else pattern
    body = ".*".join(re.escape(piece) for piece in core.split("*"))
    return re.compile(body + ("(?: .*)?" if optional_tail else ""), re.DOTALL)


@lru_cache(maxsize=1024)
def _path_glob(pattern: str) -> re.Pattern[str]:
    """``**`` crosses folders (``a/**`` is ``a`` and all below it), ``*`` and ``?`` stay in one."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("/**", i):
            out.append("(?:/.*)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
