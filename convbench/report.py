"""What convbench reports: the tables ``bench``, ``run``, ``tune`` and ``verify`` print
(convbench.table draws them), and ``convbench report``'s pictures and tables from run files:

- time against kernel size per algorithm on 1024x1024 float32 (the images sweep), with
  the direct-summation floor (2 K flops per pixel at the measured float32 GEMM rate),
  log-log, so the direct/FFT/separable crossovers show;
- what each border mode does at an image edge (a photograph's corner, extended);
- the default choice against the fastest peer, per case, as a Markdown table.
"""
from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np

from convbench import results
from convbench.table import format_seconds, render, status_text

SWEEP_CASE = re.compile(r"^sweep-correlate-x1024x1024-w(\d+)x\1-constant-f32$")


def gemm_gflops(n: int = 1024, repeat: int = 5) -> float:
    """Measured float32 matrix-product rate (numpy's BLAS): the compute roof."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def latest_run(suite: str) -> Path:
    """The newest readable run file of ``suite`` (a corrupt newer one is skipped, named)."""
    runs = sorted(results.RUNS_DIR.glob(f"*-{suite}*.json"))
    for path in reversed(runs):
        if results.load_runs([path]):
            return path
    raise ValueError(f"no readable run of suite {suite!r} under {results.RUNS_DIR}: "
                     f"run `convbench bench --suite {suite}` first")


def kernel_size_plot(frame, path: Path, gflops: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = frame[frame["case"].str.match(SWEEP_CASE.pattern)].copy()
    if frame.empty:
        raise ValueError("the run has no 1024x1024 float32 sweep cases (convbench bench --suite images)")
    frame["k"] = frame["case"].str.extract(SWEEP_CASE.pattern)[0].astype(int)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    # the default cycle repeats after 10 lines; tab20's dark shades first, then the light ones
    tab20 = plt.get_cmap("tab20").colors
    colors = tab20[::2] + tab20[1::2]
    for i, (name, group) in enumerate(frame.groupby("candidate")):
        group = group.dropna(subset=["median"]).sort_values("k")
        if group.empty:
            continue
        style = "-o" if group["peer"].iloc[0] else "-s"
        ax.plot(group["k"], group["median"] * 1e3, style, color=colors[i % 20],
                label=name + (" (peer)" if group["peer"].iloc[0] else ""))
    ks = np.array(sorted(frame["k"].unique()))
    floor = 2 * ks**2 * 1024 * 1024 / (gflops * 1e9) * 1e3
    ax.plot(ks, floor, "k--", label=f"direct floor: 2K flop/pixel at {gflops:.0f} GFLOP/s")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ks, [f"{k}x{k}" for k in ks])
    ax.set_xlabel("kernel size")
    ax.set_ylabel("median time per call (ms)")
    ax.set_title("correlate, 1024x1024 float32, constant border (one run, interleaved)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def borders_picture(path: Path, width: int = 48) -> Path:
    """A photograph's top-left corner extended by each border (the oracle's pad)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convbench.data import photo
    from refimpl.pad import BORDERS, pad

    # a crop with structure (the photographer's head and camera): flat sky would hide the rules
    corner = photo("camera")[80:176, 180:276].astype(np.float64)
    fig, axes = plt.subplots(1, len(BORDERS), figsize=(3 * len(BORDERS), 3.4))
    for ax, border in zip(axes, BORDERS):
        ext = pad(corner, ((width, 0), (width, 0)), border, cval=128.0)
        ax.imshow(ext, cmap="gray", vmin=0, vmax=255)
        ax.axhline(width - 0.5, color="r", lw=0.8)
        ax.axvline(width - 0.5, color="r", lw=0.8)
        ax.set_title(border)
        ax.axis("off")
    fig.suptitle("border modes at the top-left corner of a 96x96 crop of camera (red: image edge)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def default_table(doc: dict) -> str:
    """The default choice against the fastest peer in one run document (results.load_run)."""
    from convbench.bench import default_vs_peers

    rows = [{**r, "median": r["median"] if r["median"] is not None else math.nan}
            for r in doc["rows"]]
    lines = ["| case | default choice | median | fastest peer | median | ratio |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in default_vs_peers(rows):
        ratio = f"{r['ratio']:.2f}" if r["ratio"] == r["ratio"] else r["default_status"]
        lines.append(f"| {r['case']} | {r['default']} | {format_seconds(r['default_median'])} | "
                     f"{r['fastest_peer']} | {format_seconds(r['peer_median'])} | {ratio} |")
    return "\n".join(lines)


def report(run_paths=None, out_dir: Path | None = None) -> list[Path]:
    out_dir = Path(out_dir) if out_dir else results.RUNS_DIR.parent / "report"
    if run_paths is None:
        run_paths = [latest_run("images")]
    runs = results.load_runs(run_paths)  # a corrupt file is skipped with a warning naming it
    if not runs:
        raise ValueError(f"no readable run file among {', '.join(map(str, run_paths))}")
    results.check_writable(out_dir, "report folder", folder=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    frame = results.runs_frame(runs)
    try:
        written.append(kernel_size_plot(frame, out_dir / "kernel_size.png", gemm_gflops()))
    except ValueError as exc:
        print(f"kernel-size plot skipped: {exc}")
    written.append(borders_picture(out_dir / "borders.png"))
    tables = "\n\n".join(f"### {path.name}\n\n{default_table(doc)}" for path, doc in runs)
    md = out_dir / "default_vs_peers.md"
    results.write_atomic(md, "# Default choice against the fastest peer (same run)\n\n" + tables + "\n")
    written.append(md)
    return written


# ------------------------------------------------- the tables the command line prints

RAN = ("pass", "slow", "FAIL", "error")   # statuses of candidates that were called
STATUS_ORDER = RAN + ("refused", "unsupported", "unavailable", "skipped")
SUMMARY_TITLE = "The default choice against the fastest peer, per case"
SUMMARY_CAPTION = ("ratio: the default's median over the fastest peer's, both from this run "
                   "(below 1: the default is faster)")
DETAIL_TITLE = "Every candidate, per case"


def counts(statuses) -> str:
    """'3 pass, 1 FAIL': how many of each status, in STATUS_ORDER."""
    statuses = list(statuses)
    order = [s for s in STATUS_ORDER if s in statuses] + sorted(set(statuses) - set(STATUS_ORDER))
    return ", ".join(f"{statuses.count(s)} {s}" for s in order)


def summary_rows(rows: list[dict]) -> list[dict]:
    """Per case: the default choice and the fastest peer with their medians (bench rows of
    one run), how its candidates fared, and the ratio."""
    from convbench.bench import default_vs_peers

    out = []
    for p in default_vs_peers(rows):
        out.append({"case": p["case"], "default choice": p["default"],
                    "median": format_seconds(p["default_median"]),
                    "fastest peer": p["fastest_peer"], "peer median": format_seconds(p["peer_median"]),
                    "verified": counts(r["status"] for r in rows if r["case"] == p["case"]
                                       and r["status"] in RAN),
                    "ratio": f"{p['ratio']:.2f}x" if p["ratio"] == p["ratio"] else p["default_status"]})
    return out


def detail_rows(rows: list[dict]) -> list[dict]:
    """One line per bench row: its verification, median, spread, ratio to the fastest."""
    out = []
    for r in rows:
        timed = not math.isnan(r["median"])
        model = "" if r["error_model"] in ("direct", "") else ", " + r["error_model"]
        note = r["detail"]
        if note.startswith(r["status"] + ": "):   # the status column says it already
            note = note[len(r["status"]) + 2:]
        out.append({
            "case": r["case"], "candidate": r["candidate"],
            "verified": f"pass ({r['checked']}{model})" if r["status"] == "pass" else r["status"],
            "median": format_seconds(r["median"]) if timed else "",
            "IQR": format_seconds(r["iqr"]) if timed else "",
            "ratio": f"{r['ratio']:.2f}x" if timed else "",
            **({"peak extra": f"{r['peak_extra_bytes'] / 2**20:.1f} MiB"
                if r.get("peak_extra_bytes") is not None else ""} if "peak_extra_bytes" in r else {}),
            "note": note,
        })
    return out


def bench_report(rows: list[dict], con) -> str:
    """What bench and run print: the summary per case first, then every candidate's row,
    then the count of each status."""
    parts = []
    summary = summary_rows(rows)
    if summary:
        parts.append(render(summary, con, fold=("case",), status=("verified",),
                            below={"default choice": "median", "fastest peer": "peer median"},
                            title=SUMMARY_TITLE, caption=SUMMARY_CAPTION))
    parts.append(detail_table(rows, con))
    cases = len(dict.fromkeys(r["case"] for r in rows))
    parts.append(status_text(f"{cases} case{'' if cases == 1 else 's'}, {len(rows)} rows: "
                             f"{counts(r['status'] for r in rows)}", con))
    return "\n\n".join(parts)


def detail_table(rows: list[dict], con) -> str:
    return render(detail_rows(rows), con, right=("median", "IQR", "ratio", "peak extra"),
                  cut=("note",), status=("verified",), group="case", title=DETAIL_TITLE)


def verify_table(rows, con) -> str:
    """Verification rows (convbench.verification.Row), grouped by case on a terminal."""
    return render([{"case": r.case, "candidate": r.candidate, "status": r.status,
                    "err/bound": "" if math.isnan(r.worst) else f"{r.worst:.2g}",
                    "checked": r.checked, "detail": r.detail} for r in rows],
                  con, cut=("detail",), status=("status",), group="case")
