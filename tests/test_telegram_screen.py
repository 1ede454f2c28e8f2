"""/screen: a tmux pane captured with its colour escapes, drawn as a PNG."""

from __future__ import annotations

import io
import subprocess
import time

from PIL import Image

from bot.screen import BACKGROUND, palette, parse, render_png
from tests.conftest import requires_tmux

RED = (205, 49, 49)
BLUE = (36, 114, 200)


def colours(png: bytes) -> set[tuple[int, int, int]]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    found: set[tuple[int, int, int]] = set()
    for _, colour in image.getcolors(maxcolors=1_000_000) or []:
        assert isinstance(colour, tuple)
        found.add((int(colour[0]), int(colour[1]), int(colour[2])))
    return found


def test_sgr_colours_and_attributes_are_parsed() -> None:
    rows = parse("\x1b[31mred\x1b[0m plain \x1b[1;44mbold on blue\x1b[0m\n\x1b[38;5;196mx\x1b[38;2;1;2;3my\x1b[7mz")
    assert "".join(c.char for c in rows[0]) == "red plain bold on blue"
    assert rows[0][0].style.fg == RED and rows[0][3].style.fg is None
    bold = rows[0][10].style
    assert bold.bold and bold.bg == BLUE
    assert rows[1][0].style.fg == palette(196) == (255, 0, 0)
    assert rows[1][1].style.fg == (1, 2, 3) and rows[1][2].style.reverse
    assert parse("a\x1b]0;title\x07b\x1b[2Jc")[0][1].char == "b"  # other escapes are dropped
    wide = parse("日本")[0]
    assert all(c.wide for c in wide)


def test_the_png_keeps_the_colours() -> None:
    png = render_png("\x1b[31mERROR\x1b[0m something failed\n\x1b[44m  \x1b[0m")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.width > 200 and image.height > 30
    found = colours(png)
    assert BACKGROUND in found and BLUE in found
    assert any(r > 150 and g < 90 and b < 90 for r, g, b in found), "red text is drawn red"


@requires_tmux
def test_a_real_pane_renders_with_its_colours(socket_name: str) -> None:
    tmux = ["tmux", "-L", socket_name, "-f", "/dev/null"]
    script = "printf '\\033[31mred alert\\033[0m and \\033[42mgreen\\033[0m\\n'; sleep 30"
    subprocess.run([*tmux, "new-session", "-d", "-s", "s", "-x", "80", "-y", "10", "sh", "-c", script], check=True)
    deadline = time.monotonic() + 10
    while True:
        capture = [*tmux, "capture-pane", "-e", "-p", "-t", "s"]
        screen = subprocess.run(capture, capture_output=True, text=True, check=False).stdout
        if "red alert" in screen or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert "\x1b[31m" in screen, "capture-pane -e keeps the colour escapes"
    found = colours(render_png(screen))
    assert (13, 188, 121) in found  # the green background cell
