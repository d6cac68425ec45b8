"""Run files: nothing lost. Concurrent writers each keep their file, a corrupt file is
skipped by name (not a reason to read nothing), and write targets are checked up front."""
from __future__ import annotations

import json
import multiprocessing
import warnings

import pytest

from convbench import results

ROWS = [{"op": "correlate", "case": "c1", "candidate": "a", "status": "pass", "median": 1e-3}]
STAMP = "20300101T000000Z"   # every writer in the same second


def _save(directory, rows=ROWS, suite="unit"):
    return results.save_run(rows, suite=suite, machine={"hostname": "h"}, protocol={"samples": 7},
                            command="convbench test", directory=directory)


def _save_many(directory, writer, count, barrier):
    results.time.strftime = lambda fmt, t=None: STAMP   # this child only (forked)
    barrier.wait()
    for i in range(count):
        _save(directory, [{"case": f"w{writer}-{i}", "candidate": "a", "status": "pass"}])


def test_concurrent_saves_in_the_same_second_keep_every_file(tmp_path):
    context = multiprocessing.get_context("fork")
    writers, each = 8, 15
    barrier = context.Barrier(writers)
    procs = [context.Process(target=_save_many, args=(tmp_path, w, each, barrier))
             for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * writers
    files = sorted(tmp_path.iterdir())
    assert len(files) == writers * each, [f.name for f in files]
    assert all(f.name.startswith(STAMP) and f.suffix == ".json" for f in files)   # no temp files
    saved = {results.load_run(f)["rows"][0]["case"] for f in files}
    assert saved == {f"w{w}-{i}" for w in range(writers) for i in range(each)}


def test_an_existing_file_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(results.time, "strftime", lambda fmt, t=None: STAMP)
    first = tmp_path / f"{STAMP}-unit.json"
    first.write_text("not mine\n")
    path = _save(tmp_path)
    assert path.name == f"{STAMP}-unit-2.json"
    assert first.read_text() == "not mine\n"


def test_without_hard_links_names_are_still_exclusive(tmp_path, monkeypatch):
    import errno

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(results.os, "link", no_links)
    monkeypatch.setattr(results.time, "strftime", lambda fmt, t=None: STAMP)
    paths = [_save(tmp_path) for _ in range(3)]
    assert [p.name for p in paths] == [f"{STAMP}-unit.json", f"{STAMP}-unit-2.json", f"{STAMP}-unit-3.json"]
    assert sorted(tmp_path.iterdir()) == sorted(paths)
    assert all(results.load_run(p)["rows"] == ROWS for p in paths)


# ------------------------------------------------------------------------- corrupt files

CORRUPT = {
    "truncated.json": '{"schema": "convbench-run", "version": 1, "rows": [',
    "list.json": "[1, 2, 3]",
    "schema.json": json.dumps({"schema": "asv-result", "version": 1}),
    "no-rows.json": json.dumps({"schema": "convbench-run", "version": 1, "suite": "s",
                                "created": "t", "machine": {}}),
    "bad-row.json": json.dumps({"schema": "convbench-run", "version": 1, "suite": "s",
                                "created": "t", "machine": {}, "rows": [1]}),
    "binary.json": b"\xff\xfe\x00garbage",
}


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_load_run_names_the_corrupt_file(tmp_path, name):
    path = _write(tmp_path / name, CORRUPT[name])
    with pytest.raises(ValueError) as info:
        results.load_run(path)
    assert str(path) in str(info.value)


def test_load_frame_skips_corrupt_files_by_name_and_reads_the_rest(tmp_path):
    good = [_save(tmp_path), _save(tmp_path)]
    bad = [_write(tmp_path / name, content) for name, content in CORRUPT.items()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = results.load_frame(sorted(tmp_path.iterdir()))
    assert len(frame) == 2 and set(frame["run"]) == {p.name for p in good}
    messages = [str(w.message) for w in caught]
    assert len(messages) == len(bad)
    for path in bad:
        assert sum(str(path) in m for m in messages) == 1, messages


def test_report_skips_a_corrupt_run_file_and_the_cli_prints_the_warning(tmp_path, capsys, monkeypatch):
    from convbench import cli, report

    monkeypatch.setattr(report, "gemm_gflops", lambda: 100.0)
    rows = [{"op": "correlate", "case": "c1", "candidate": name, "status": "pass", "detail": "",
             "device": "cpu", "peer": peer, "default": not peer, "median": t, "iqr": 0.0, "min": t,
             "loops": 1, "samples": [t] * 7, "ratio": 1.0, "worst": 0.1, "checked": "all",
             "error_model": "direct"}
            for name, t, peer in (("filter2d_opencv", 1e-3, True), ("fft_scipy", 2e-3, False))]
    good = _save(tmp_path, rows, suite="images")
    bad = _write(tmp_path / "zz-images.json", CORRUPT["truncated.json"])
    out_dir = tmp_path / "report"
    code = cli.main(["report", "--run", str(good), "--run", str(bad), "--output", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_OK, err
    assert str(bad) in err and "skipped" in err
    table = (out_dir / "default_vs_peers.md").read_text()
    assert good.name in table and bad.name not in table
    assert "| c1 | fft_scipy |" in table and "| 2.00 |" in table   # the good run's 2 ms vs 1 ms


def test_report_with_only_corrupt_files_is_a_usage_error(tmp_path, capsys):
    from convbench import cli

    bad = _write(tmp_path / "bad.json", "{")
    code = cli.main(["report", "--run", str(bad), "--output", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and str(bad) in err and "Traceback" not in err


# ------------------------------------------------------------------------- write targets


def test_check_writable_accepts_a_folder_to_be_created(tmp_path):
    target = tmp_path / "a" / "b" / "out.json"
    assert results.check_writable(target, "--output") == target
    assert not (tmp_path / "a").exists()   # checked, not created
    assert list(tmp_path.iterdir()) == []  # the probe left nothing


def test_check_writable_refuses_bad_targets(tmp_path):
    blocker = _write(tmp_path / "file", "x")
    with pytest.raises(ValueError, match=r"--output .* is a folder"):
        results.check_writable(tmp_path, "--output")
    with pytest.raises(ValueError, match=r"--output .*file is a file"):
        results.check_writable(blocker / "sub" / "out.json", "--output")
    with pytest.raises(ValueError, match=r"--results-dir .* is a file"):
        results.check_writable(blocker, "--results-dir", folder=True)
    results.check_writable(tmp_path, "--results-dir", folder=True)


def test_check_writable_refuses_a_folder_that_takes_no_files(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # a real read-only folder does not refuse root, who runs some CI jobs: the probe is faked
    monkeypatch.setattr(results.tempfile, "mkstemp", refuse)
    with pytest.raises(ValueError, match=r"--output .*cannot write in .*Permission denied"):
        results.check_writable(tmp_path / "out.json", "--output")
