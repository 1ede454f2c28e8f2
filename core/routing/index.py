"""The compiled rule patterns and the word-stem index that says which can match where in a text.

Bounded: a rule the user wrote is matched by RE2, whose time is linear in the text whatever the
pattern (``(a+)+$`` cannot freeze routing); RE2 has no lookaround and no backreferences, so such
patterns are refused when bots.yaml is loaded. Only the shipped default rules (``trusted``) use
Python's ``re``, lookarounds included. RE2 (google-re2) is imported on the first compile only.

Speed: every pattern is compiled once. Most rule branches start with ``\\b`` and a literal word
stem, so a match can only begin at a word that starts with that stem. :class:`StemIndex` works
those stems out of each parsed pattern, looks the task's words up in an index and calls
``regex.match`` only at those words; patterns it cannot analyse are searched in full. The result
is exactly what ``regex.search`` would give, only faster.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.routing.rules import Rule

_WORD = re.compile(r"\w+")
_ASCII_WORD = "abcdefghijklmnopqrstuvwxyz0123456789_"

# Case folding for the index, one character to one: ``str.lower`` plus the four non-ASCII
# characters that IGNORECASE matches to an ASCII letter but ``lower`` does not turn into it
# (U+0130 would even become two characters). Stems are ASCII only, so this is all it takes.
_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}


class StemIndex:
    """The compiled patterns of a fixed list of rules, and which rules can match at which words.

    Raises ``ValueError`` naming the rule when a pattern does not compile.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._regexes: list[Any] = []  # a compiled ``re`` pattern, or an RE2 one for untrusted rules
        self._unindexed: list[int] = []  # rules whose pattern could not be analysed
        # RE2's \b and \w are ASCII-only while the index splits words the Unicode way: for
        # non-ASCII texts these rules are searched in full.
        self._ascii_only: list[int] = []
        # ``_long`` / ``_short`` serve any text; ``_ascii`` serves ASCII texts with one lookup per
        # word: it also files one- and two-letter stems under every ASCII key they can begin
        # (``ci`` under ``ci``, ``cia``, ``cib``, ...).
        self._long: dict[str, list[tuple[str, int]]] = {}  # stem[:3] -> [(stem, rule index)]
        self._short: dict[str, list[int]] = {}  # one- or two-letter stem -> [rule index]
        self._ascii: dict[str, list[tuple[str, int]]] = {}  # word[:3] -> [(stem, rule index)]
        for index, rule in enumerate(rules):
            try:
                regex = re.compile(rule.pattern, re.IGNORECASE) if rule.trusted else compile_rule_pattern(rule.pattern)
            except (re.error, ValueError) as exc:
                raise ValueError(f"routing rule {rule.name!r} has an invalid pattern: {exc}") from None
            self._regexes.append(regex)
            stems = word_stems(rule.pattern)
            if stems is None:
                self._unindexed.append(index)
                continue
            if not rule.trusted:
                self._ascii_only.append(index)
            for stem in stems:
                if len(stem) >= 3:
                    self._long.setdefault(stem[:3], []).append((stem, index))
                    self._ascii.setdefault(stem[:3], []).append((stem, index))
                    continue
                self._short.setdefault(stem, []).append(index)
                keys, frontier = [stem], [stem]
                while len(frontier[0]) < 3:
                    frontier = [key + char for key in frontier for char in _ASCII_WORD]
                    keys += frontier
                for key in keys:
                    self._ascii.setdefault(key, []).append((stem, index))
        self._ascii_only_set = frozenset(self._ascii_only)
        self.uses_re2 = not all(rule.trusted for rule in rules)
        """Some pattern is RE2's, which takes UTF-8: a text must have no lone surrogates."""

    def matches(self, text: str) -> list[tuple[int, Any]]:
        """Every rule that matches ``text``, in rule order (by index), with its leftmost match."""
        starts = self._word_starts(text)
        found: list[tuple[int, Any]] = []
        if starts is None:  # the folded text is not aligned with the original: search everything
            for index, regex in enumerate(self._regexes):
                match = regex.search(text)
                if match is not None:
                    found.append((index, match))
            return found
        full = self._unindexed if text.isascii() else [*self._unindexed, *self._ascii_only]
        for index in full:
            match = self._regexes[index].search(text)
            if match is not None:
                found.append((index, match))
        for index, positions in starts.items():
            regex = self._regexes[index]
            for pos in positions:
                match = regex.match(text, pos)
                if match is not None:
                    found.append((index, match))
                    break
        found.sort(key=lambda item: item[0])
        return found

    def _word_starts(self, text: str) -> dict[int, list[int]] | None:
        """For each indexed rule, the word starts where one of its stems begins (ascending)."""
        starts: dict[int, list[int]] = {}
        if text.isascii():
            ascii_index = self._ascii
            for word in _WORD.finditer(text.lower()):
                token = word.group()
                entries = ascii_index.get(token[:3])
                if entries is None:
                    continue
                start = word.start()
                for stem, index in entries:
                    if token.startswith(stem):
                        positions = starts.get(index)
                        if positions is None:
                            starts[index] = [start]
                        elif positions[-1] != start:
                            positions.append(start)
            return starts
        folded = text.translate(_FOLD).lower()
        if len(folded) != len(text):
            return None
        ascii_only = self._ascii_only_set
        long_index, short_index = self._long, self._short
        for word in _WORD.finditer(text):
            start, end = word.span()
            token = folded[start:end]
            hits: list[int] = []
            entries = long_index.get(token[:3])
            if entries is not None:
                hits.extend(index for stem, index in entries if token.startswith(stem))
            if short_index:
                hits.extend(short_index.get(token[:1], ()))
                if len(token) > 1:
                    hits.extend(short_index.get(token[:2], ()))
            for index in hits:
                if index in ascii_only:
                    continue
                positions = starts.get(index)
                if positions is None:
                    starts[index] = [start]
                elif positions[-1] != start:
                    positions.append(start)
        return starts


