"""The one way Orchestra keeps known secret values out of what it writes, stores and sends.

A :class:`Redactor` is built from the secrets the config knows of (``Config.known_secrets``:
every ``env_from`` value of every agent, the chat tokens, the signing and webhook secrets) and
is applied where text enters a file, the store or the outbox: the runner's logs and events,
every parameter the store binds, the bot's log. :class:`StreamRedactor` does the same for a
byte stream written as it arrives (an agent's stderr), holding back only a possible secret's start.

Standard library only and quick to import: the runner (``python -S``) uses it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 6  # shorter values ("1", "true") would blot out ordinary text


class Redactor:
    """Replaces every known secret value with ``[redacted]``, longest first (no prefix survives).

    ``secrets`` maps a name (the environment variable that holds it) to the value; the name is
    kept only so that task text can later be restored for the agent (see ``redact_refs``).
    """

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        named: dict[str, str] = {}
        for name, value in (secrets or {}).items():
            value = value.strip()
            if len(value) >= MIN_SECRET_CHARS and value not in named:
                named[value] = name
        self._names = named
        forms: set[str] = set()
        for value in named:
            # A value inside JSON text may be escaped: match the forms json.dumps writes too.
            forms |= {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
        self._text = sorted(forms, key=len, reverse=True)
        self._bytes = [form.encode("utf-8", "surrogateescape") for form in self._text]

    @classmethod
    def of(cls, values: Iterable[str]) -> Redactor:
        """A redactor for bare values (their names unknown, so text redacted by it cannot be restored)."""
        return cls({str(i): value for i, value in enumerate(values)})

    def __bool__(self) -> bool:
        return bool(self._text)

    @property
    def values(self) -> list[str]:
        """The raw secret values, longest first."""
        return sorted(self._names, key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self._text:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def data(self, data: bytes) -> bytes:
        for secret in self._bytes:
            if secret in data:
                data = data.replace(secret, REDACTED.encode())
        return data

    def value(self, value: Any) -> Any:
        """A JSON-like value (dicts, lists, strings, bytes) with every string in it redacted."""
        if not self._text:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.data(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value

    def redact_refs(self, text: str) -> tuple[str, list[tuple[int, str]]]:
        """``text`` redacted, and where each secret was: (offset in the redacted text, its name).

        The names (never the values) can be stored beside the text, so the process that starts
        the agent can hand it the text as it was sent (``restore``). A JSON-escaped form is
        redacted but gets no name: putting the raw value back there would break the JSON.
        """
        out: list[str] = []
        refs: list[tuple[int, str]] = []
        size = start = 0
        while True:
            found = [(at, -len(form), form) for form in self._text if (at := text.find(form, start)) >= 0]
            if not found:
                break
            at, _, form = min(found)
            out.append(text[start:at])
            size += at - start
            if form in self._names:
                refs.append((size, self._names[form]))
            out.append(REDACTED)
            size += len(REDACTED)
            start = at + len(form)
        out.append(text[start:])
        return "".join(out), refs

    @staticmethod
    def restore(text: str, refs: list[tuple[int, str]], environ: Mapping[str, str]) -> str:
        """Put the values named in ``refs`` back into redacted ``text`` (unknown names stay redacted)."""
        for at, name in sorted(refs, reverse=True):
            value = environ.get(name, "").strip()
            if value and text[at : at + len(REDACTED)] == REDACTED:
                text = text[:at] + value + text[at + len(REDACTED) :]
        return text


class StreamRedactor:
    """Redacts a byte stream chunk by chunk: ``feed`` returns what is safe to write now.

    Only a tail that could be the start of a secret is held back until the next chunk (or
    ``flush``), so a secret split across two reads is still caught and the file lags by nothing
    in the usual case.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._secrets = redactor._bytes
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._redactor.data(self._pending + chunk)
        hold = 0
        for secret in self._secrets:
            for size in range(min(len(secret) - 1, len(data)), hold, -1):
                if data.endswith(secret[:size]):
                    hold = size
                    break
        self._pending = data[len(data) - hold :] if hold else b""
        return data[: len(data) - hold]

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest
