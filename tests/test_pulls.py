"""core.pulls: pushing a task's branch and opening its pull request (GitHub, GitLab, the gh CLI).

Real git (a work repository and a bare repository as its remote), a fake forge speaking HTTP on
127.0.0.1 (tests/fakes/github.py) that checks heads and bases against that bare repository, and a
fake ``gh`` script on PATH that records its argv and stdin.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import parse_config
from core.config.projects import ProjectConfig, PullRequestsConfig
from core.errors import ConfigError, PullRequestError
from core.pulls import MAX_BODY, MAX_TITLE, PullRequest, open_pull_request, push, unavailable
from tests.conftest import free_port
from tests.fakes.github import GITLAB_TOKEN, REPO, TOKEN, FakeForge

BRANCH = "orchestra/t42-add-the-login-page"
_IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *_IDENTITY, *args], capture_output=True, text=True, check=True,
                          timeout=30, stdin=subprocess.DEVNULL)  # fmt: skip
    return done.stdout.strip()


def commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"add {name}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True, timeout=30)
    return path


@pytest.fixture
def work(tmp_path: Path, bare: Path) -> Path:
    """A checkout whose origin is ``bare``: main pushed, and the task's branch one commit ahead (not pushed)."""
    path = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, timeout=30)
    commit(path, "README.md", "hello\n")
    git(path, "remote", "add", "origin", str(bare))
    git(path, "push", "-q", "origin", "main")
    git(path, "switch", "-q", "-c", BRANCH)
    commit(path, "login.py", "def login(): ...\n")
    git(path, "switch", "-q", "main")
    return path


@pytest.fixture
def forge(bare: Path) -> Iterator[FakeForge]:
    with FakeForge(bare=bare) as fake:
        yield fake


@pytest.fixture
def pushed(work: Path, forge: FakeForge) -> Path:
    push(work, "origin", BRANCH, env=os.environ)
    return work


def github(forge: FakeForge, **fields: Any) -> PullRequestsConfig:
    return PullRequestsConfig.model_validate({"repo": REPO, "api_base_url": forge.url} | fields)


def gitlab(forge: FakeForge, **fields: Any) -> PullRequestsConfig:
    return PullRequestsConfig.model_validate({"provider": "gitlab", "repo": REPO, "api_base_url": f"{forge.url}/api/v4"}
                                             | fields)  # fmt: skip


def open_pr(settings: PullRequestsConfig, env: dict[str, str] | None = None, **kwargs: Any) -> PullRequest:
    args: dict[str, Any] = {"head": BRANCH, "base": "main", "title": "t42: Add the login page",
                            "body": "Adds login.py.\n\nTask t42.", "timeout_s": 5.0}  # fmt: skip
    args.update(kwargs)
    return open_pull_request("api", settings, env={"GITHUB_TOKEN": TOKEN} if env is None else env, **args)


def refusal(settings: PullRequestsConfig, env: dict[str, str] | None = None, **kwargs: Any) -> str:
    with pytest.raises(PullRequestError) as caught:
        open_pr(settings, env, **kwargs)
    said = str(caught.value)
    assert "\n" not in said and TOKEN not in said and GITLAB_TOKEN not in said, said
    return said


# -- push -------------------------------------------------------------------------------------------
def test_push_lands_the_branch_in_the_remote_and_pushing_again_changes_nothing(work: Path, bare: Path) -> None:
    push(work, "origin", BRANCH)
    assert git(bare, "rev-parse", f"refs/heads/{BRANCH}") == git(work, "rev-parse", BRANCH)
    push(work, "origin", BRANCH)  # unchanged: a no-op, not an error
    assert git(work, "branch", "--show-current") == "main", "the checkout is not touched"


def test_push_to_a_missing_remote_is_one_line_naming_it(work: Path) -> None:
    with pytest.raises(PullRequestError) as caught:
        push(work, "nowhere", BRANCH)
    assert str(caught.value) == "git push to nowhere failed: 'nowhere' does not appear to be a git repository"


def test_a_diverged_remote_branch_is_refused_not_forced(work: Path, bare: Path, tmp_path: Path) -> None:
    push(work, "origin", BRANCH)
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", "-b", BRANCH, str(bare), str(other)], check=True, timeout=30)
    theirs = commit(other, "theirs.txt", "someone else's\n")
    git(other, "push", "-q", "origin", BRANCH)
    git(work, "switch", "-q", BRANCH)
    commit(work, "ours.txt", "ours\n")
    with pytest.raises(PullRequestError) as caught:
        push(work, "origin", BRANCH)
    assert str(caught.value) == f"git push to origin failed: refs/heads/{BRANCH} [rejected] (fetch first)"
    assert git(bare, "rev-parse", f"refs/heads/{BRANCH}") == theirs


def test_credentials_in_the_remote_url_never_reach_the_error(work: Path) -> None:
    git(work, "remote", "add", "forge", f"http://x-access-token:{TOKEN}@127.0.0.1:{free_port()}/acme/api.git")
    with pytest.raises(PullRequestError) as caught:
        push(work, "forge", BRANCH)
    said = str(caught.value)
    assert said.startswith("git push to forge failed: ") and "\n" not in said
    assert TOKEN not in said and "x-access-token" not in said, said


def test_a_remote_or_branch_that_looks_like_an_option_is_refused(work: Path) -> None:
    with pytest.raises(PullRequestError, match="is not a git remote"):
        push(work, "--mirror", BRANCH)
    with pytest.raises(PullRequestError, match="is not a branch name"):
        push(work, "origin", "main:refs/heads/elsewhere")


# -- GitHub ---------------------------------------------------------------------------------------
def test_open_posts_one_pull_request_with_the_branch_base_title_body_and_token(pushed: Path, forge: FakeForge) -> None:
    opened = open_pr(github(forge, draft=True))
    assert opened == PullRequest(f"{forge.url}/{REPO}/pull/1", 1, existed=False)
    [post] = forge.posts()
    assert post.path == f"/repos/{REPO}/pulls" and post.status == 201
    assert post.body == {"title": "t42: Add the login page", "head": BRANCH, "base": "main",
                         "body": "Adds login.py.\n\nTask t42.", "draft": True}  # fmt: skip
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    assert post.headers["accept"] == "application/vnd.github+json"
    assert post.headers["x-github-api-version"] == "2022-11-28" and post.headers["user-agent"].startswith("orchestra")


def test_opening_again_returns_the_open_one_with_the_same_link(pushed: Path, forge: FakeForge) -> None:
    first = open_pr(github(forge))
    again = open_pr(github(forge), title="a different title this time")
    assert again == PullRequest(first.url, first.number, existed=True)
    assert len(forge.pulls) == 1
    lookup = forge.calls[-1]
    assert lookup.method == "GET" and lookup.query == {"head": f"acme:{BRANCH}", "state": "open"}


def test_a_refused_token_says_which_variable_and_never_shows_it(pushed: Path, forge: FakeForge) -> None:
    said = refusal(github(forge), {"GITHUB_TOKEN": "ghp_notTheRightTokenAtAll000000000"})
    assert said == "GitHub refused the token in GITHUB_TOKEN (401 Bad credentials)"
    assert "ghp_notTheRightTokenAtAll" not in said


def test_no_commits_between_base_and_head_quotes_github(work: Path, forge: FakeForge) -> None:
    git(work, "branch", "orchestra/t43-nothing", "main")
    push(work, "origin", "orchestra/t43-nothing")
    said = refusal(github(forge), head="orchestra/t43-nothing")
    assert said == (
        "GitHub would not open a pull request of orchestra/t43-nothing into main: "
        "Validation Failed (No commits between main and orchestra/t43-nothing)"
    )


def test_a_missing_base_or_an_unpushed_head_is_named(pushed: Path, forge: FakeForge) -> None:
    assert refusal(github(forge), base="develop").endswith(": Validation Failed (base invalid)")
    assert refusal(github(forge), head="orchestra/t9-never-pushed").endswith(": Validation Failed (head invalid)")


