"""The dashboard in a real headless browser (Debian's chromium through /usr/bin/chromedriver, driven by Selenium).

One bot and one browser for the module; skipped when chromium, its driver or Selenium is missing.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.models import TaskState
from tests.conftest import free_port, orchestra
from tests.web_bot import ALLOWED, BOT_TOKEN, WebBot, sign_init_data

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import WebDriverException  # noqa: E402  (after the skip when it is missing)

DRIVER = "/usr/bin/chromedriver"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    BROWSER is None or not Path(DRIVER).exists(), reason="chromium and chromium-driver are not installed"
)


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebBot]:
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("browser")
    mp.setenv("ORCHESTRA_HOME", str(root / "home"))
    mp.setenv("WEB_TEST_BOT_TOKEN", BOT_TOKEN)
    mp.delenv("TMUX", raising=False)
    bot = WebBot(root).start()
    yield bot
    bot.stop()
    mp.undo()


@pytest.fixture(scope="module")
def browser(bot: WebBot) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(DRIVER), options=options)
    driver.set_script_timeout(10)
    yield driver
    driver.quit()


def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (WebDriverException, ValueError):  # an element not there yet, replaced while read; no number yet
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def sign_in(browser: Any, bot: WebBot) -> None:
    browser.get(bot.link())
    until(lambda: "admin" in browser.find_element("id", "who").text)


def signed_out(browser: Any, bot: WebBot) -> None:
    """No cookie (they are deleted for the page's own site), and off the page: a new fragment loads it anew."""
    browser.get(f"{bot.url}/static/app.css")
    browser.delete_all_cookies()
    browser.get("about:blank")


def shown(browser: Any, element: str) -> bool:
    return bool(browser.execute_script(f"return !document.getElementById('{element}').hidden"))


def test_signing_in_through_a_link_and_the_list_updating_when_the_cli_delegates(browser: Any, bot: WebBot) -> None:
    link = bot.link()
    browser.get(link)
    until(lambda: "admin" in browser.find_element("id", "who").text)
    assert "#" not in browser.current_url  # the token left the address bar
    done = orchestra("delegate", "--task", "Create User model", "--agent", "echo", "--cwd", str(bot.root),
                     config=bot.config_path, env={"ORCHESTRA_HOME": str(bot.root / "home")})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Create User model" in until(lambda: browser.find_element("id", "tasks").text)
    assert until(lambda: browser.find_element("css selector", "#tasks .card").get_attribute("href")).endswith(
        "/task/t1"
    )
    # The same link again, in a fresh browser state: refused, and the page says nothing about tasks.
    browser.delete_all_cookies()
    browser.get(link)
    until(lambda: shown(browser, "signin"))
    assert "Create User model" not in browser.find_element("tag name", "body").text
    sign_in(browser, bot)


def test_a_running_task_s_terminal_shows_its_output_as_it_is_written(browser: Any, bot: WebBot) -> None:
    task = bot.cli.service.delegate("tick in colour", agent="ticker", cwd=str(bot.root)).task
    bot.wait_for(lambda: bot.cli.service.get(task.id).state == TaskState.RUNNING)
    browser.get(f"{bot.url}/grid")
    term = until(lambda: browser.find_element("css selector", f"pre.term[data-task='{task.id}']"))
    first = until(lambda: [int(w) for w in term.text.split() if w.isdigit()])
    later = until(lambda: max(int(w) for w in term.text.split() if w.isdigit()) >= max(first) + 5 and term.text)
    assert "tick" in later and "\x1b" not in later  # the escapes became colours
    color = browser.execute_script("return getComputedStyle(arguments[0].querySelector('span')).color", term)
    assert color in ("rgb(51, 170, 51)",), color
    bot.cli.service.cancel(task.id)


def test_approve_on_the_page_starts_a_held_task(browser: Any, bot: WebBot) -> None:
    held = bot.cli.service.delegate("deploy the docker image", agent="echo", cwd=str(bot.root)).task
    assert held.state == TaskState.AWAITING_APPROVAL
    browser.get(f"{bot.url}/task/{held.id}")
    until(lambda: browser.find_element("css selector", "button[data-action='approve']").click() or True)
    bot.wait_for(lambda: bot.cli.service.get(held.id).state not in (TaskState.AWAITING_APPROVAL,))
    assert bot.cli.service.audit_log(held.id, action="approve")[0]["source"] == "web"


def test_a_phone_sees_one_column_and_a_laptop_two(browser: Any, bot: WebBot, tmp_path: Path) -> None:
    browser.get(f"{bot.url}/")
    until(lambda: len(browser.find_elements("css selector", "#tasks .card")) >= 2)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})  # fmt: skip
    try:
        time.sleep(0.2)
        cards = browser.find_elements("css selector", "#tasks .card")
        boxes = [(c.rect["x"], c.rect["width"]) for c in cards]
        assert len({x for x, _ in boxes}) == 1, boxes  # one column: every card starts at the same x
        assert all(width >= 390 - 40 for _, width in boxes), boxes  # and spans the screen
        button = browser.find_element("css selector", "nav a")
        assert button.rect["height"] >= 44  # a thumb's target
        assert browser.save_screenshot(str(tmp_path / "phone.png"))
        assert (tmp_path / "phone.png").stat().st_size > 1000
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    time.sleep(0.2)
    xs = {c.rect["x"] for c in browser.find_elements("css selector", "#tasks .card")}
    assert len(xs) == 2, xs  # a laptop: a grid


def test_forged_init_data_a_missing_cookie_a_socket_without_session_and_a_cross_site_post(
    browser: Any, bot: WebBot
) -> None:
    held = bot.cli.service.delegate("deploy the docker image again", agent="echo", cwd=str(bot.root)).task
    signed_out(browser, bot)
    forged = sign_init_data(ALLOWED, time.time(), token="999:NOT-THE-BOT")
    browser.get(f"{bot.url}/#tgWebAppData={forged.replace('&', '%26').replace('=', '%3D')}")
    until(lambda: shown(browser, "signin"))  # forged initData, and no cookie: nothing shown
    status = browser.execute_async_script(
        "var done = arguments[0]; fetch('/api/tasks').then(function (r) { done(r.status); });"
    )
    assert status == 401
    opened = browser.execute_async_script(
        "var done = arguments[0], ws = new WebSocket('ws://' + location.host + '/ws');"
        "ws.onmessage = function () { done('message'); }; ws.onclose = function () { done('closed'); };"
    )
    assert opened == "closed"
    # Signed in, a page of another site posts to the dashboard: the browser sends no cookie, the Origin is wrong.
    sign_in(browser, bot)
    evil = _serve_page(
        f"<form id=f method=post enctype=text/plain action='{bot.url}/api/task/{held.id}/approve'>"
        "<input name=x value=y></form><script>document.getElementById('f').submit()</script>"
    )
    browser.get(evil)
    until(lambda: "403" in browser.page_source or "401" in browser.page_source)
    assert bot.cli.service.get(held.id).state == TaskState.AWAITING_APPROVAL
    sign_in(browser, bot)  # the session itself still works
    # The genuine Mini App: initData signed with the bot's token, passed in the page's fragment.
    signed_out(browser, bot)
    good = sign_init_data(ALLOWED, time.time())
    browser.get(f"{bot.url}/#tgWebAppData={good.replace('%', '%25').replace('&', '%26').replace('=', '%3D')}")
    until(lambda: "@alice" in browser.find_element("id", "who").text)


def _serve_page(html: str) -> str:
    """Another site (another origin): a page on a port of its own, served once per request."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    server = HTTPServer(("127.0.0.1", port), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}/"
