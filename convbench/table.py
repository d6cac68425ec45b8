"""The one table printer of the command line: rich on a terminal, plain columns elsewhere.

rich's Console decides what "a terminal" is: the stream's isatty, overridden by the
FORCE_COLOR and TTY_COMPATIBLE environment variables; it reads the width from the terminal
or COLUMNS and turns colour off under NO_COLOR. On a terminal a table fits the width
(long ids folded onto more lines, notes cut with an ellipsis) and statuses are coloured.
Anywhere else (a pipe, a file, a CI log) the same rows come out as plain aligned columns:
no escape codes, no box drawing, nothing cut from an id, one row per line for grep.
"""
from __future__ import annotations

import re

# the colour of each status word on a terminal
STATUS_STYLES = {
    "bold red": ("FAIL", "FAILED", "error", "WRONG", "SLOWER"),
    "green": ("pass", "PASSED", "ok", "faster", "baseline"),
    "yellow": ("slow", "missing", "unconfirmed", "shared", "refused"),
    "dim": ("unsupported", "unavailable", "skipped", "new"),
}
_STATUS_WORD = re.compile(r"(?<![\w-])(" + "|".join(w for ws in STATUS_STYLES.values() for w in ws)
                          + r")(?![\w-])")
_STYLE_OF = {w: style for style, ws in STATUS_STYLES.items() for w in ws}

RIGHT = ("median", "IQR", "min", "ratio", "err/bound")


def console(file=None):
    """A rich Console on ``file`` (default: sys.stdout at each write)."""
    from rich.console import Console

    return Console(file=file, highlight=False, markup=False, emoji=False)


def format_seconds(s: float) -> str:
    if s != s:  # NaN
        return ""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def format_table(rows: list[dict], align_right=RIGHT) -> str:
    """Plain aligned columns: a header, a rule of dashes, one line per row."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[_one_line(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(values):
        return "  ".join(v.rjust(w) if c in align_right else v.ljust(w)
                         for v, w, c in zip(values, widths, columns)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _one_line(value) -> str:
    return " ".join(str(value).split()) if "\n" in str(value) else str(value)


def status_text(text: str, con) -> str:
    """A line of ``text``: on a terminal its status words (pass, FAIL, ...) coloured and
    folded to the width; elsewhere as is."""
    if not con.is_terminal:
        return text
    return _capture(con, _styled(text))


def render(rows: list[dict], con, *, right=RIGHT, fold=(), cut=(), status=(),
           group: str | None = None, below: dict | None = None, title: str = "",
           caption: str = "") -> str:
    """``rows`` (dicts of one table, same keys) as text for ``con``.

    On a terminal: a table wider than the terminal gives the ``fold`` columns (ids, folded
    onto more lines) and ``cut`` columns (notes, cut with an ellipsis) the width the others
    leave (see _fill); ``status`` columns are coloured; ``below`` = {column: other} shows
    ``other`` under ``column`` in one cell (two lines, fewer columns); with ``group``,
    each value of that column heads its own block of rows instead of repeating on each.
    Plain: one table with every column, ``title`` above it and ``caption`` under it.
    """
    if not con.is_terminal:
        text = format_table(rows, right)
        return "\n".join(t for t in (title, text, caption) if t)
    if not rows:
        return _capture(con, "(no rows)")
    below = below or {}
    columns = [c for c in rows[0] if c != group and c not in below.values()]

    def cell(r, c):
        text = str(r.get(c, ""))
        if c in below and str(r.get(below[c], "")):
            text += "\n" + str(r[below[c]])
        return _styled(text) if c in status else text

    cells = [[cell(r, c) for c in columns] for r in rows]
    lengths = [[max(map(len, str(text).splitlines() or [""])) for text in [c, *(row[i] for row in cells)]]
               for i, c in enumerate(columns)]
    widths = [max(n) for n in lengths]
    spec = dict(columns=columns, widths=widths, right=right, cut=cut)
    natural = con.measure(_table(cells, **spec), options=con.options.update_width(10**6)).maximum
    flexible = [i for i, c in enumerate(columns) if c in fold or c in cut]
    if flexible and natural > con.width:
        room = con.width - natural + sum(widths[i] for i in flexible)
        typical = [round((max(lengths[i]) * sum(lengths[i]) / len(lengths[i])) ** 0.5) for i in flexible]
        for i, w in zip(flexible, _fill(room, [widths[i] for i in flexible], typical)):
            widths[i] = w
    blocks = ([(None, cells)] if group is None else
              [(key, [row for row, r in zip(cells, rows) if r[group] == key])
               for key in dict.fromkeys(r[group] for r in rows)])
    parts = [_styled(title, "bold")] if title else []
    for k, (key, mine) in enumerate(blocks):
        if key is not None:
            parts.append(_styled(str(key), "bold cyan"))
        parts.append(_table(mine, **spec, header=k == 0,
                            caption=caption if k == len(blocks) - 1 else ""))
    return _capture(con, *parts)


def _fill(room: int, caps: list[int], weights: list[int]) -> list[int]:
    """Widths that share ``room`` by weight, none above its cap (its longest cell): what a
    column does not need goes to the others. The weight of a column is the geometric mean
    of its longest and its mean cell, so that one long note among short cells claims less
    than a column of long ids."""
    widths, todo = {}, set(range(len(caps)))
    while todo:
        total = sum(weights[i] for i in todo)
        capped = [i for i in todo if caps[i] <= room * weights[i] / total]
        if not capped:
            widths.update((i, max(4, room * weights[i] // total)) for i in todo)
            break
        for i in capped:
            widths[i] = caps[i]
            room -= caps[i]
            todo.remove(i)
    return [widths[i] for i in range(len(caps))]


def _table(cells, columns, widths, right, cut, header=True, caption=""):
    """A rich Table of fixed column widths: the blocks of a grouped table align."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_header=header, show_edge=False, pad_edge=False,
                  caption=caption or None, caption_justify="left", header_style="bold",
                  collapse_padding=True)
    for c, width in zip(columns, widths):
        table.add_column(c, justify="right" if c in right else "left", width=width,
                         no_wrap=c in cut, overflow="ellipsis" if c in cut else "fold")
    for row in cells:
        table.add_row(*row)
    return table


def _styled(text: str, style: str = ""):
    from rich.text import Text

    out = Text(text, style=style, overflow="fold")
    for m in _STATUS_WORD.finditer(text):
        out.stylize(_STYLE_OF[m.group(1)], m.start(), m.end())
    return out


_TRAILING_BLANKS = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$", re.MULTILINE)


def _capture(con, *renderables) -> str:
    with con.capture() as captured:
        for r in renderables:
            con.print(r, overflow="fold")
    # rich pads every cell to its column's width: no trailing blanks to copy or to wrap
    return _TRAILING_BLANKS.sub(r"\1", captured.get().rstrip("\n"))