def test_an_unknown_repository_says_so(pushed: Path, forge: FakeForge) -> None:
    said = refusal(github(forge, repo="acme/nope"))
    assert said == "GitHub has no repository acme/nope, or the token in GITHUB_TOKEN cannot see it"


def test_a_rate_limit_says_when_to_retry(pushed: Path, forge: FakeForge) -> None:
    reset = 1_900_000_000
    forge.answer_next(403, {"message": "API rate limit exceeded"},
                      {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})  # fmt: skip
    expected = time.strftime("%H:%M:%S UTC", time.gmtime(reset))
    assert refusal(github(forge)) == f"GitHub rate-limited the token in GITHUB_TOKEN; retry after {expected}"
    forge.answer_next(403, {"message": "You have exceeded a secondary rate limit"}, {"retry-after": "60"})
    assert refusal(github(forge)) == "GitHub rate-limited the token in GITHUB_TOKEN; retry after 60s"
    forge.answer_next(403, {"message": "Resource not accessible by personal access token"})
    assert refusal(github(forge)) == (
        "GitHub refused to open a pull request on acme/api (403 Resource not accessible by personal access token)"
    )
    forge.answer_next(502, {"message": "Server Error"})
    assert refusal(github(forge)) == "GitHub answered 502 Bad Gateway: Server Error"


def test_an_unreachable_api_is_one_line_naming_the_host() -> None:
    port = free_port()
    settings = PullRequestsConfig(repo=REPO, api_base_url=f"http://127.0.0.1:{port}")
    said = refusal(settings)
    assert said.startswith(f"cannot reach 127.0.0.1:{port}: "), said


def test_an_api_that_never_answers_is_cut_off_at_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        said = refusal(PullRequestsConfig(repo=REPO, api_base_url=f"http://{host}"), timeout_s=0.3)
    assert said == f"{host} did not answer within 0.3s" and time.monotonic() - started < 3


def test_a_long_title_and_body_are_clipped_to_githubs_limits(pushed: Path, forge: FakeForge) -> None:
    opened = open_pr(github(forge), title="Add " * 200, body="x" * 100_000)
    assert not opened.existed
    [post] = forge.posts()
    assert len(post.body["title"]) == MAX_TITLE and post.body["title"].endswith("…")
    assert len(post.body["body"]) == MAX_BODY and post.body["body"].endswith("(clipped)")


