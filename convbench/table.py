"""Plain-text tables for the terminal."""
from __future__ import annotations


def format_table(rows: list[dict], align_right=("median", "IQR", "min", "ratio", "err/bound")) -> str:
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(values):
        return "  ".join(v.rjust(w) if c in align_right else v.ljust(w)
                         for v, w, c in zip(values, widths, columns)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def format_seconds(s: float) -> str:
    if s != s:  # NaN
        return ""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"
