"""A fake GitHub (and GitLab) REST API on 127.0.0.1 for the pull-request tests.

GitHub: ``POST /repos/{owner}/{repo}/pulls`` and ``GET`` of the same with ``head`` and ``state``
filters, as documented: a bad bearer token gets 401 ``Bad credentials``, an unknown repository
404 ``Not Found``, a second pull request for a head that has one open 422 "A pull request already
exists for owner:branch.", and with ``bare`` (the remote's bare repository) a head or base that is
not there, or a head with no commits over the base, 422 as GitHub words it. GitLab:
``/api/v4/projects/{url-encoded path}/merge_requests`` the same way (``PRIVATE-TOKEN``, 409 for a
second one). ``answer_next`` scripts a canned answer (a rate limit, a 500). Every request is in
``calls``. A threaded ``http.server``; ``with FakeForge() as forge:`` starts and stops it.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

TOKEN = "ghp_fakeTokenForTheTests0123456789abcdef"
GITLAB_TOKEN = "glpat-fakeTokenForTheTests01234"
REPO = "acme/api"
_MAX_BODY = 4 * 1024 * 1024
_MAX_CALLS = 500


@dataclass
class Call:
    """One request the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 0


@dataclass
class Pull:
    repo: str
    number: int
    head: str
    base: str
    title: str
    body: str
    draft: bool
    state: str = "open"

    def github(self, url: str) -> dict[str, Any]:
        owner = self.repo.split("/")[0]
        return {
            "number": self.number, "state": self.state, "title": self.title, "body": self.body, "draft": self.draft,
            "html_url": f"{url}/{self.repo}/pull/{self.number}", "base": {"ref": self.base},
            "head": {"ref": self.head, "label": f"{owner}:{self.head}"},
        }  # fmt: skip

    def gitlab(self, url: str) -> dict[str, Any]:
        return {
            "iid": self.number, "id": 1000 + self.number, "state": "opened" if self.state == "open" else self.state,
            "title": self.title, "description": self.body, "source_branch": self.head, "target_branch": self.base,
            "web_url": f"{url}/{self.repo}/-/merge_requests/{self.number}",
        }  # fmt: skip