# -- user patterns: RE2 ---------------------------------------------------------------------


@functools.cache
def _re2_options() -> Any:
    import re2

    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # RE2 would print every refused pattern to stderr itself
    return options


def compile_rule_pattern(pattern: str) -> Any:
    """Compile a user's rule pattern with RE2 (case-insensitive); ``ValueError`` when RE2 refuses it.

    RE2 matches in time linear in the text, so no pattern can stall routing; in exchange it has
    no lookaround, no backreferences and a cap on the compiled size.
    """
    import re2

    try:
        return re2.compile(pattern, _re2_options())
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        hint = ""
        if "perl operator" in str(detail) or re.search(r"escape sequence: \\[1-9]", str(detail)):
            hint = "; rules use RE2 syntax, which has no lookaround or backreferences"
        raise ValueError(f"{detail}{hint}") from None


# -- the word stems of a pattern -------------------------------------------------------------

_sre: Any = importlib.import_module("re._parser")
_C: Any = importlib.import_module("re._constants")
_REPEATS = {_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", _C.MAX_REPEAT)}
_BOUNDARIES = {_C.AT_BOUNDARY, _C.AT_UNI_BOUNDARY, _C.AT_BEGINNING, _C.AT_BEGINNING_STRING}


# pattern -> its stems: a pure function's results, remembered, and filled in advance from the
# cached default rules (core.routing.rules) so a start does not parse each of their patterns.
_STEMS: dict[str, frozenset[str] | None] = {}


def word_stems(pattern: str) -> frozenset[str] | None:
    """:func:`_word_stems`, remembered per pattern."""
    try:
        return _STEMS[pattern]
    except KeyError:
        stems = _STEMS[pattern] = _word_stems(pattern)
        return stems


def remember_stems(known: dict[str, frozenset[str] | None]) -> None:
    """Take stems worked out earlier (by :func:`stems_of`, in another process) as known."""
    _STEMS.update(known)


def stems_of(patterns: list[str]) -> dict[str, frozenset[str] | None]:
    """The stems of each pattern, to keep with the patterns (see :func:`remember_stems`)."""
    return {pattern: word_stems(pattern) for pattern in patterns}


def _word_stems(pattern: str) -> frozenset[str] | None:
    """Literal stems that every match of ``pattern`` starts with, at the start of a word.

    ``\\b(docker\\w*|k8s|(the )?helm)`` gives ``{"docker", "k8s", "the", "helm"}``: any match
    begins at a word that starts with one of them (case-insensitively). ``None`` when that
    cannot be shown (a branch starts with ``\\w``, ``.``, a class, is not at a word boundary,
    ...); such patterns are simply searched in full.
    """
    try:
        parsed = _sre.parse(pattern, re.IGNORECASE)
        stems = _seq_stems(list(parsed), False)
    except (re.error, TypeError, ValueError, LookupError, AttributeError, RecursionError):
        return None  # a construct this walker does not know: search in full
    if not stems or not all(stem.isascii() for stem in stems):
        return None
    return frozenset(stems)


def _seq_stems(items: list[Any], bounded: bool) -> set[str] | None:
    """Stems for a sequence of parsed regex items (see :func:`_word_stems`)."""
    i = 0
    while i < len(items):
        op, av = items[i]
        if op is _C.AT and av in _BOUNDARIES:
            bounded = True
        elif op is _C.AT and av in (_C.AT_NON_BOUNDARY, _C.AT_UNI_NON_BOUNDARY):
            bounded = False
        elif op not in (_C.ASSERT, _C.ASSERT_NOT):  # lookarounds consume nothing: skip them
            break
        i += 1
    if i == len(items):
        return None
    op, av = items[i]
    rest = items[i + 1 :]
    if op is _C.LITERAL:
        if not bounded:
            return None
        chars = []
        for item_op, item_av in items[i:]:
            if item_op is not _C.LITERAL:
                break
            chars.append(chr(item_av))
        stem = _WORD.match("".join(chars).translate(_FOLD).lower())
        return {stem.group()} if stem else None
    if op is _C.SUBPATTERN:
        return _seq_stems(list(av[-1]) + rest, bounded)
    if op is _C.BRANCH:
        stems: set[str] = set()
        for alternative in av[1]:
            found = _seq_stems(list(alternative) + rest, bounded)
            if found is None:
                return None
            stems |= found
        return stems
    if op in _REPEATS:
        low, _, body = av
        taken = _seq_stems(list(body), bounded)  # the repeated body alone: its prefix is safe
        if low >= 1 or taken is None:
            return taken
        skipped = _seq_stems(rest, bounded)
        return None if skipped is None else taken | skipped
    return None
