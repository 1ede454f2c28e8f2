"""A fake OpenAI-compatible transcription endpoint on 127.0.0.1: ``POST /v1/audio/transcriptions``.

It records each multipart request (the fields, the file's name, type and bytes, the Authorization
header) and answers ``{"text": ...}`` with the text it was given, or an error status when told to.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Transcription:
    """One request the endpoint got."""

    path: str
    authorization: str
    fields: dict[str, str] = field(default_factory=dict)
    file_name: str = ""
    file_type: str = ""
    file_bytes: bytes = b""


class FakeTranscriber:
    """``with FakeTranscriber(text="fix the login bug") as server:``; ``server.base_url`` is ``voice.url``."""

    def __init__(self, text: str = "", *, status: int = 200) -> None:
        self.text = text
        self.status = status
        self.requests: list[Transcription] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> Self:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.requests.append(_parse(self.path, self.headers.get("Authorization", ""), self.headers, body))
                if self.path != "/v1/audio/transcriptions":
                    self._answer(404, {"error": {"message": "no such route"}})
                elif owner.status != 200:
                    self._answer(owner.status, {"error": {"message": "Incorrect API key provided"}})
                else:
                    self._answer(200, {"text": owner.text})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="fake-transcriber", daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _parse(path: str, authorization: str, headers: Any, body: bytes) -> Transcription:
    request = Transcription(path, authorization)
    head = f"Content-Type: {headers.get('Content-Type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        if part.get_filename():
            request.file_name = str(part.get_filename())
            request.file_type = part.get_content_type()
            request.file_bytes = payload
        elif name:
            request.fields[str(name)] = payload.decode()
    return request


__all__ = ["FakeTranscriber", "Transcription"]