@dataclass
class FakeForge:
    token: str = TOKEN
    gitlab_token: str = GITLAB_TOKEN
    repos: set[str] = field(default_factory=lambda: {REPO})
    bare: Path | None = None  # the remote: heads and bases are checked against it, as the forge would
    calls: list[Call] = field(default_factory=list)
    pulls: list[Pull] = field(default_factory=list)
    _canned: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _serial: threading.Lock = field(default_factory=threading.Lock)  # one request changes the state at a time

    def __post_init__(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """The GitHub API's base URL (``api_base_url``); GitLab's is ``url + "/api/v4"``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def answer_next(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        """The next request gets this answer, whatever it asks."""
        with self._lock:
            self._canned.append((status, body, headers or {}))

    def posts(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == "POST"]

    # -- GitHub ---------------------------------------------------------------------------------

    def github(self, call: Call, repo: str) -> tuple[int, Any]:
        if call.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
        if repo not in self.repos:
            return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
        owner = repo.split("/")[0]
        if call.method == "GET":
            head = call.query.get("head", "")
            state = call.query.get("state", "open")
            found = [p for p in self.pulls if p.repo == repo and (not head or f"{owner}:{p.head}" == head)]
            return 200, [p.github(self.url) for p in found if state == "all" or p.state == state]
        body = call.body
        missing = [k for k in ("head", "base") if not body.get(k)]
        if missing or not body.get("title"):
            return 422, _invalid(*[{"resource": "PullRequest", "field": k, "code": "missing_field"} for k in missing])
        head, base = str(body["head"]), str(body["base"])
        if any(p.repo == repo and p.head == head and p.state == "open" for p in self.pulls):
            return 422, _invalid({"resource": "PullRequest", "code": "custom",
                                  "message": f"A pull request already exists for {owner}:{head}."})  # fmt: skip
        if problem := self._branch_problem(head, base):
            return 422, _invalid(problem)
        if len(str(body.get("body") or "")) > 65536:
            return 422, _invalid({"resource": "Issue", "code": "custom", "field": "body",
                                  "message": "body is too long (maximum is 65536 characters)"})  # fmt: skip
        pull = Pull(repo, len(self.pulls) + 1, head, base, str(body["title"]), str(body.get("body") or ""),
                    bool(body.get("draft")))  # fmt: skip
        self.pulls.append(pull)
        return 201, pull.github(self.url)

    def _branch_problem(self, head: str, base: str) -> dict[str, Any] | None:
        if self.bare is None:
            return None
        for name, ref in (("base", base), ("head", head)):
            if not _git_ok(self.bare, "rev-parse", "--verify", "-q", f"refs/heads/{ref}"):
                return {"resource": "PullRequest", "field": name, "code": "invalid"}
        ahead = subprocess.run(["git", "-C", str(self.bare), "rev-list", "--count", f"{base}..{head}"],
                               capture_output=True, text=True, check=False, timeout=10).stdout.strip()  # fmt: skip
        if ahead == "0":
            return {"resource": "PullRequest", "code": "custom", "message": f"No commits between {base} and {head}"}
        return None

    # -- GitLab ---------------------------------------------------------------------------------

    def gitlab(self, call: Call, repo: str) -> tuple[int, Any]:
        if call.headers.get("private-token") != self.gitlab_token:
            return 401, {"message": "401 Unauthorized"}
        if repo not in self.repos:
            return 404, {"message": "404 Project Not Found"}
        if call.method == "GET":
            source = call.query.get("source_branch", "")
            state = {"opened": "open"}.get(call.query.get("state", "all"), "all")
            found = [p for p in self.pulls if p.repo == repo and (not source or p.head == source)]
            return 200, [p.gitlab(self.url) for p in found if state == "all" or p.state == state]
        body = call.body
        if not body.get("title"):
            return 400, {"message": {"title": ["can't be blank"]}}
        head, base = str(body.get("source_branch")), str(body.get("target_branch"))
        if opened := [p for p in self.pulls if p.repo == repo and p.head == head and p.state == "open"]:
            said = f"Another open merge request already exists for this source branch: !{opened[0].number}"
            return 409, {"message": [said]}
        pull = Pull(repo, len(self.pulls) + 1, head, base, str(body["title"]), str(body.get("description") or ""),
                    str(body["title"]).startswith("Draft:"))  # fmt: skip
        self.pulls.append(pull)
        return 201, pull.gitlab(self.url)

    def record(self, call: Call) -> None:
        with self._lock:
            if len(self.calls) < _MAX_CALLS:
                self.calls.append(call)

    def canned(self) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        with self._lock:
            return self._canned.pop(0) if self._canned else None


def _invalid(*errors: dict[str, Any]) -> dict[str, Any]:
    return {"message": "Validation Failed", "errors": list(errors),
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"}  # fmt: skip


def _git_ok(repo: Path, *args: str) -> bool:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False, timeout=10).returncode == 0


def _handler_for(forge: FakeForge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests read ``calls``
            return

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            raw_path, _, raw_query = self.path.partition("?")
            length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            query = dict(urllib.parse.parse_qsl(raw_query))
            headers = {k.lower(): v for k, v in self.headers.items()}
            call = Call(self.command, raw_path, query, headers, body if isinstance(body, dict) else {})
            status, payload, extra = self._route(call, raw_path)
            call.status = status
            forge.record(call)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _route(self, call: Call, raw_path: str) -> tuple[int, Any, dict[str, str]]:
            if (canned := forge.canned()) is not None:
                return canned
            parts = raw_path.strip("/").split("/")
            with forge._serial:
                return self._forge(call, parts)

        def _forge(self, call: Call, parts: list[str]) -> tuple[int, Any, dict[str, str]]:
            if len(parts) == 4 and parts[0] == "repos" and parts[3] == "pulls":
                return (*forge.github(call, f"{parts[1]}/{parts[2]}"), {})
            if len(parts) == 5 and parts[:3] == ["api", "v4", "projects"] and parts[4] == "merge_requests":
                return (*forge.gitlab(call, urllib.parse.unquote(parts[3])), {})
            return 404, {"message": "Not Found"}, {}

    return Handler
