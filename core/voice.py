"""Voice notes as text: one POST to an OpenAI-compatible ``/audio/transcriptions`` endpoint.

The endpoint is the user's (``voice.url``: OpenAI, Groq, a local whisper server …), the key comes
from the environment variable ``voice.key_env`` names (it is a known secret: redacted everywhere),
the model from ``voice.model``. The request is ``multipart/form-data`` with ``file``, ``model``,
``response_format=json`` (and ``language`` when set); the answer's ``text`` is the transcript.
Every failure is one :class:`TranscriptionFailed` line without the key or the audio in it.

This is the seam for a local speech model later: anything that turns a file into text fits here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from core.errors import OrchestraError

if TYPE_CHECKING:
    from core.config.files import VoiceConfig

log = logging.getLogger(__name__)
MAX_TRANSCRIPT_CHARS = 4000


class TranscriptionFailed(OrchestraError):
    """The endpoint could not turn the voice note into text: one line saying why."""


def transcribe(voice: VoiceConfig, audio: Path, *, mime: str = "", env: dict[str, str] | None = None) -> str:
    """The text of the voice note at ``audio``; raises :class:`TranscriptionFailed`."""
    endpoint = voice.endpoint()
    if endpoint is None:
        raise TranscriptionFailed("voice is not set up (voice.url in bots.yaml)")
    environ = os.environ if env is None else env
    key = environ.get(voice.key_env, "") if voice.key_env else ""
    if voice.key_env and not key:
        raise TranscriptionFailed(f"${voice.key_env} is not set, so the transcription endpoint cannot be asked")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = {"model": voice.model, "response_format": "json"}
    if voice.language:
        data["language"] = voice.language
    try:
        with audio.open("rb") as handle, httpx.Client(timeout=voice.timeout_s) as client:
            files = {"file": (audio.name, handle, mime or "application/octet-stream")}
            response = client.post(endpoint, headers=headers, data=data, files=files)
    except httpx.TimeoutException:
        raise TranscriptionFailed(f"the transcription endpoint did not answer within {voice.timeout_s:g} s") from None
    except (httpx.HTTPError, OSError) as exc:
        raise TranscriptionFailed(f"cannot reach the transcription endpoint ({type(exc).__name__})") from None
    if response.status_code in (401, 403):
        raise TranscriptionFailed(
            f"the transcription endpoint refused the key in ${voice.key_env} ({response.status_code})"
        )
    if response.status_code >= 400:
        raise TranscriptionFailed(f"the transcription endpoint answered {response.status_code}: {_error_of(response)}")
    try:
        text = response.json().get("text")
    except (ValueError, AttributeError):
        text = None
    if not isinstance(text, str):
        raise TranscriptionFailed("the transcription endpoint's answer has no text")
    text = " ".join(text.split())
    if not text:
        raise TranscriptionFailed("nothing was heard in the voice note")
    return text[:MAX_TRANSCRIPT_CHARS]


def _error_of(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return " ".join(str(message or response.reason_phrase or "error").split())[:200]


__all__ = ["MAX_TRANSCRIPT_CHARS", "TranscriptionFailed", "transcribe"]
