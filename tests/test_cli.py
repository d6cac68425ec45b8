"""The command line: list, verify, bench, run, and its exit codes (0 ok, 1 failure, 3 usage).

Most tests call ``convbench.cli.main([...])`` in-process; a few run the real entry point
(``python -m convbench.cli``) in a subprocess. Output is plain unless a test asks for a
terminal (the ``terminal`` fixture: rich's TTY_COMPATIBLE=1 and COLUMNS=100).
"""
from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from convbench import cli, registry, results
from convbench.ops import all_ops, get_op
from convbench.report import DETAIL_TITLE, SUMMARY_TITLE

ROOT = Path(__file__).resolve().parent.parent
BENCH = ["bench", "--suite", "quick", "--op", "correlate", "--candidate",
         "shift_add_numpy,filter2d_opencv", "--filter", "camera-sharpen"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
WIDTH = 100
TERMINAL_ENV = ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR", "COLUMNS", "TTY_INTERACTIVE")


@pytest.fixture(autouse=True)
def plain(monkeypatch):
    """Every test starts plain, whatever the environment running pytest says."""
    for name in TERMINAL_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def terminal(monkeypatch):
    """stdout and stderr count as a terminal 100 columns wide (rich reads these variables)."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", str(WIDTH))


def visible(text: str) -> str:
    return ANSI.sub("", text)


def coloured(word: str, colour: int, text: str) -> bool:
    """``word`` drawn in the SGR colour ``colour`` (31 red, 32 green, ...)."""
    return re.search(rf"\x1b\[(?:\d+;)*{colour}(?:;\d+)*m{word}\b", text) is not None


def assert_fits(text: str, width: int = WIDTH) -> None:
    long = [line for line in visible(text).splitlines() if len(line) > width]
    assert not long, f"{len(long)} lines wider than {width}: {long[:3]}"


def read_down(lines: list[str], start: int) -> str:
    """The text of the column starting at ``start``, read down: a folded id comes out whole
    (cells are apart by two blanks or more)."""
    return "".join(line[start:].strip().split("  ")[0] for line in lines)


def section(out: str, title: str) -> str:
    """The block (between blank lines) that starts with ``title``."""
    [block] = [b for b in out.split("\n\n") if b.startswith(title)]
    return block


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_op_and_candidate(capsys):
    code, out, _ = run_main(capsys, "list")
    assert code == cli.EXIT_OK
    lines = out.splitlines()
    for op in registry.ops():
        for cand in registry.candidates(op):
            row = [line for line in lines if line.split()[:2] == [op, cand.name]]
            assert len(row) == 1, f"{op}/{cand.name} not listed once"
            reason = cand.unavailable()
            assert ("yes" in row[0].split()) == (reason is None), row[0]
            if reason:
                assert "no:" in row[0]
    for suite in ("small", "quick", "seed", "images", "real"):
        assert any(line.startswith(suite + " ") for line in lines), suite


def test_list_survives_an_unimportable_module(capsys, monkeypatch):
    record = get_op("correlate")    # the record with one more candidate, whose module is missing
    monkeypatch.setitem(all_ops(), "correlate", dataclasses.replace(
        record, candidates={**record.candidates, "ghost_numpy": "candidates.correlate.ghost_numpy"}))
    code, out, _ = run_main(capsys, "list", "--op", "correlate")
    assert code == cli.EXIT_OK
    ghost = [line for line in out.splitlines() if "ghost_numpy" in line.split()[:2]]
    assert ghost and "no:" in ghost[0]


def test_verify_passes(capsys):
    code, out, _ = run_main(capsys, "verify", "--op", "correlate", "--candidate", "ndimage_scipy")
    assert code == cli.EXIT_OK
    assert "PASSED" in out and "FAILED" not in out
    assert "x 1 candidates" in out


def test_verify_all_rows(capsys):
    code, out, _ = run_main(capsys, "verify", "--op", "convolve", "--candidate", "shift_add_numpy",
                            "--filter", "x9x8-w3x3", "--all-rows")
    assert code == cli.EXIT_OK
    assert out.count("shift_add_numpy") >= 5 and "PASSED" in out


def test_verify_failure_exits_1(capsys, monkeypatch):
    import numpy as np

    import candidates.correlate.shift_add_numpy as sa

    monkeypatch.setattr(sa, "correlate", lambda x, w, **kw: np.zeros(x.shape))
    code, out, _ = run_main(capsys, "verify", "--op", "correlate", "--candidate", "shift_add_numpy",
                            "--filter", "x8x7-w3x3")
    assert code == cli.EXIT_FAIL
    lines = out.splitlines()
    assert lines[0].startswith("FAILED: ")   # the verdict first, then the failing rows
    failing = [line for line in lines if "shift_add_numpy" in line]
    assert failing and all(" FAIL " in line for line in failing)


def test_filter_matching_nothing_exits_3(capsys):
    code, out, err = run_main(capsys, "verify", "--op", "correlate", "--filter", "no-such-case")
    assert code == cli.EXIT_USAGE
    assert len(err.strip().splitlines()) == 1 and "no cases" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv,named,accepted", [
    (["verify", "--op", "corelate"], "corelate", "correlate"),
    (["verify", "--op", "correlate", "--candidate", "nope"], "nope", "shift_add_numpy"),
    (["bench", "--suite", "nosuite", "--op", "correlate", "--no-save"], "nosuite", "quick"),
    (["verify", "--op", "correlate", "--cases", "nosuite"], "nosuite", "small"),
])
def test_unknown_names_exit_3(capsys, argv, named, accepted):
    code, out, err = run_main(capsys, *argv)
    assert code == cli.EXIT_USAGE
    assert named in err and "accepted" in err and accepted in err
    assert len(err.strip().splitlines()) == 1


def test_bad_option_is_a_usage_error(capsys):
    # exit 3, not argparse's 2 (2 means "wrong result" for the gate and verify)
    assert cli.main(["bench", "--protocol", "slowest"]) == cli.EXIT_USAGE
    assert cli.main(["gate", "--bogus"]) == cli.EXIT_USAGE
    assert "invalid choice" in capsys.readouterr().err


def _table_rows(out: str) -> list[str]:
    """Rows of the per-candidate table (plain output: one full row per line)."""
    return [line for line in section(out, DETAIL_TITLE).splitlines() if line.startswith("camera-sharpen")]


def _summary_rows(out: str) -> list[str]:
    return [line for line in section(out, SUMMARY_TITLE).splitlines() if line.startswith("camera-sharpen")]


def test_bench_table(capsys, tmp_path, monkeypatch):
    from convbench import choose

    monkeypatch.setattr(choose, "table", lambda: [])  # the static rules: filter2d_opencv first
    code, out, err = run_main(capsys, *BENCH, "--no-save", "--results-dir", str(tmp_path))
    assert code == cli.EXIT_OK
    # the summary leads, the per-candidate detail follows, the status counts close
    assert out.index(SUMMARY_TITLE) < out.index(DETAIL_TITLE)
    header = section(out, DETAIL_TITLE).splitlines()[1].split()
    assert {"case", "candidate", "verified", "median", "IQR", "ratio"} <= set(header)
    rows = _table_rows(out)
    assert len(rows) == 2
    assert sum("1.00x" in r for r in rows) == 1
    assert all("pass (" in r for r in rows)
    # the default choice against the fastest peer, both from this run: filter2d_opencv is
    # both the only peer and the static rules' default for a 2-D float32 image; both
    # candidates of the case passed
    (summary,) = _summary_rows(out)
    assert summary.split()[1] == "filter2d_opencv" and summary.rstrip().endswith("1.00x")
    assert " 2 pass " in summary
    assert out.rstrip().splitlines()[-1] == "1 case, 2 rows: 2 pass"
    assert "saved" not in out and list(tmp_path.iterdir()) == []
    assert not ANSI.search(out + err)   # captured output is no terminal: plain, no progress bar


def test_bench_writes_a_run_file(capsys, tmp_path):
    code, out, _ = run_main(capsys, *BENCH, "--results-dir", str(tmp_path), "--threads", "1")
    assert code == cli.EXIT_OK
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and f"saved {files[0]}" in out
    frame = results.load_frame(files)
    assert len(frame) == 2
    assert set(frame["candidate"]) == {"shift_add_numpy", "filter2d_opencv"}
    assert (frame["status"] == "pass").all()
    assert (frame["ratio"] >= 1.0).all() and (frame["ratio"] == 1.0).sum() == 1
    assert frame["median"].notna().all()
    doc = results.load_run(files[0])
    assert doc["suite"] == "quick" and doc["machine"]["threads"] == 1
    assert doc["protocol"]["samples"] >= 7


def test_run_file_records_the_command(capsys, tmp_path):
    run_main(capsys, *BENCH, "--results-dir", str(tmp_path))
    doc = results.load_run(next(tmp_path.glob("*.json")))
    assert doc["command"] == "convbench " + " ".join(BENCH + ["--results-dir", str(tmp_path)])


def test_run_file_is_world_readable(capsys, tmp_path):
    run_main(capsys, *BENCH, "--results-dir", str(tmp_path))
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    mode = next(tmp_path.glob("*.json")).stat().st_mode
    assert mode & 0o777 == 0o666 & ~umask  # as open() would have made it


def test_bench_failure_has_no_timing(capsys, tmp_path, monkeypatch):
    import numpy as np

    import candidates.correlate.shift_add_numpy as sa

    monkeypatch.setattr(sa, "correlate", lambda x, w, **kw: np.zeros(x.shape, np.float32))
    code, out, _ = run_main(capsys, *BENCH, "--results-dir", str(tmp_path))
    assert code == cli.EXIT_FAIL
    wrong = [r for r in _table_rows(out) if "shift_add_numpy" in r]
    assert wrong and "FAIL" in wrong[0]
    assert not re.search(r"\d\.\d\dx|\d (s|ms|us|ns)\b", wrong[0]), wrong[0]  # no ratio, no time
    right = [r for r in _table_rows(out) if "filter2d_opencv" in r]
    assert re.search(r"\d\.\d\dx", right[0]), right[0]
    frame = results.load_frame(list(tmp_path.glob("*.json")))
    row = frame[frame["candidate"] == "shift_add_numpy"].iloc[0]
    assert row["status"] == "FAIL" and math.isnan(row["median"])


def test_run_main_job(capsys, tmp_path):
    code, out, _ = run_main(capsys, "run", "--op", "correlate", "--candidate", "filter2d_opencv",
                            "--results-dir", str(tmp_path))
    assert code == cli.EXIT_OK
    blocks = out.split("\n\n")
    assert blocks[0].startswith("verification on") and "PASSED" in blocks[0]
    # then the summary per case, then every row
    assert blocks[1].startswith(SUMMARY_TITLE) and "ratio" in blocks[1].splitlines()[1]
    assert blocks[2].startswith(DETAIL_TITLE)
    assert "finished in" in out.splitlines()[-1]
    assert len(list(tmp_path.glob("*-quick.json"))) == 1


def _entry_point(*argv):
    return subprocess.run([sys.executable, "-m", "convbench.cli", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_entry_point_verify():
    proc = _entry_point("verify", "--op", "correlate", "--candidate", "ndimage_scipy")
    assert proc.returncode == 0, proc.stderr
    assert "PASSED" in proc.stdout


def test_entry_point_output_is_plain_with_full_ids():
    """Piped (no terminal): no escape codes, no progress bar, every row on one line with its
    full case id, for grep and CI logs."""
    from convbench.cases import suite

    proc = _entry_point("bench", "--suite", "quick", "--op", "correlate", "--candidate",
                        "shift_add_numpy,filter2d_opencv", "--filter", "camera-gauss-u8", "--no-save")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout + proc.stderr and proc.stderr == ""
    [case] = [c.id for c in suite("quick", "correlate") if "camera-gauss-u8" in c.id]
    assert len(case) > WIDTH - 40   # long enough that a terminal table has to fold it
    for candidate in ("shift_add_numpy", "filter2d_opencv"):
        assert re.search(rf"^{re.escape(case)} +{candidate} +pass \(", proc.stdout, re.MULTILINE), candidate
    assert proc.stdout.rstrip().endswith("1 case, 2 rows: 2 pass")


def test_entry_point_usage_error():
    proc = _entry_point("verify", "--op", "correlate", "--candidate", "nope")
    assert proc.returncode == 3
    assert proc.stderr.startswith("convbench verify: unknown candidate") and "accepted" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------- tune merges; targets checked first


FAKE_MEDIANS = {"shift_add_numpy": 2e-3, "ndimage_scipy": 1e-3}   # ndimage_scipy ranks first


@pytest.fixture
def fake_tune(monkeypatch):
    """tune's measurement replaced by fixed medians for two candidates: records the cases."""
    from convbench import bench, tune

    measured = []

    def run_case(case, candidates, *args, **kwargs):
        measured.append(case.id)
        return [bench._row(case, c, "pass", median=FAKE_MEDIANS[c.name], min=FAKE_MEDIANS[c.name],
                           iqr=0.0, ratio=1.0, checked="all", error_model="direct", peer=False)
                for c in candidates if c.name in FAKE_MEDIANS]

    monkeypatch.setattr(tune.bench, "run_case", run_case)
    return measured


def _tune(capsys, output, case_filter):
    return run_main(capsys, "tune", "--op", "correlate", "--suite", "quick", "--filter", case_filter,
                    "--output", str(output))


def test_a_filtered_tune_replaces_only_its_rows(capsys, tmp_path, fake_tune):
    import json

    from convbench import choose

    packaged = json.loads(choose.PACKAGED_TABLE.read_text())["rows"]
    output = tmp_path / "choices.json"
    # the first filtered tune merges into the packaged table, the second into the first's
    for case_filter in ("camera-sharpen", "camera-gauss-u8"):
        code, _, err = _tune(capsys, output, case_filter)
        assert code == cli.EXIT_OK, err
    assert len(fake_tune) == 2 and "camera-sharpen" in fake_tune[0] and "camera-gauss-u8" in fake_tune[1]
    doc = json.loads(output.read_text())
    assert doc["schema"] == choose.SCHEMA and doc["version"] == 1 and doc["machine"]
    rows = doc["rows"]
    assert [r["case"] for r in rows] == [r["case"] for r in packaged]   # same cases, same order
    for row, before in zip(rows, packaged):
        if row["case"] in fake_tune:
            assert row["ranking"] == ["ndimage_scipy", "shift_add_numpy"]
            assert row["medians"] == FAKE_MEDIANS and set(row) == set(before)
        else:
            assert row == before


@pytest.mark.filterwarnings("ignore:ignoring the choice table")   # choose's own reading says why
def test_tune_refuses_an_unreadable_table_before_measuring(capsys, tmp_path, fake_tune):
    output = tmp_path / "choices.json"
    output.write_text("{ half a table")
    code, _, err = _tune(capsys, output, "camera-sharpen")
    assert code == cli.EXIT_USAGE and str(output) in err and "cannot be used" in err
    assert fake_tune == [] and output.read_text() == "{ half a table"   # nothing lost


def test_tune_checks_its_output_before_measuring(capsys, tmp_path, fake_tune, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for output, reason in ((tmp_path, "is a folder"), (blocker / "choices.json", "is a file")):
        code, _, err = _tune(capsys, output, "camera-sharpen")
        assert code == cli.EXIT_USAGE and reason in err and str(output) in err, err
    monkeypatch.setenv("CONVBENCH_CACHE", str(blocker / "cache"))   # the default: the user cache
    code, _, err = run_main(capsys, "tune", "--op", "correlate", "--suite", "quick", "--filter", "camera-sharpen")
    assert code == cli.EXIT_USAGE and str(blocker / "cache" / "choices.json") in err, err
    assert fake_tune == []


@pytest.mark.parametrize("command", ["bench", "run"])
def test_results_dir_is_checked_before_measuring(capsys, tmp_path, monkeypatch, command):
    from convbench import bench, verification

    def measuring(*args, **kwargs):
        raise AssertionError("measured before the results folder was checked")

    monkeypatch.setattr(bench, "run", measuring)
    monkeypatch.setattr(verification, "verify_candidates", measuring)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = BENCH if command == "bench" else ["run", "--op", "correlate", "--candidate", "shift_add_numpy"]
    code, _, err = run_main(capsys, *argv, "--results-dir", str(blocker))
    assert code == cli.EXIT_USAGE and "--results-dir" in err and "is a file" in err, err
    code, _, err = run_main(capsys, *argv, "--results-dir", str(blocker / "runs"))
    assert code == cli.EXIT_USAGE and "--results-dir" in err and "is a file" in err, err


# ------------------------------------------------------------------ on a terminal


def test_bench_on_a_terminal(capsys, terminal, tmp_path, monkeypatch):
    """100 columns: long ids folded, never cut; the summary first; pass in green; a
    progress bar with an ETA on stderr."""
    from convbench import choose
    from convbench.cases import suite

    monkeypatch.setattr(choose, "table", lambda: [])  # the static rules: filter2d_opencv first
    code, out, err = run_main(capsys, "bench", "--suite", "quick", "--op", "correlate", "--candidate",
                              "shift_add_numpy,filter2d_opencv", "--filter", "camera-",
                              "--results-dir", str(tmp_path))
    assert code == cli.EXIT_OK
    assert_fits(out)
    assert_fits(err)
    text = visible(out)
    assert text.index(SUMMARY_TITLE) < text.index(DETAIL_TITLE)
    assert coloured("pass", 32, out)
    assert "eta" in visible(err)
    ids = [c.id for c in suite("quick", "correlate") if c.id.startswith("camera-")]
    assert max(map(len, ids)) > 80
    summary, detail = text.split(DETAIL_TITLE)
    # the summary folds each id within its column: read down the column, they are whole
    lines = summary.splitlines()
    rows = lines[3:next(i for i, line in enumerate(lines) if line.startswith("ratio:"))]
    assert read_down(rows, 0) == "".join(ids)
    assert len(rows) > len(ids)   # folded indeed
    for case in ids:
        assert f"\n{case}\n" in detail, case   # whole, heading its rows
    assert "saved " in text and (tmp_path.name in text.replace("\n", ""))
    [saved] = tmp_path.glob("*.json")
    assert {r["case"] for r in results.load_run(saved)["rows"]} == set(ids)   # full ids in the run file


def test_a_failure_on_a_terminal_is_red(capsys, terminal, tmp_path, monkeypatch):
    import numpy as np

    import candidates.correlate.shift_add_numpy as sa

    monkeypatch.setattr(sa, "correlate", lambda x, w, **kw: np.zeros(x.shape, np.float32))
    code, out, _ = run_main(capsys, *BENCH, "--no-save")
    assert code == cli.EXIT_FAIL
    assert_fits(out)
    assert coloured("FAIL", 31, out) and coloured("pass", 32, out)
    [wrong] = [line for line in visible(out).splitlines() if line.startswith("shift_add_numpy")]
    assert "FAIL" in wrong and not re.search(r"\d\.\d\dx", wrong)


def test_verify_on_a_terminal_leads_with_the_verdict(capsys, terminal):
    code, out, _ = run_main(capsys, "verify", "--op", "convolve", "--candidate", "shift_add_numpy",
                            "--filter", "x9x8-w3x3", "--all-rows")
    assert code == cli.EXIT_OK
    assert_fits(out)
    assert visible(out).startswith("PASSED: ")
    assert coloured("PASSED", 32, out)


def test_no_color_keeps_the_layout_without_colour(capsys, terminal, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run_main(capsys, "verify", "--op", "convolve", "--candidate", "shift_add_numpy",
                            "--filter", "x9x8-w3x3", "--all-rows")
    assert code == cli.EXIT_OK
    assert "─" in out   # still the terminal's table
    assert not re.search(r"\x1b\[(?:\d+;)*(?:3[0-8]|9[0-7])(?:;\d+)*m", out), "a colour under NO_COLOR"


def test_list_on_a_terminal(capsys, terminal):
    code, out, _ = run_main(capsys, "list")
    assert code == cli.EXIT_OK
    assert_fits(out)
    lines = visible(out).splitlines()
    for op in registry.ops():
        assert op in lines, f"no heading for {op}"
        for cand in registry.candidates(op):
            assert any(line.split()[:1] == [cand.name] for line in lines), cand.name


def test_gate_report_on_a_terminal(terminal):
    """The gate's table: 100 columns on a terminal, keys folded, statuses coloured; plain
    output (a file, CI) is unchanged: one line per entry, its status first."""
    import io

    from convbench import gate
    from convbench.table import console

    case = "camera-gauss-u8-correlate-x512x512-w5x5-out_dtype=uint8-edge-u8-f32-camera+gauss1"
    verdicts = [gate.Verdict(f"correlate/{case}/{name}", status, ratio=r, p=0.001, now=1e-3 * r,
                             base=1e-3, detail=detail)
                for name, status, r, detail in (
                    ("filter2d_opencv", "ok", 1.01, ""),
                    ("ndimage_scipy", "SLOWER", 1.6, "slower by 60% (p 0.001), confirmed on a second run"),
                    ("shift_add_numpy", "WRONG", math.nan, "FAIL: err/bound 3.2 at (4, 5)"))]
    text = gate.format_report(verdicts, console(io.StringIO()))
    assert_fits(text)
    assert coloured("SLOWER", 31, text) and coloured("WRONG", 31, text) and coloured("ok", 32, text)
    lines = visible(text).splitlines()
    assert read_down(lines[2:], lines[0].index("op/case/candidate")) == "".join(
        f"correlate/{case}/{name}" for name in ("shift_add_numpy", "ndimage_scipy", "filter2d_opencv"))
    plain = gate.format_report(verdicts)
    assert "\x1b" not in plain
    assert [line.split()[:2] for line in plain.splitlines()[2:]] == [
        ["WRONG", f"correlate/{case}/shift_add_numpy"], ["SLOWER", f"correlate/{case}/ndimage_scipy"],
        ["ok", f"correlate/{case}/filter2d_opencv"]]
