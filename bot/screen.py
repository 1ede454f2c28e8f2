"""Draw a terminal screen captured with ``tmux capture-pane -e -p`` as a PNG, keeping its colours.

Understands SGR escapes (bold, dim, italic, underline, reverse; the 16 basic colours, the 256
colour palette and 24-bit colour); every other escape sequence is dropped. CPU-bound, a few tens
of milliseconds for a full pane: call it off the event loop.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Pillow loads at the first render: the bot's start does not wait for it
    from PIL import ImageFont

RGB = tuple[int, int, int]

BACKGROUND: RGB = (30, 30, 30)
FOREGROUND: RGB = (212, 212, 212)
_BASIC: list[RGB] = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]  # fmt: skip
_ESCAPE = re.compile(r"\x1b\[([0-9;:?]*)([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b.")
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",
    "/System/Library/Fonts/Menlo.ttc",
)
MAX_COLUMNS = 240
MAX_ROWS = 120


@dataclass(frozen=True)
class Style:
    fg: RGB | None = None
    bg: RGB | None = None
    bold: bool = False
    dim: bool = False
    underline: bool = False
    reverse: bool = False


@dataclass(frozen=True)
class Cell:
    char: str
    style: Style
    wide: bool = False


def palette(index: int) -> RGB:
    """The xterm 256-colour palette."""
    if index < 16:
        return _BASIC[index]
    if index < 232:
        index -= 16
        steps = (0, 95, 135, 175, 215, 255)
        return steps[index // 36], steps[(index // 6) % 6], steps[index % 6]
    level = 8 + (index - 232) * 10
    return level, level, level


def parse(screen: str) -> list[list[Cell]]:
    """Split captured text into rows of styled cells (the style carries over lines, as in tmux)."""
    rows: list[list[Cell]] = []
    style = Style()
    for line in screen.replace("\r\n", "\n").split("\n")[:MAX_ROWS]:
        cells: list[Cell] = []
        pos = 0
        for match in _ESCAPE.finditer(line):
            cells += _cells(line[pos : match.start()], style)
            if match.group(2) == "m":
                style = _apply_sgr(style, match.group(1))
            pos = match.end()
        cells += _cells(line[pos:], style)
        rows.append(cells[:MAX_COLUMNS])
    while rows and not rows[-1]:
        rows.pop()
    return rows


def _cells(text: str, style: Style) -> list[Cell]:
    out = []
    for char in text:
        if char == "\t":
            out += [Cell(" ", style)] * 4
        elif unicodedata.category(char) in ("Cc", "Cf"):
            continue
        elif unicodedata.combining(char) and out:
            out[-1] = replace(out[-1], char=out[-1].char + char)
        else:
            out.append(Cell(char, style, unicodedata.east_asian_width(char) in ("W", "F")))
    return out


def _apply_sgr(style: Style, params: str) -> Style:
    codes = [int(p) if p.isdigit() else 0 for p in re.split("[;:]", params)] if params else [0]
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == 0:
            style = Style()
        elif code == 1:
            style = replace(style, bold=True)
        elif code == 2:
            style = replace(style, dim=True)
        elif code == 4:
            style = replace(style, underline=True)
        elif code == 7:
            style = replace(style, reverse=True)
        elif code == 22:
            style = replace(style, bold=False, dim=False)
        elif code == 24:
            style = replace(style, underline=False)
        elif code == 27:
            style = replace(style, reverse=False)
        elif 30 <= code <= 37 or 90 <= code <= 97:
            style = replace(style, fg=_BASIC[code - 30 if code < 90 else code - 82])
        elif 40 <= code <= 47 or 100 <= code <= 107:
            style = replace(style, bg=_BASIC[code - 40 if code < 100 else code - 92])
        elif code == 39:
            style = replace(style, fg=None)
        elif code == 49:
            style = replace(style, bg=None)
        elif code in (38, 48) and i + 1 < len(codes):
            colour, used = _extended(codes[i + 1 :])
            i += used
            if colour is not None:
                style = replace(style, fg=colour) if code == 38 else replace(style, bg=colour)
        i += 1
    return style


def _extended(rest: list[int]) -> tuple[RGB | None, int]:
    """``5;N`` (palette) or ``2;R;G;B`` after a 38/48; returns the colour and the codes used."""
    if rest[0] == 5 and len(rest) >= 2:
        return palette(max(0, min(255, rest[1]))), 2
    if rest[0] == 2 and len(rest) >= 4:
        r, g, b = (max(0, min(255, v)) for v in rest[1:4])
        return (r, g, b), 4
    return None, 1


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    candidates = list(_FONT_CANDIDATES)
    try:
        import matplotlib

        candidates.append(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSansMono.ttf"))
    except ImportError:
        pass
    for path in candidates:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def render_png(screen: str, *, font_size: int = 15) -> bytes:
    """The screen as PNG bytes: a dark terminal, one monospace cell per character."""
    from PIL import Image, ImageDraw

    rows = parse(screen) or [[Cell(" ", Style())]]
    font = _font(font_size)
    _left, top, _right, bottom = font.getbbox("M")
    cell_w = max(1, round(font.getlength("M")))
    cell_h = round((bottom - top) * 1.45) + 2
    columns = max(sum(2 if c.wide else 1 for c in row) for row in rows)
    pad = 10
    image = Image.new("RGB", (columns * cell_w + 2 * pad, len(rows) * cell_h + 2 * pad), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for y, row in enumerate(rows):
        x = 0
        for cell in row:
            width = 2 if cell.wide else 1
            fg, bg = _colours(cell.style)
            box = (pad + x * cell_w, pad + y * cell_h, pad + (x + width) * cell_w, pad + (y + 1) * cell_h)
            if bg != BACKGROUND:
                draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=bg)
            if cell.char.strip():
                draw.text((box[0], box[1] + 1), cell.char, font=font, fill=fg)
                if cell.style.bold:
                    draw.text((box[0] + 1, box[1] + 1), cell.char, font=font, fill=fg)
            if cell.style.underline:
                draw.line((box[0], box[3] - 2, box[2] - 1, box[3] - 2), fill=fg)
            x += width
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _colours(style: Style) -> tuple[RGB, RGB]:
    fg = style.fg or FOREGROUND
    if style.bold and style.fg in _BASIC[:8]:
        fg = _BASIC[_BASIC.index(style.fg) + 8]  # bold brightens the basic colours, as terminals do
    bg = style.bg or BACKGROUND
    if style.reverse:
        fg, bg = bg, fg
    if style.dim:
        fg = (fg[0] * 2 // 3, fg[1] * 2 // 3, fg[2] * 2 // 3)
    return fg, bg


__all__ = ["Cell", "Style", "palette", "parse", "render_png"]