def test_no_token_in_the_logs_or_the_repr(pushed: Path, forge: FakeForge, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    opened = open_pr(github(forge))
    refusal(github(forge, repo="acme/nope"))
    assert TOKEN not in caplog.text and TOKEN not in repr(opened) and TOKEN not in repr(github(forge))
    assert opened.url in caplog.text, "the opened link is logged"


def test_an_unset_token_is_refused_before_any_request(forge: FakeForge) -> None:
    assert refusal(github(forge), {}) == "GITHUB_TOKEN is not set (projects.api.pull_requests.token_env)"
    said = refusal(github(forge), {"GITHUB_TOKEN": "ghp_pasted with a space"})
    assert said == "GITHUB_TOKEN does not hold a token (it has spaces or non-ASCII text)"
    assert forge.calls == []


# -- GitLab ---------------------------------------------------------------------------------------
def test_gitlab_opens_a_merge_request_and_a_second_open_returns_it(pushed: Path, forge: FakeForge) -> None:
    env = {"GITLAB_TOKEN": GITLAB_TOKEN}
    opened = open_pr(gitlab(forge, draft=True), env)
    assert opened == PullRequest(f"{forge.url}/{REPO}/-/merge_requests/1", 1, existed=False)
    [post] = forge.posts()
    assert post.path == "/api/v4/projects/acme%2Fapi/merge_requests" and post.headers["private-token"] == GITLAB_TOKEN
    assert post.body == {"source_branch": BRANCH, "target_branch": "main", "title": "Draft: t42: Add the login page",
                         "description": "Adds login.py.\n\nTask t42."}  # fmt: skip
    assert "authorization" not in post.headers
    assert open_pr(gitlab(forge), env) == PullRequest(opened.url, 1, existed=True)
    assert forge.calls[-1].query == {"source_branch": BRANCH, "state": "opened"}


def test_gitlab_refusals_are_one_line(pushed: Path, forge: FakeForge) -> None:
    wrong = {"GITLAB_TOKEN": "glpat-wrongwrongwrong"}
    assert refusal(gitlab(forge), wrong) == "GitLab refused the token in GITLAB_TOKEN (401 Unauthorized)"
    env = {"GITLAB_TOKEN": GITLAB_TOKEN}
    said = refusal(gitlab(forge, repo="acme/sub/nope"), env)
    assert said == "GitLab has no project acme/sub/nope, or the token in GITLAB_TOKEN cannot see it"
    forge.answer_next(400, {"message": {"target_branch": ["can't be blank"]}})
    assert refusal(gitlab(forge), env).endswith(": target_branch can't be blank")


# -- the gh CLI ---------------------------------------------------------------------------------
_FAKE_GH = """#!{python}
import json, os, sys
log = os.environ["FAKE_GH_LOG"]
with open(log, "a") as out:
    seen = {{"argv": sys.argv[1:], "stdin": sys.stdin.read(), "token": os.environ.get("GH_TOKEN"),
            "prompt": os.environ.get("GH_PROMPT_DISABLED")}}
    out.write(json.dumps(seen) + "\\n")
mode = os.environ.get("FAKE_GH_MODE", "ok")
if mode == "ok":
    print("https://github.com/acme/api/pull/7")
elif mode == "exists":
    print('a pull request for branch "x" into branch "main" already exists:', file=sys.stderr)
    print("https://github.com/acme/api/pull/7", file=sys.stderr)
    sys.exit(1)
else:
    print("HTTP 401: Bad credentials (https://api.github.com/graphql) token " + os.environ.get("GH_TOKEN", ""),
          file=sys.stderr)
    sys.exit(1)
"""


@pytest.fixture
def gh_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "gh"
    script.write_text(_FAKE_GH.format(python=sys.executable))
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_GH_LOG": str(tmp_path / "gh.log"),
            "GITHUB_TOKEN": TOKEN}  # fmt: skip


