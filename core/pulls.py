"""Push a task's branch to its project's remote and open a pull request for it (GitHub or GitLab).

The caller runs :func:`push`, then :func:`open_pull_request`. Both are safe to repeat: pushing an
unchanged branch changes nothing, and opening one for a branch that already has one open returns
that one (``existed=True``), so a second tap of "Open PR" gives the same link, not an error. Both
block (a git or gh subprocess, or HTTP calls each bounded by ``timeout_s``): async code runs them
in a thread. Every failure is a :class:`PullRequestError` of one line that never holds the token;
:func:`unavailable` says beforehand, without touching the network, what is missing.

The forge's REST API is spoken with httpx; ``client: gh`` runs the GitHub CLI instead (argv only,
the body on stdin). Nothing here reads ``os.environ`` but :func:`push` when given no ``env``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import PullRequestError
from core.redact import REDACTED

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import httpx

    from core.config.projects import ProjectConfig, PullRequestsConfig

log = logging.getLogger(__name__)

MAX_TITLE = 256  # GitHub's limit on a pull request's title, in characters
MAX_BODY = 65536  # GitHub's limit on a pull request's body
MAX_GITLAB_TITLE = 255
MAX_GITLAB_BODY = 1_000_000  # GitLab's description limit is 1,048,576
PUSH_TIMEOUT_S = 120.0
_CLIPPED = "\n\n… (clipped)"
_USER_AGENT = "orchestra (pull requests)"
_PULL_URL = re.compile(r"https?://\S+?/(?:pull|merge_requests)/(\d+)")
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s@]+@")


@dataclass(frozen=True)
class PullRequest:
    """An open pull (or merge) request: its web page, its number, and whether it was open already."""

    url: str
    number: int
    existed: bool  # one was already open for the branch: nothing new was opened


def unavailable(project: ProjectConfig, env: Mapping[str, str], *, project_name: str | None = None) -> str | None:
    """None when a pull request can be opened for ``project``; else one line saying what to set.

    Cheap and offline: it reads the config, ``env`` and (``client: gh``) PATH, never the network,
    so a chat can decide whether to offer the button. ``project_name`` makes the line name the key.
    """
    where = f"projects.{project_name}" if project_name else "the project"
    settings = project.pull_requests
    if settings is None:
        return f"{where} has no pull_requests: settings"
    if not project.remote:
        return f"{where} has no remote"
    if settings.client == "gh":
        return None if _which_gh(env) else "gh is not installed"
    if not env.get(settings.token_env, "").strip():
        key = f"{where}.pull_requests.token_env" if project_name else "pull_requests.token_env"
        return f"{settings.token_env} is not set ({key})"
    return None


def push(repo: Path, remote: str, branch: str, *, env: Mapping[str, str] | None = None) -> None:
    """Push ``branch`` of ``repo`` to the branch of the same name on ``remote`` (never forced).

    git may not prompt (no terminal, ``GIT_TERMINAL_PROMPT=0``) and gets ``PUSH_TIMEOUT_S``;
    :class:`PullRequestError` ``git push to REMOTE failed: why`` (credentials in URLs redacted).
    """
    if not remote or remote.startswith("-"):
        raise PullRequestError(f"{remote!r} is not a git remote")
    if not branch or any(c.isspace() or c == ":" for c in branch):
        raise PullRequestError(f"{branch!r} is not a branch name")
    ref = f"refs/heads/{branch}"
    argv = ["git", "-C", str(repo), "push", "--porcelain", remote, f"{ref}:{ref}"]
    environment = {**(os.environ if env is None else env), "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=PUSH_TIMEOUT_S,
            env=environment, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise PullRequestError(f"git push to {remote} did not finish within {PUSH_TIMEOUT_S:g}s") from None
    except OSError as exc:
        raise PullRequestError(f"git push to {remote} failed: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise PullRequestError(f"git push to {remote} failed: {_push_refusal(done.stdout, done.stderr)}")
    log.info("pushed %s to %s", branch, remote)


def open_pull_request(
    project_name: str,
    settings: PullRequestsConfig,
    *,
    head: str,
    base: str,
    title: str,
    body: str,
    env: Mapping[str, str],
    timeout_s: float = 20.0,
) -> PullRequest:
    """Open a pull request of branch ``head`` into ``base`` (already pushed), or return the open one.

    The token is ``env[settings.token_env]`` (optional with ``client: gh``, which has its own
    login). ``title`` is clipped to 256 characters, ``body`` to the forge's limit. Each HTTP call
    waits at most ``timeout_s`` (gh, which makes several, three times that).
    """
    token = env.get(settings.token_env, "").strip()
    title = _clip(" ".join(title.split()) or head, MAX_TITLE, "…")
    try:
        if settings.client == "gh":
            opened = _open_with_gh(settings, head, base, title, body, env, token, 3 * timeout_s)
        elif not token:
            raise PullRequestError(f"{settings.token_env} is not set (projects.{project_name}.pull_requests.token_env)")
        elif not token.isascii() or any(c.isspace() for c in token):
            raise PullRequestError(f"{settings.token_env} does not hold a token (it has spaces or non-ASCII text)")
        else:
            opened = _open_with_api(settings, head, base, title, body, token, timeout_s)
    except PullRequestError as exc:
        raise PullRequestError(_one_line(str(exc).replace(token, REDACTED) if token else str(exc))) from None
    log.info("%s pull request %s for %s", "found the open" if opened.existed else "opened", opened.url, head)
    return opened


# -- the REST APIs ------------------------------------------------------------------------------


def _open_with_api(
    settings: PullRequestsConfig, head: str, base: str, title: str, body: str, token: str, timeout_s: float
) -> PullRequest:
    import httpx  # here, not at the top: unavailable() and push() are used where start-up time counts

    github = settings.provider == "github"
    headers = {"User-Agent": _USER_AGENT}
    if github:
        headers |= {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": "2022-11-28"}  # fmt: skip
    else:
        headers["PRIVATE-TOKEN"] = token
    api = settings.api_base_url.rstrip("/")
    host = urllib.parse.urlsplit(api).netloc
    with httpx.Client(base_url=api, headers=headers, timeout=timeout_s, follow_redirects=False) as client:
        if github:
            return _github(_Calls(client, host, timeout_s), settings, head, base, title, body)
        return _gitlab(_Calls(client, host, timeout_s), settings, head, base, title, body)


@dataclass(frozen=True)
class _Calls:
    """One forge's HTTP client; a network failure or timeout becomes one line naming the host."""

    client: httpx.Client
    host: str
    timeout_s: float

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            return self.client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise PullRequestError(f"{self.host} did not answer within {self.timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            raise PullRequestError(f"cannot reach {self.host}: {_first_line(exc)}") from None


def _github(call: _Calls, settings: PullRequestsConfig, head: str, base: str, title: str, body: str) -> PullRequest:
    owner, _ = settings.repo.split("/", 1)
    path = f"/repos/{settings.repo}/pulls"
    payload = {"title": title, "head": head, "base": base, "body": _clip(body, MAX_BODY), "draft": settings.draft}
    answer = call("POST", path, json=payload)
    if answer.status_code == 201:
        return _github_pull(_json(answer), existed=False)
    if answer.status_code == 422 and "already exists" in _details(_json(answer)):
        listed = call("GET", path, params={"head": f"{owner}:{head}", "state": "open"})
        pulls = _json(listed)
        if listed.status_code == 200 and isinstance(pulls, list) and pulls:
            return _github_pull(pulls[0], existed=True)
        raise PullRequestError(f"GitHub says a pull request for {head} is open but does not list it")
    raise PullRequestError(_refusal("GitHub", "pull request", answer, settings, head, base))


def _github_pull(data: Any, *, existed: bool) -> PullRequest:
    if isinstance(data, dict) and isinstance(data.get("html_url"), str) and isinstance(data.get("number"), int):
        return PullRequest(data["html_url"], data["number"], existed)
    raise PullRequestError("GitHub's answer has no html_url and number")


def _gitlab(call: _Calls, settings: PullRequestsConfig, head: str, base: str, title: str, body: str) -> PullRequest:
    path = f"/projects/{urllib.parse.quote(settings.repo, safe='')}/merge_requests"
    title = _clip(f"Draft: {title}" if settings.draft else title, MAX_GITLAB_TITLE, "…")  # a draft, to GitLab
    body = _clip(body, MAX_GITLAB_BODY)
    payload = {"source_branch": head, "target_branch": base, "title": title, "description": body}
    answer = call("POST", path, json=payload)
    if answer.status_code == 201:
        return _gitlab_merge_request(_json(answer), existed=False)
    if answer.status_code == 409 and "already exists" in _details(_json(answer)):
        listed = call("GET", path, params={"source_branch": head, "state": "opened"})
        requests = _json(listed)
        if listed.status_code == 200 and isinstance(requests, list) and requests:
            return _gitlab_merge_request(requests[0], existed=True)
        raise PullRequestError(f"GitLab says a merge request for {head} is open but does not list it")
    raise PullRequestError(_refusal("GitLab", "merge request", answer, settings, head, base))


def _gitlab_merge_request(data: Any, *, existed: bool) -> PullRequest:
    if isinstance(data, dict) and isinstance(data.get("web_url"), str) and isinstance(data.get("iid"), int):
        return PullRequest(data["web_url"], data["iid"], existed)
    raise PullRequestError("GitLab's answer has no web_url and iid")


def _refusal(forge: str, kind: str, answer: httpx.Response, settings: PullRequestsConfig, head: str, base: str) -> str:
    """The one line for an answer that opened nothing, by its status."""
    status, data = answer.status_code, _json(answer)
    message = _details(data).removeprefix(f"{status} ")  # GitLab's say "401 Unauthorized"
    if status == 401:
        return f"{forge} refused the token in {settings.token_env} (401 {message or 'Bad credentials'})"
    if status in (403, 429) and (retry := _retry_after(answer.headers)):
        return f"{forge} rate-limited the token in {settings.token_env}; retry after {retry}"
    if status == 403:
        return f"{forge} refused to open a {kind} on {settings.repo} (403 {message or 'Forbidden'})"
    if status == 404:
        noun = "repository" if forge == "GitHub" else "project"
        return f"{forge} has no {noun} {settings.repo}, or the token in {settings.token_env} cannot see it"
    if status in (400, 409, 422):
        return f"{forge} would not open a {kind} of {head} into {base}: {message or status}"
    return f"{forge} answered {status} {answer.reason_phrase}" + (f": {message}" if message else "")


def _retry_after(headers: httpx.Headers) -> str | None:
    """When a rate-limited caller may try again: ``60s`` or ``14:05:00 UTC``; None if not rate-limited."""
    if (seconds := headers.get("retry-after", "")).isdigit():
        return f"{seconds}s"
    if headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        return time.strftime("%H:%M:%S UTC", time.gmtime(int(reset))) if reset.isdigit() else "a while"
    return None


def _details(data: Any) -> str:
    """A forge's error text: GitHub's ``message`` and ``errors[]``, GitLab's ``message``/``error``."""
    if not isinstance(data, dict):
        return ""
    said = [_flatten(data.get("message")), _flatten(data.get("error"))]
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            text = error.get("message") or " ".join(str(error.get(k)) for k in ("field", "code") if error.get(k))
            said.append(str(text))
        else:
            said.append(str(error))
    head, *rest = [s for s in said if s] or [""]
    return f"{head} ({'; '.join(rest)})" if rest else head


def _flatten(value: Any) -> str:
    """GitLab's ``message`` is a string, a list, or fields mapped to lists of complaints."""
    if isinstance(value, dict):
        return "; ".join(f"{key} {_flatten(v)}" for key, v in value.items())
    if isinstance(value, list):
        return "; ".join(_flatten(v) for v in value)
    return "" if value is None else str(value)


def _json(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


# -- the GitHub CLI -----------------------------------------------------------------------------


def _which_gh(env: Mapping[str, str]) -> str | None:
    return shutil.which("gh", path=env.get("PATH"))


def _open_with_gh(
    settings: PullRequestsConfig,
    head: str,
    base: str,
    title: str,
    body: str,
    env: Mapping[str, str],
    token: str,
    timeout_s: float,
) -> PullRequest:
    gh = _which_gh(env)
    if gh is None:
        raise PullRequestError("gh is not installed")
    host = urllib.parse.urlsplit(settings.api_base_url).hostname or "api.github.com"
    enterprise = host != "api.github.com"
    repo = f"{host}/{settings.repo}" if enterprise else settings.repo
    # ``--flag=value``: a title or branch starting with '-' stays a value, never an option.
    argv = [gh, "pr", "create", f"--repo={repo}", f"--head={head}", f"--base={base}", f"--title={title}",
            "--body-file=-", *(["--draft"] if settings.draft else [])]  # fmt: skip
    environment = {**env, "GH_PROMPT_DISABLED": "1", "GH_NO_UPDATE_NOTIFIER": "1", "NO_COLOR": "1"}
    if token:
        environment["GH_ENTERPRISE_TOKEN" if enterprise else "GH_TOKEN"] = token
    try:
        done = subprocess.run(
            argv, input=_clip(body, MAX_BODY), capture_output=True, text=True, timeout=timeout_s,
            env=environment, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise PullRequestError(f"gh pr create did not finish within {timeout_s:g}s") from None
    except OSError as exc:
        raise PullRequestError(f"gh could not run: {exc.strerror or exc}") from None
    # It prints the new one's URL; for an open one, "a pull request for branch ... already exists:" and its URL.
    said = f"{done.stdout}\n{done.stderr}"
    found = list(_PULL_URL.finditer(said))
    existed = done.returncode != 0 and "already exists" in said
    if found and (done.returncode == 0 or existed):
        return PullRequest(found[-1].group(0), int(found[-1].group(1)), existed=existed)
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    why = lines[-1] if lines else f"exit status {done.returncode}, no pull request URL printed"
    raise PullRequestError(f"gh pr create failed: {_redact_urls(why)}")


# -- text -------------------------------------------------------------------------------------


def _push_refusal(stdout: str, stderr: str) -> str:
    """Why git refused: a rejected ref's reason (``--porcelain``), else git's own fatal/error line."""
    for line in stdout.splitlines():
        if line.startswith("!") and line.count("\t") >= 2:
            _, refs, summary = line.split("\t", 2)
            return _redact_urls(f"{refs.split(':', 1)[0]} {summary.strip()}")
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("hint:")]
    for prefix in ("fatal: ", "error: "):
        for at, line in enumerate(lines):
            if line.startswith(prefix):
                # ssh says why before git's generic line ("ssh: connect to host ...: Connection refused").
                generic = line.endswith("Could not read from remote repository.") and at > 0
                return _redact_urls(lines[at - 1] if generic else line.removeprefix(prefix))
    return _redact_urls(lines[-1]) if lines else "git gave no reason"


def _redact_urls(text: str) -> str:
    """``https://user:token@host`` → ``https://[redacted]@host``."""
    return _URL_CREDENTIALS.sub(f"{REDACTED}@", text)


def _clip(text: str, limit: int, marker: str = _CLIPPED) -> str:
    return text if len(text) <= limit else text[: limit - len(marker)] + marker


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _one_line(text: str, limit: int = 400) -> str:
    return _clip(" ".join(text.split()), limit, "…")


__all__ = ["MAX_BODY", "MAX_TITLE", "PullRequest", "PullRequestError", "open_pull_request", "push", "unavailable"]
