"""convbench's command line: list, verify, bench, run, tune, report, gate.

Exit codes: 0 success; 1 a candidate failed verification or crashed; 3 usage error;
130 stopped by Ctrl-C (verify, bench, run, tune: the rows completed so far are printed, and
bench/run save them to the run file). The gate has its own codes (0/1/2/3; Ctrl-C is 3).

bench, run, tune and gate measure every candidate in a worker process (``--no-isolate``
runs them in this one): a candidate that crashes, exits or runs longer than ``--timeout``
seconds per call (default 300) fails its own row and the run goes on. verify runs in this
process unless ``--isolate``.

Output: on a terminal, tables fitted to its width with coloured statuses and a progress
bar on stderr; piped or redirected, plain columns with one full row per line (NO_COLOR,
FORCE_COLOR, TTY_COMPATIBLE and COLUMNS are honoured; convbench/table.py).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 3, 130


class Interrupted(KeyboardInterrupt):
    """Ctrl-C after the completed rows were printed (and saved): exit 130."""


def thread_count(text: str) -> int:
    """argparse type of --threads: a whole number >= 0 (0: every core)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"--threads takes a whole number >= 0 (0: every core), "
                                         f"got {text!r}")
    return n


def timeout_seconds(text: str) -> float:
    """argparse type of --timeout: a positive, finite number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise argparse.ArgumentTypeError(f"--timeout takes a positive number of seconds, got {text!r}")
    return seconds


def _isolation(sp, default_on: bool) -> None:
    sp.add_argument("--timeout", type=timeout_seconds, default=None, metavar="SECONDS",
                    help="seconds one candidate call may take (default 300)")
    if default_on:
        sp.add_argument("--no-isolate", action="store_true",
                        help="run candidates in this process (default: a worker process, so a "
                             "crash or hang fails only its row)")
    else:
        sp.add_argument("--isolate", action="store_true",
                        help="run candidates in a worker process: a crash or hang fails only its row")


def _split(values):
    out = []
    for v in values or []:
        out.extend(x for x in v.split(",") if x)
    return out or None


def _select_cases(suite_name: str, ops, case_filter):
    from convbench.cases import all_suites, suite

    if suite_name not in all_suites():
        raise ValueError(f"unknown suite {suite_name!r}; accepted: {', '.join(all_suites())}")
    cases = []
    for op in ops:
        if op in all_suites()[suite_name]:
            cases.extend(suite(suite_name, op))
    if case_filter:
        cases = [c for c in cases if any(f in c.id for f in case_filter)]
    return cases


def _ops(args):
    from convbench import registry

    ops = _split(args.op) or registry.ops()
    unknown = [o for o in ops if o not in registry.ops()]
    if unknown:
        raise ValueError(f"unknown op(s) {unknown}; accepted: {', '.join(registry.ops())}")
    return ops


def _candidates(args, ops):
    from convbench import registry

    names = _split(args.candidate)
    out = [c for op in ops for c in registry.candidates(op) if not names or c.name in names]
    unknown = sorted(set(names or ()) - {c.name for c in out})
    if unknown:
        known = sorted({c.name for op in ops for c in registry.candidates(op)})
        raise ValueError(f"unknown candidate(s) {unknown} for ops {ops}; accepted: {', '.join(known)}")
    return out


def cmd_list(args) -> int:
    from convbench.cases import all_suites, suite
    from convbench.table import console, render

    rows = []
    for c in _candidates(args, _ops(args)):
        reason = c.unavailable()
        via = f" (through {c.reused_from})" if c.reused_from else ""
        via += f" (from {c.package})" if c.package else ""
        device = "" if reason and "cannot be imported" in reason else c.device
        rows.append({"op": c.op, "candidate": c.name, "device": device,
                     "available": reason.replace("unavailable: ", "no: ") if reason else "yes",
                     "module": c.module_path + via})
    con = console()
    print(render(rows, con, fold=("available", "module"), status=("available",), group="op"))
    print()
    print(render([{"suite": name, "ops": ", ".join(builders),
                   "cases": str(sum(len(suite(name, op)) for op in builders))}
                  for name, builders in all_suites().items()], con, fold=("ops",), right=("cases",)))
    return EXIT_OK


FAILURES_SHOWN = 40
OUTPUT_HELP = (
    "Prints, per case, the default choice against the fastest peer first (their medians, "
    "the ratio, how many candidates passed), then every candidate's row grouped by case, "
    "then the count of each status; the run file (results/runs/*.json) keeps every row "
    "with full ids. On a terminal the tables fit its width (long ids fold, notes are cut) "
    "with coloured statuses and a progress bar on stderr; piped or redirected, the output "
    "is plain columns, one full row per line. NO_COLOR turns colour off.")


def print_verification(report, con, all_rows: bool = False, lead: str = "") -> None:
    """The verdict with its counts first, then the failing rows (every row with ``all_rows``)."""
    from convbench.report import verify_table
    from convbench.table import status_text

    print(status_text(lead + report.summary(), con))
    shown = report.rows if all_rows else report.failures[:FAILURES_SHOWN]
    if shown:
        print(verify_table(shown, con))
    if not all_rows and len(report.failures) > FAILURES_SHOWN:
        print(f"... {len(report.failures) - FAILURES_SHOWN} more failing rows (--all-rows prints every row)")


def cmd_verify(args) -> int:
    from convbench.progress import Progress
    from convbench.table import console
    from convbench.verification import verify_candidates

    ops = _ops(args)
    candidates = _candidates(args, ops)
    cases = _select_cases(args.cases, ops, _split(args.filter))
    if not cases:
        raise ValueError(f"no cases in suite {args.cases!r} for ops {ops} with filter {args.filter}")
    started = time.perf_counter()
    with Progress(len(cases), "verify") as progress:
        report = verify_candidates(candidates, cases, progress, timeout=args.timeout,
                                   isolate=args.isolate)
    print_verification(report, console(), args.all_rows)
    print(f"{len(cases)} cases x {len(candidates)} candidates in {time.perf_counter() - started:.1f} s")
    return EXIT_OK if report.passed else EXIT_FAIL


def _probe_memory(rows, suite_name: str, threads: int) -> None:
    """Peak extra memory of each verified candidate, one fresh process per row."""
    from convbench.memory import peak_extra_bytes
    from convbench.progress import Progress

    todo = [r for r in rows if r["status"] in ("pass", "slow")]
    with Progress(len(todo), "memory") as progress:
        for r in todo:
            try:
                r["peak_extra_bytes"] = peak_extra_bytes(r["op"], r["candidate"], suite_name, r["case"], threads)["extra"]
            except Exception as exc:  # a probe that fails leaves the column empty, with the reason
                r["detail"] = (r["detail"] + f"; memory probe failed: {exc}").strip("; ")
            progress(r["case"])


def _bench(args, suite_name: str, ops) -> tuple[list[dict], int]:
    from convbench import bench, machine, results
    from convbench.progress import Progress
    from convbench.report import bench_report
    from convbench.table import console, status_text
    from convbench.thread_settings import libraries_of, threads
    from convbench.timing import FULL, QUICK

    candidates = _candidates(args, ops)
    cases = _select_cases(suite_name, ops, _split(args.filter))
    if not cases:
        matching = f" matching --filter {_split(args.filter)}" if args.filter else ""
        raise ValueError(f"no cases in suite {suite_name!r} for ops {ops}{matching}")
    protocol = FULL if getattr(args, "protocol", "quick") == "full" else QUICK
    interrupted = False
    with threads(args.threads, libraries=libraries_of(candidates)) as n, \
            Progress(len(cases), suite_name) as progress:
        try:
            rows = bench.run(cases, candidates, protocol, progress, isolate=not args.no_isolate,
                             timeout=args.timeout)
        except KeyboardInterrupt as exc:   # runner.Stopped: the completed cases' rows
            rows, interrupted = getattr(exc, "rows", []), True
    if getattr(args, "memory", False):
        _probe_memory(rows, suite_name, n)
    con = console()
    print(bench_report(rows, con))
    if not args.no_save:
        path = results.save_run(rows, suite=suite_name, machine=machine.metadata(n),
                                protocol=vars(protocol), command=" ".join(["convbench"] + args.argv),
                                directory=args.results_dir)
        print(status_text(f"saved {path}", con))
    if interrupted:
        raise Interrupted(f"stopped by Ctrl-C after {len(rows)} rows")
    failed = [r for r in rows if r["status"] in ("FAIL", "error")]
    return rows, EXIT_FAIL if failed else EXIT_OK


def _check_results_dir(args) -> None:
    """Before measuring: a run that cannot be saved at the end is a usage error now."""
    from convbench import results

    if not args.no_save:
        results.check_writable(args.results_dir or results.RUNS_DIR, "--results-dir", folder=True)


def cmd_bench(args) -> int:
    if args.suite == DISPATCH_SUITE:
        return _bench_dispatch(args)
    if args.suite == NN_SUITE:
        return _bench_nn(args)
    if args.suite == DASK_SUITE:
        return _bench_dask(args)
    _check_results_dir(args)
    _, code = _bench(args, args.suite, _ops(args))
    return code


DISPATCH_SUITE = "dispatch"


def _bench_dispatch(args) -> int:
    """What a convbench call costs over the candidate it runs, beside the peers
    (convbench.dispatch): one row per call and array kind, microseconds."""
    from convbench import dispatch
    from convbench.table import console, render

    calls = [c for c in dispatch.CALLS if not args.op or c.op in _split(args.op)]
    calls = [c for c in calls if not args.filter or any(f in c.name for f in _split(args.filter))]
    if not calls:
        raise ValueError(f"no dispatch calls match; the calls: {[c.name for c in dispatch.CALLS]}")
    protocol = dispatch.PROTOCOL if args.protocol == "quick" else \
        dispatch.Protocol(warmup_s=0.2, sample_s=0.01, samples=61)
    rows = dispatch.measure_all(protocol, calls, threads=args.threads or 1)
    print(render(dispatch.format_rows(rows), console(), fold=("peers us",),
                 right=("candidate us", "convbench us", "overhead us")))
    worst = max(r["overhead_us"] for r in rows)
    print(f"largest overhead {worst:.1f} us over the chosen candidate's direct call "
          f"(target <= {dispatch.TARGET_US:g} us); threads {args.threads or 1}")
    return EXIT_OK


DASK_SUITE = "dask"


def _bench_dask(args) -> int:
    """convbench on dask arrays beside dask-image's ndfilters on one LocalCluster of worker
    processes and the same chunks (convbench.dask_arrays.bench): each verified at sampled
    points against the oracle, then timed interleaved; seconds, ratios over dask-image."""
    from convbench.dask_arrays import bench
    from convbench.table import console, render
    from convbench.timing import Protocol

    calls = [c for c in bench.CALLS if not args.filter or any(f in c.name for f in _split(args.filter))]
    if not calls:
        raise ValueError(f"no dask calls match; the calls: {[c.name for c in bench.CALLS]}")
    protocol = Protocol(warmup_s=0.0, sample_s=0.0, samples=7 if args.protocol == "quick" else 15,
                        max_s=3600)
    rows = bench.measure(calls, protocol=protocol, progress=lambda line: print(line, file=sys.stderr))
    shape = rows[0]["shape"]
    print(render(bench.format_rows(rows), console(), status=("status",),
                 title=f"convbench against dask-image on dask arrays: float32 {shape}, chunks "
                       f"{rows[0]['chunks']}, {rows[0]['workers']} (one interleaved run)",
                 caption="ratio: the median over dask-image's (below 1: convbench is faster); "
                         f"worker threads: {rows[0]['worker_threads']}"))
    return EXIT_FAIL if any(r["status"] != "pass" for r in rows) else EXIT_OK


NN_SUITE = "nn"


def _bench_nn(args) -> int:
    """convbench.nn layers beside the same torch.nn layers (convbench.nn_bench): each
    verified against torch's float64 result, then forward and forward+backward timed
    interleaved; one row per layer, milliseconds, ratios convbench over torch."""
    from convbench import nn_bench
    from convbench.progress import Progress
    from convbench.table import console, render
    from convbench.timing import FULL

    layers = nn_bench.select(_split(args.filter))
    protocol = FULL if args.protocol == "full" else nn_bench.PROTOCOL
    with Progress(len(layers), "nn") as progress:
        rows = nn_bench.measure_all(layers, protocol, threads=args.threads,
                                    progress=lambda row: progress(row["layer"]))
    print(render(nn_bench.format_rows(rows), console(), status=("status",), cut=("reason",),
                 right=nn_bench.NUMBER_COLUMNS,
                 title="convbench.nn against torch.nn, float32 (one interleaved run)",
                 caption="ratio: convbench's median over torch's (below 1: convbench is "
                         f"faster); threads {args.threads or os.cpu_count()}"))
    return EXIT_FAIL if any(r["status"] in ("FAIL", "error") for r in rows) else EXIT_OK


def _report_training(args) -> int:
    """The seed CNN trained through convbench.nn and torch.nn (convbench.training): the
    float32 loss curves overlaid and the time per step side by side."""
    from convbench import results, training

    out_dir = args.output or results.RUNS_DIR.parent / "report"
    written, text = training.training_report(out_dir, threads=args.threads)
    print(text)
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def cmd_run(args) -> int:
    """The main job: verify every candidate on the small cases, then time the quick suite."""
    from convbench.progress import Progress
    from convbench.table import console
    from convbench.verification import verify_candidates

    started = time.perf_counter()
    _check_results_dir(args)
    ops = _ops(args)
    candidates = _candidates(args, ops)
    cases = _select_cases("small", ops, None)
    with Progress(len(cases), "verify") as progress:
        report = verify_candidates(candidates, cases, progress, timeout=args.timeout,
                                   isolate=not args.no_isolate)
    print_verification(report, console(), lead=f"verification on {len(cases)} small cases: ")
    print()
    _, code = _bench(args, "quick", ops)
    print(f"convbench run finished in {time.perf_counter() - started:.1f} s")
    return EXIT_FAIL if report.failures else code


def cmd_gate(args) -> int:
    """The CI regression gate (convbench/gate.py): 0 pass, 1 slower, 2 wrong, 3 harness error."""
    from convbench import gate

    return gate.run_args(args)


def cmd_tune(args) -> int:
    """Measure the choice table on this machine (convbench/choose.py reads it)."""
    from convbench import tune
    from convbench.progress import Progress
    from convbench.report import detail_table
    from convbench.table import console
    from convbench.timing import FULL, QUICK

    cases = tune.tune_cases(args.suite or tune.TUNED_SUITES, _split(args.op) or tune.TUNED_OPS,
                            _split(args.filter), args.skip_large)
    with Progress(len(cases), "tune") as progress:
        path, rows = tune.tune(args.output, suites=args.suite or tune.TUNED_SUITES,
                               ops=_split(args.op) or tune.TUNED_OPS, threads=args.threads,
                               protocol=FULL if args.protocol == "full" else QUICK,
                               case_filter=_split(args.filter), skip_large=args.skip_large,
                               progress=progress, isolate=not args.no_isolate, timeout=args.timeout)
    print(detail_table(rows, console()))
    print(f"choice table for {len(cases)} cases written to {path}")
    return EXIT_OK


def cmd_report(args) -> int:
    if args.training:
        return _report_training(args)
    import warnings

    from convbench import report

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            written = report.report(args.run or None, args.output)
        finally:  # a skipped corrupt run file is named, also when the report then fails
            for warning in caught:
                print(f"convbench report: warning: {warning.message}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convbench", description=__doc__.strip() if __doc__ else None)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, suite_default=None):
        sp.add_argument("--op", action="append", help="operation(s), e.g. correlate,convolve")
        sp.add_argument("--candidate", action="append", help="candidate name(s), comma separated")
        sp.add_argument("--filter", action="append", help="only cases whose id contains this")

    sp = sub.add_parser("list", help="ops, candidates, availability, suites")
    common(sp)
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("verify", help="check candidates against the oracles",
                        description="Check candidates against the oracles. Prints the verdict "
                                    "and the count of each status first, then the failing rows "
                                    "(--all-rows: every row).")
    common(sp)
    sp.add_argument("--cases", default="small", help="suite whose cases to check (default small)")
    sp.add_argument("--all-rows", action="store_true", help="print every row, not only failures")
    _isolation(sp, default_on=False)
    sp.set_defaults(func=cmd_verify)

    for name, fn, help_text in (("bench", cmd_bench, "verify and time a suite"),
                                ("run", cmd_run, "verify on small cases, then time the quick suite")):
        sp = sub.add_parser(name, help=help_text, description=f"{help_text[0].upper()}{help_text[1:]}. "
                            + OUTPUT_HELP)
        common(sp)
        if name == "bench":
            sp.add_argument("--suite", default="quick",
                            help="quick, seed, images, real, small, layers, dispatch (what a "
                                 "convbench call costs over the candidate it runs, beside the "
                                 "peers; --threads defaults to 1 there), or nn (convbench.nn "
                                 "layers beside torch.nn's, forward and backward)")
        sp.add_argument("--threads", type=thread_count, default=None,
                        help="threads for every library (default: all cores)")
        sp.add_argument("--protocol", choices=("quick", "full"), default="quick",
                        help="quick: short samples; full: longer warm-up and 15 samples")
        sp.add_argument("--no-save", action="store_true", help="do not write results/runs/*.json")
        sp.add_argument("--memory", action="store_true",
                        help="also measure each verified candidate's peak extra memory (a process per row)")
        sp.add_argument("--results-dir", default=None, help="where run files go (default results/runs)")
        _isolation(sp, default_on=True)
        sp.set_defaults(func=fn)

    sp = sub.add_parser("tune", help="measure the default-choice table on this machine")
    sp.add_argument("--op", action="append", help="ops to tune (default correlate, gaussian)")
    sp.add_argument("--suite", action="append", help="suites to measure (default quick, seed, images)")
    sp.add_argument("--filter", action="append", help="only cases whose id contains this")
    sp.add_argument("--skip-large", action="store_true", help="leave out cases tagged large (seed-fft-10k)")
    sp.add_argument("--threads", type=thread_count, default=None,
                    help="threads for every library (default: all cores)")
    sp.add_argument("--protocol", choices=("quick", "full"), default="quick")
    sp.add_argument("--output", default=None, help="table path (default: the user cache, see convbench.choose)")
    _isolation(sp, default_on=True)
    sp.set_defaults(func=cmd_tune)

    sp = sub.add_parser("report", help="plots and tables from run files (results/report/)")
    sp.add_argument("--run", action="append", help="run file(s) (default: the newest images run)")
    sp.add_argument("--output", default=None, help="folder (default results/report)")
    sp.add_argument("--training", action="store_true", help="train the seed CNN through "
                    "convbench.nn and torch.nn instead: loss curves and time per step")
    sp.add_argument("--threads", type=thread_count, default=None,
                    help="with --training: threads for torch (default: all cores)")
    sp.set_defaults(func=cmd_report)

    from convbench import gate

    sp = sub.add_parser("gate", help="CI regression gate: verify, time, compare with a baseline")
    gate.add_arguments(sp)
    sp.error = lambda message: sp.exit(gate.EXIT_HARNESS, f"convbench gate: error: {message}\n")
    sp.set_defaults(func=cmd_gate)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse's usage error is 2, which means "wrong result" here
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    args.argv = argv
    # OpenBLAS workers spin ~0.1-0.3 s after a call and steal a core from the next library
    # timed; the timeout is read once, when OpenBLAS loads. This process loaded its own on
    # import (there the harness's convbench.threads limits BLAS: one thread, the gate's
    # default, leaves no worker to spin), so the short timeout reaches the worker
    # processes a command spawns. Set by the program for its run only, never on import.
    saved_timeout = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:
        if args.command == "gate":
            from convbench import gate

            print(f"convbench gate: ERROR (exit {gate.EXIT_HARNESS}): stopped by Ctrl-C", file=sys.stderr)
            return gate.EXIT_HARNESS
        report = getattr(exc, "report", None)
        if report is not None and report.rows:
            from convbench.table import console

            print_verification(report, console())
        message = str(exc) if isinstance(exc, Interrupted) else "stopped by Ctrl-C"
        print(f"convbench {args.command}: {message} (exit {EXIT_INTERRUPTED})", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError) as exc:
        print(f"convbench {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if saved_timeout is None:
            os.environ.pop("OPENBLAS_THREAD_TIMEOUT", None)


if __name__ == "__main__":
    sys.exit(main())