def gh_runs(env: dict[str, str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(env["FAKE_GH_LOG"]).read_text().splitlines()]


def test_gh_gets_argv_only_the_body_on_stdin_and_the_token(gh_env: dict[str, str]) -> None:
    settings = PullRequestsConfig(repo=REPO, client="gh", draft=True)
    body = "Adds login.py; $(rm -rf /) `whoami` stays text.\n"
    opened = open_pr(settings, gh_env, title="-t42: Add $HOME", body=body)
    assert opened == PullRequest("https://github.com/acme/api/pull/7", 7, existed=False)
    [run] = gh_runs(gh_env)
    assert run["argv"] == ["pr", "create", f"--repo={REPO}", f"--head={BRANCH}", "--base=main",
                           "--title=-t42: Add $HOME", "--body-file=-", "--draft"]  # fmt: skip
    assert run["stdin"] == body and run["token"] == TOKEN and run["prompt"] == "1"


def test_gh_reporting_an_open_one_returns_it(gh_env: dict[str, str]) -> None:
    opened = open_pr(PullRequestsConfig(repo=REPO, client="gh"), gh_env | {"FAKE_GH_MODE": "exists"})
    assert opened == PullRequest("https://github.com/acme/api/pull/7", 7, existed=True)


def test_gh_failing_is_one_line_without_the_token(gh_env: dict[str, str]) -> None:
    said = refusal(PullRequestsConfig(repo=REPO, client="gh"), gh_env | {"FAKE_GH_MODE": "fail"})
    assert said.startswith("gh pr create failed: HTTP 401: Bad credentials") and "[redacted]" in said


def test_gh_without_a_token_uses_its_own_login(gh_env: dict[str, str]) -> None:
    env = {k: v for k, v in gh_env.items() if k != "GITHUB_TOKEN"}
    assert not open_pr(PullRequestsConfig(repo=REPO, client="gh"), env).existed
    assert gh_runs(env)[0]["token"] is None


# -- unavailable ------------------------------------------------------------------------------------
def test_unavailable_names_what_to_set(gh_env: dict[str, str], tmp_path: Path) -> None:
    settings = {"repo": REPO}
    bare_project = ProjectConfig(path="/x")
    assert unavailable(bare_project, {}, project_name="api") == "projects.api has no pull_requests: settings"
    assert unavailable(bare_project, {}) == "the project has no pull_requests: settings"
    no_remote = ProjectConfig.model_validate({"path": "/x", "pull_requests": settings})
    assert unavailable(no_remote, {"GITHUB_TOKEN": TOKEN}, project_name="api") == "projects.api has no remote"
    ready = ProjectConfig.model_validate({"path": "/x", "remote": "origin", "pull_requests": settings})
    assert unavailable(ready, {"GITHUB_TOKEN": TOKEN}, project_name="api") is None
    for env in ({}, {"GITHUB_TOKEN": "  "}):
        said = unavailable(ready, env, project_name="api")
        assert said == "GITHUB_TOKEN is not set (projects.api.pull_requests.token_env)"
    gh = settings | {"client": "gh"}
    with_gh = ProjectConfig.model_validate({"path": "/x", "remote": "origin", "pull_requests": gh})
    assert unavailable(with_gh, {"PATH": str(tmp_path / "empty")}) == "gh is not installed"
    assert unavailable(with_gh, {"PATH": gh_env["PATH"]}) is None, "gh has its own login: no token needed"


# -- bots.yaml ------------------------------------------------------------------------------------
def test_gitlab_defaults_its_token_and_api_and_keeps_what_is_given() -> None:
    lab = PullRequestsConfig(provider="gitlab", repo="group/sub/api")
    assert (lab.token_env, lab.api_base_url) == ("GITLAB_TOKEN", "https://gitlab.com/api/v4")
    own = PullRequestsConfig(provider="gitlab", repo="g/api", token_env="LAB", api_base_url="https://git.corp/api/v4")
    assert (own.token_env, own.api_base_url) == ("LAB", "https://git.corp/api/v4")
    hub = PullRequestsConfig(repo=REPO)
    assert (hub.token_env, hub.api_base_url, hub.client, hub.draft) == ("GITHUB_TOKEN", "https://api.github.com",
                                                                        "api", False)  # fmt: skip


@pytest.mark.parametrize(
    ("pull_requests", "expected"),
    [
        ({"provider": "gitlab", "repo": REPO, "client": "gh"},
         "projects.api.pull_requests: client gh opens GitHub pull requests only; use client: api for gitlab"),
        ({"repo": "acme/sub/api"}, "projects.api.pull_requests: repo 'acme/sub/api' is not owner/name"),
        ({"repo": REPO, "client": "hub"}, "projects.api.pull_requests.client: "),
        ({"provider": "bitbucket", "repo": REPO}, "projects.api.pull_requests.provider: "),
    ],
)  # fmt: skip
def test_bad_pull_request_settings_are_one_line(
    config_data: dict[str, Any], pull_requests: dict[str, Any], expected: str
) -> None:
    data = copy.deepcopy(config_data)
    data["projects"] = {"api": {"path": "/x", "remote": "origin", "pull_requests": pull_requests}}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert expected in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="ssh is not installed")
def test_an_ssh_remote_that_refuses_says_why_not_only_that_git_could_not_read(work: Path) -> None:
    git(work, "remote", "add", "forge", f"ssh://git@127.0.0.1:{free_port()}/acme/api.git")
    with pytest.raises(PullRequestError) as caught:
        push(work, "forge", BRANCH)
    assert str(caught.value).startswith("git push to forge failed: ssh: connect to host 127.0.0.1 port "), caught.value
