"""Tests of the harness itself: spec ids, cases, tolerances, verification, timing, machine,
results files, bench rows, registry, and the default choice of the public API.

Golden values come from the seed workloads' kernels (CONTRIBUTING.md, "Workloads"), from
scikit-image's photos and from scipy.ndimage, never from the code under test.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import time
import types

import numpy as np
import pytest

import convbench
from convbench import bench, machine, registry, results, thread_settings, timing, tolerance, verification
from convbench.cases import Case, all_suites, estimate_bytes, make_case, suite
from convbench.cases.correlate import image_case
from convbench.choose import choose
from convbench.data import NAMED_KERNELS, make_array
from convbench.ops import SeveralOutputs
from convbench.spec import Spec
from refimpl.pad import LIBRARY_NAMES

U32 = 2.0 ** -24
U64 = 2.0 ** -53
BORDERS = ("constant", "edge", "symmetric", "reflect", "wrap")


def all_cases() -> list[Case]:
    return [c for name in all_suites() for c in suite(name)]


def small_2d(border="symmetric", dtype="float64", shape=(12, 10), kernel=(3, 3), **kw) -> Case:
    return image_case("correlate", shape, kernel, dtype, border=border, **kw)


def scipy_correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, **_):
    """A correct user function for 'same' cases, by scipy.ndimage (independent of the oracle)."""
    import scipy.ndimage as ndi

    assert padding == "same"
    y = ndi.correlate(np.asarray(x, np.float64), np.asarray(w, np.float64),
                      mode=LIBRARY_NAMES["scipy.ndimage"][border], cval=cval, origin=origin)
    return y.astype(np.result_type(x.dtype, w.dtype))


# ---------------------------------------------------------------------------------- spec


class TestSpec:
    @pytest.mark.parametrize("name", [n for n in all_suites() if n != "images"])
    def test_ids_unique_within_a_suite(self, name):
        ids = [c.id for c in suite(name)]
        assert ids, f"suite {name} is empty"
        dups = sorted({i for i in ids if ids.count(i) > 1})
        assert not dups, f"duplicate case ids in suite {name}: {dups}"

    def test_ids_unique_within_images_suite(self):
        ids = [c.id for c in suite("images")]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        assert not dups, f"duplicate case ids in suite images: {dups}"

    def test_same_id_across_suites_means_same_case(self):
        seen: dict[str, Case] = {}
        for case in all_cases():
            other = seen.setdefault(case.id, case)
            assert (other.spec, other.data, other.strided) == (case.spec, case.data, case.strided), \
                f"id {case.id} names two different cases"

    def test_ids_stable(self):
        for case in suite("small", "correlate")[:40]:
            again = Spec.make(case.spec.op, case.spec.shapes, case.spec.dtypes, **case.spec.kwargs)
            assert again == case.spec
            assert again.id == case.spec.id
            assert Case(again, case.data, case.strided, case.name).id == case.id

    def test_ids_readable(self):
        short = {"float16": "f16", "float32": "f32", "float64": "f64", "uint8": "u8",
                 "uint16": "u16", "uint32": "u32", "int16": "i16", "int32": "i32", "int64": "i64"}
        for case in suite("small"):
            spec = case.spec
            cid = spec.id
            assert cid.startswith(spec.op + "-"), cid
            for shape in spec.shapes:
                assert "x".join(map(str, shape)) in cid, cid
            border = spec.kwargs.get("border")
            if spec.op in ("correlate", "convolve") or border not in (None, "constant"):
                assert border in cid, cid
            assert short[spec.dtypes[0]] in cid, cid
            assert " " not in cid and "'" not in cid and "\"" not in cid, cid

    def test_id_example(self):
        spec = Spec.make("correlate", [(8, 7), (3, 3)], ["float32", "float32"], border="wrap")
        assert spec.id == "correlate-x8x7-w3x3-wrap-f32"

    @pytest.mark.parametrize("alias,canonical", [("nearest", "edge"), ("mirror", "reflect"),
                                                 ("circular", "wrap"), ("replicate", "edge"),
                                                 ("grid-mirror", "symmetric")])
    def test_aliases_normalised(self, alias, canonical):
        a = Spec.make("correlate", [(8, 8), (3, 3)], ["float32"] * 2, border=alias)
        b = Spec.make("correlate", [(8, 8), (3, 3)], ["float32"] * 2, border=canonical)
        assert a == b and a.id == b.id and hash(a) == hash(b)
        assert a.kwargs["border"] == canonical

    def test_equivalent_arguments_normalised(self):
        a = Spec.make("correlate", [(8, 8), (3, 3)], [np.float32, np.dtype("float32")],
                      origin=(1, 1), cval=0)
        b = Spec.make("correlate", [(8, 8), (3, 3)], ["float32", "float32"], origin=1, cval=0.0)
        assert a == b and a.id == b.id

    def test_output_shape_agrees_with_oracle(self):
        checked = 0
        for case in suite("small"):
            spec = case.spec
            if spec.operation.work(spec) > 20_000:
                continue
            with np.errstate(invalid="ignore"):  # inf + -inf in the non-finite cases
                out = spec.operation.oracle(spec, case.arrays())
            if isinstance(spec.operation, SeveralOutputs):    # batch_norm: (y, mean, var)
                assert [o.shape for o in out] == list(spec.operation.output_shapes(spec)), case.id
                out = out[0]
            assert out.shape == spec.output_shape(), case.id
            checked += 1
        assert checked > 100

    def test_output_shape_by_hand(self):
        # scipy.signal meanings for valid/full; 'same' keeps the image shape
        mk = lambda p: Spec.make("correlate", [(11, 9), (4, 3)], ["float64"] * 2, padding=p)
        assert mk("same").output_shape() == (11, 9)
        assert mk("valid").output_shape() == (8, 7)
        assert mk("full").output_shape() == (14, 11)

    def test_frozen_and_hashable(self):
        spec = Spec.make("correlate", [(8, 8), (3, 3)], ["float32"] * 2)
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.op = "convolve"
        assert {spec: 1}[Spec.make("correlate", [(8, 8), (3, 3)], ["float32"] * 2)] == 1
        case = make_case("correlate", [(8, 8), (3, 3)], "float32")
        with pytest.raises(dataclasses.FrozenInstanceError):
            case.strided = True
        hash(case)

    def test_make_rejects_bad_arguments(self):
        with pytest.raises(ValueError, match="border"):
            Spec.make("correlate", [(8, 8), (3, 3)], ["float32"] * 2, border="bogus")
        with pytest.raises(TypeError, match="unexpected keyword"):
            Spec.make("correlate", [(8, 8), (3, 3)], ["float32"] * 2, mode="reflect")
        with pytest.raises(ValueError, match="unknown op"):
            Spec.make("corelate", [(8, 8), (3, 3)], ["float32"] * 2)


# --------------------------------------------------------------------------------- cases


class TestCases:
    def test_arrays_deterministic(self):
        for case in suite("small", "correlate")[::7]:
            first = case.arrays()
            again = Case(case.spec, case.data, case.strided, case.name).arrays()
            for a, b in zip(first, again):
                assert a.dtype == b.dtype and a.shape == b.shape
                assert a.tobytes() == b.tobytes(), case.id

    def test_different_cases_different_data(self):
        a = make_case("correlate", [(16, 16), (3, 3)], "float32", border="edge").arrays()[0]
        b = make_case("correlate", [(16, 16), (3, 3)], "float32", border="wrap").arrays()[0]
        assert not np.array_equal(a, b)

    def test_arrays_match_spec(self):
        # every case small enough to build quickly: shapes and dtypes are the spec's
        for case in all_cases():
            if estimate_bytes(case) > 20e6:
                continue
            for a, shape, dtype in zip(case.arrays(), case.spec.shapes, case.spec.dtypes):
                assert a.shape == shape, case.id
                # bfloat16 (numpy has none): float32 arrays holding bfloat16 values
                assert a.dtype == np.dtype("float32" if dtype == "bfloat16" else dtype), case.id

    def test_strided_cases_not_contiguous(self):
        strided = [c for c in suite("small") if c.strided]
        assert strided
        for case in strided:
            for a, shape in zip(case.arrays(), case.spec.shapes):
                assert a.shape == shape
                assert not a.flags.c_contiguous and not a.flags.f_contiguous, case.id

    def test_photo_cases_contain_the_photo(self):
        skdata = pytest.importorskip("skimage.data")
        cases = {c.id: c for c in all_cases()}
        camera = [c for c in cases.values() if c.name == "camera-sharpen"][0]
        x, w = camera.arrays()
        np.testing.assert_array_equal(x, skdata.camera().astype(np.float32))
        np.testing.assert_array_equal(w, [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
        coins = [c for c in cases.values() if c.name == "photo-coins"][0]
        np.testing.assert_array_equal(coins.arrays()[0], skdata.coins())
        rgb = [c for c in cases.values() if c.name == "seed-rgb-emboss"][0]
        x, w = rgb.arrays()
        np.testing.assert_array_equal(x, skdata.astronaut().astype(np.float32))
        np.testing.assert_array_equal(w[..., 0], [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        crop = [c for c in suite("small", "correlate") if "camera" in c.data][0]
        h, wd = crop.spec.shapes[0]
        np.testing.assert_array_equal(crop.arrays()[0], skdata.camera()[:h, :wd])

    def test_named_kernels_match_workloads_md(self):
        # values as the seed questions gave them (CONTRIBUTING.md, "Workloads")
        assert NAMED_KERNELS["emboss"] == [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]
        assert NAMED_KERNELS["sharpen"] == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
        assert NAMED_KERNELS["edge"] == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
        assert NAMED_KERNELS["identity"] == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
        rng = np.random.default_rng(0)
        k = make_array("emboss", (3, 3, 3), "float32", rng)
        for c in range(3):
            np.testing.assert_array_equal(k[..., c], [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])

    def test_nonfinite_recipe_plants_nan_and_infs(self):
        a = make_array("nonfinite", (9, 9), "float64", np.random.default_rng(1))
        assert np.isnan(a).sum() == 1 and (a == np.inf).sum() == 1 and (a == -np.inf).sum() == 1

    @pytest.mark.parametrize("recipe,shape", [("camera", (8, 8, 3)), ("astronaut", (8, 8))])
    def test_photo_into_other_rank(self, recipe, shape):
        pytest.importorskip("skimage.data")
        assert make_array(recipe, shape, "float32", np.random.default_rng(0)).shape == shape

    def test_unknown_suite_names_accepted(self):
        with pytest.raises(ValueError, match="accepted: .*small"):
            suite("nope")


# ----------------------------------------------------------------------------- tolerance


class TestTolerance:
    def test_gamma(self):
        assert tolerance.gamma(10, U32) == pytest.approx(10 * U32 / (1 - 10 * U32), rel=1e-15)
        assert tolerance.gamma(1, 0.5) == pytest.approx(1.0)
        assert tolerance.gamma(4, 0.25) == math.inf
        assert tolerance.gamma(0, U32) == 0.0

    def test_direct_bound_scales_with_k_and_u(self):
        ref = np.array([1.0, -2.0])
        absref = np.array([3.0, 5.0])
        b9 = tolerance.bound("direct", result_dtype="float32", ref=ref, absref=absref, terms=9)
        b49 = tolerance.bound("direct", result_dtype="float32", ref=ref, absref=absref, terms=49)
        np.testing.assert_allclose(b9, 9 * U32 * absref, rtol=1e-5)
        np.testing.assert_allclose(b49 / b9, 49 / 9, rtol=1e-5)
        b64 = tolerance.bound("direct", result_dtype="float64", ref=ref, absref=absref, terms=9)
        np.testing.assert_allclose(b64, 9 * U64 * absref, rtol=1e-10)
        # float16 results: float32 accumulation plus one final rounding of |y_ref| (relative
        # 2**-11, or half the smallest subnormal 2**-24 where the result is that small)
        b16 = tolerance.bound("direct", result_dtype="float16", ref=ref, absref=absref, terms=9)
        np.testing.assert_allclose(b16, 9 * U32 * absref + 2.0 ** -11 * np.abs(ref) + 2.0 ** -25,
                                   rtol=1e-5)
        assert np.all(tolerance.bound("exact", result_dtype="float32", ref=ref, absref=absref,
                                      terms=9) == 0)
        with pytest.raises(ValueError, match="accepted"):
            tolerance.bound("loose", result_dtype="float32", ref=ref, absref=absref, terms=9)

    def _problem(self, dtype="float32"):
        import scipy.ndimage as ndi

        rng = np.random.default_rng(5)
        x = rng.standard_normal((40, 40))
        w = rng.standard_normal((5, 5))
        ref = ndi.correlate(x, w, mode="reflect")
        absref = ndi.correlate(np.abs(x), np.abs(w), mode="reflect")
        tol = tolerance.bound("direct", result_dtype=dtype, ref=ref, absref=absref, terms=25)
        return ref, tol

    def test_float32_rounded_from_float64_passes(self):
        ref, tol = self._problem()
        verdict = tolerance.compare(ref.astype(np.float32), ref, tol)
        assert verdict["passed"], verdict
        assert verdict["worst"] <= 1.0

    def test_float32_computed_in_float32_passes(self):
        import scipy.ndimage as ndi

        rng = np.random.default_rng(5)
        x = rng.standard_normal((40, 40)).astype(np.float32)
        w = rng.standard_normal((5, 5)).astype(np.float32)
        ref = ndi.correlate(x.astype(np.float64), w.astype(np.float64), mode="reflect")
        absref = ndi.correlate(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64),
                               mode="reflect")
        tol = tolerance.bound("direct", result_dtype="float32", ref=ref, absref=absref, terms=25)
        out = ndi.correlate(x, w, mode="reflect", output=np.float32)
        assert tolerance.compare(out, ref, tol)["passed"]

    def test_twice_the_bound_fails(self):
        ref, tol = self._problem(dtype="float32")   # float64 arithmetic below is exact enough
        out = ref.copy()
        out[7, 3] += 2 * tol[7, 3]
        verdict = tolerance.compare(out, ref, tol)
        assert not verdict["passed"]
        assert verdict["worst"] == pytest.approx(2.0, rel=1e-6)
        assert "(7, 3)" in verdict["reason"]
        out[7, 3] = ref[7, 3] + 0.5 * tol[7, 3]
        assert tolerance.compare(out, ref, tol)["passed"]

    def test_nan_placement(self):
        ref = np.array([1.0, np.nan, 3.0])
        tol = np.full(3, 1e-6)
        assert tolerance.compare(np.array([1.0, np.nan, 3.0]), ref, tol)["passed"]
        moved = tolerance.compare(np.array([np.nan, 2.0, 3.0]), ref, tol)
        assert not moved["passed"] and "NaN" in moved["reason"]
        missing = tolerance.compare(np.array([1.0, 2.0, 3.0]), ref, tol)
        assert not missing["passed"]

    def test_inf_sign(self):
        ref = np.array([1.0, np.inf, -np.inf])
        tol = np.full(3, 1e-6)
        assert tolerance.compare(ref.copy(), ref, tol)["passed"]
        flipped_sign = tolerance.compare(np.array([1.0, -np.inf, -np.inf]), ref, tol)
        assert not flipped_sign["passed"] and "Inf" in flipped_sign["reason"]
        finite = tolerance.compare(np.array([1.0, 1e308, -np.inf]), ref, tol)
        assert not finite["passed"]

    def test_integer_interval_half_may_round_either_way(self):
        ref = np.array([2.5, 10.0, 300.0, -4.0])
        tol = np.full(4, 1e-6)
        lo, hi = tolerance.integer_interval(ref, tol, "uint8")
        np.testing.assert_array_equal(lo, [2, 10, 255, 0])
        np.testing.assert_array_equal(hi, [3, 10, 255, 0])
        for value in (2, 3):
            out = np.array([value, 10, 255, 0], np.uint8)
            assert tolerance.compare(out, ref, tol, out_dtype="uint8")["passed"], value
        for value in (4, 0, 1):  # off by 2 or more from the .5 sum
            out = np.array([value, 10, 255, 0], np.uint8)
            assert not tolerance.compare(out, ref, tol, out_dtype="uint8")["passed"], value
        wrapped = np.array([2, 10, 44, 0], np.uint8)  # 300 mod 256: scipy's wrap
        assert not tolerance.compare(wrapped, ref, tol, out_dtype="uint8")["passed"]

    def test_integer_exact_sum_has_one_value(self):
        ref = np.array([7.0])
        tol = np.array([1e-9])
        assert tolerance.compare(np.array([7], np.int16), ref, tol, "int16")["passed"]
        assert not tolerance.compare(np.array([8], np.int16), ref, tol, "int16")["passed"]

    def test_wrong_dtype_fails(self):
        ref = np.array([2.0, 3.0])
        verdict = tolerance.compare(ref.astype(np.float32), ref, np.full(2, 1.0), out_dtype="uint8")
        assert not verdict["passed"] and "dtype" in verdict["reason"]

    def test_wrong_shape_fails(self):
        ref = np.zeros((4, 5))
        verdict = tolerance.compare(np.zeros((5, 4)), ref, np.ones((4, 5)))
        assert not verdict["passed"] and "shape" in verdict["reason"]
        assert not tolerance.compare(np.zeros(20), ref, np.ones((4, 5)))["passed"]


# -------------------------------------------------------------------------- verification


SAME_CASES = [small_2d(border=b, cval=1.5 if b == "constant" else 0.0) for b in BORDERS] + \
    [small_2d("wrap", kernel=(4, 5), origin=(1, -1)), small_2d("edge", "float32", kernel=(2, 2))]


class TestVerification:
    def test_correct_function_passes(self):
        report = convbench.verify("correlate", scipy_correlate, cases=SAME_CASES)
        assert bool(report) and report.passed
        assert report.counts()["pass"] == len(SAME_CASES)
        assert report.summary().startswith("PASSED")
        text = str(report)
        assert "PASSED" in text and "scipy_correlate" in text
        frame = report.to_frame()
        assert len(frame) == len(SAME_CASES)
        assert {"case", "candidate", "status", "worst", "checked"} <= set(frame.columns)
        assert (frame["status"] == "pass").all()
        assert "PASSED" in repr(report)

    def test_convolve_of_user_function(self):
        import scipy.ndimage as ndi

        def scipy_convolve(x, w, *, border="constant", cval=0.0, padding="same", origin=0, **_):
            return ndi.convolve(x, w, mode=LIBRARY_NAMES["scipy.ndimage"][border], cval=cval,
                                origin=origin)

        cases = [image_case("convolve", (9, 8), (4, 3), "float64", border=b) for b in BORDERS]
        assert convbench.verify("convolve", scipy_convolve, cases=cases)

    def test_wrong_function_fails(self):
        def not_flipped(x, w, **kw):  # correlate offered as convolve
            return scipy_correlate(x, w, **kw)

        cases = [image_case("convolve", (9, 8), (3, 3), "float64", border=b) for b in BORDERS]
        report = convbench.verify("convolve", not_flipped, cases=cases)
        assert not report
        assert report.summary().startswith("FAILED")
        assert report.counts()["FAIL"] == len(cases)

    def test_wrong_result_dtype_fails(self):
        def float64_out(x, w, **kw):
            return scipy_correlate(x, w, **kw).astype(np.float64)

        report = convbench.verify("correlate", float64_out, cases=[small_2d(dtype="float32")])
        assert report.rows[0].status == "FAIL" and "dtype float64" in report.rows[0].detail

    def test_raising_function_errors_every_case(self):
        calls = []

        def broken(x, w, **kw):
            calls.append(1)
            raise RuntimeError("boom")

        report = convbench.verify("correlate", broken, cases=SAME_CASES)
        assert len(calls) == len(SAME_CASES)          # the run went on
        assert [r.status for r in report.rows] == ["error"] * len(SAME_CASES)
        assert all("RuntimeError: boom" in r.detail for r in report.rows)
        assert not report

    def test_hanging_function_is_stopped(self, monkeypatch):
        monkeypatch.setattr(verification, "CALL_TIMEOUT_S", 0.3)

        def hangs(x, w, **kw):
            while True:
                time.sleep(0.01)

        started = time.perf_counter()
        report = convbench.verify("correlate", hangs, cases=SAME_CASES[:2])
        assert time.perf_counter() - started < 5
        assert [r.status for r in report.rows] == ["error", "error"]
        assert all("TimeoutError" in r.detail for r in report.rows)
        # the alarm is disarmed afterwards
        time.sleep(0.4)

    def test_nothing_checked_is_not_a_pass(self):
        assert not verification.Report([])

    def test_tuple_result_is_an_error(self):
        report = convbench.verify("correlate", lambda x, w, **kw: (x, w), cases=SAME_CASES[:1])
        assert report.rows[0].status == "error" and "tuple" in report.rows[0].detail

    def _big_case(self, shape=(300, 300), kernel=(7, 7), **kw):
        case = image_case("correlate", shape, kernel, "float64", border="symmetric", **kw)
        op = case.spec.operation
        assert op.work(case.spec) > verification.WHOLE_LIMIT
        return case

    def test_sample_points_cover_every_border_zone(self):
        case = self._big_case()
        ys, xs = verification.sample_points(case)
        assert len(ys) == len(xs) and len(ys) < 300 * 300 / 100
        assert {0, 299} <= set(ys.tolist()) and {0, 299} <= set(xs.tolist())

        def zone(i):
            return 0 if i < 3 else (2 if i >= 297 else 1)

        combos = {(zone(y), zone(x)) for y, x in zip(ys.tolist(), xs.tolist())}
        assert combos == {(a, b) for a in range(3) for b in range(3)}
        again = verification.sample_points(case)
        assert all(np.array_equal(a, b) for a, b in zip(again, (ys, xs)))

    def test_sample_points_3d(self):
        case = self._big_case(shape=(40, 50, 60), kernel=(3, 5, 7))
        points = verification.sample_points(case)
        pads = (1, 2, 3)
        shape = (40, 50, 60)

        def zone(i, p, n):
            return 0 if i < p else (2 if i >= n - p else 1)

        combos = {tuple(zone(i, p, n) for i, p, n in zip(pt, pads, shape))
                  for pt in zip(*(a.tolist() for a in points))}
        assert len(combos) == 27

    def test_sample_points_valid_padding_has_no_border(self):
        case = image_case("correlate", (300, 300), (7, 7), "float64", padding="valid")
        ys, xs = verification.sample_points(case)
        assert ys.max() < 294 and xs.max() < 294 and 0 in ys and 293 in ys

    @pytest.mark.parametrize("where", ["corner", "last_row", "right_border", "far_corner"])
    def test_sampled_check_catches_a_local_bug(self, where):
        case = self._big_case()

        def buggy(x, w, **kw):
            y = scipy_correlate(x, w, **kw)
            region = {"corner": (0, 0), "last_row": (-1, slice(None)),
                      "right_border": (slice(None), slice(-3, None)), "far_corner": (-1, -1)}
            y[region[where]] += 1.0
            return y

        good = verification.verify_case(registry.user_candidate("correlate", scipy_correlate), case)
        assert good.status == "pass" and good.checked.endswith("points"), good
        row = verification.verify_case(registry.user_candidate("correlate", buggy), case)
        assert row.status == "FAIL", row
        assert row.checked.endswith("points")

    def test_every_registered_correlate_candidate_passes_a_few_cases(self):
        cases = SAME_CASES[:5]
        cands = [c for c in registry.candidates("correlate") if not c.unavailable()]
        report = verification.verify_candidates(cands, cases)
        assert not report.failures, str(report)


# -------------------------------------------------------------------------------- timing


FAST = timing.Protocol(warmup_s=0.0, sample_s=0.0005)


class TestTiming:
    def test_measure_samples_and_statistics(self):
        out = timing.measure({"a": lambda: sum(range(200)), "b": lambda: sorted(range(300))}, FAST)
        assert set(out) == {"a", "b"}
        for t in out.values():
            assert len(t.samples) >= timing.MIN_SAMPLES
            s = np.array(t.samples)
            assert t.median == pytest.approx(float(np.median(s)))
            assert t.min == min(t.samples) and t.min <= t.median
            q25, q75 = np.percentile(s, [25, 75])
            assert t.iqr == pytest.approx(q75 - q25) and t.iqr >= 0
            assert t.loops >= 1
            assert set(t.as_dict()) >= {"median", "iqr", "min", "samples", "loops"}

    def test_interleaved(self):
        order = []

        def a():
            order.append("a")
            time.sleep(0.001)

        def b():
            order.append("b")
            time.sleep(0.001)

        out = timing.measure({"a": a, "b": b}, FAST)
        assert out["a"].loops == out["b"].loops == 1
        tail = order[-2 * timing.MIN_SAMPLES:]
        assert tail == ["a", "b"] * timing.MIN_SAMPLES

    def test_protocol_refuses_few_samples(self):
        with pytest.raises(ValueError, match="samples"):
            timing.Protocol(samples=6)
        assert timing.QUICK.samples >= 7 and timing.FULL.samples >= 7

    def test_sleep_measures_about_right(self):
        t = timing.measure({"sleep": lambda: time.sleep(0.002)})["sleep"]
        assert 1.5e-3 < t.median < 20e-3, t

    def test_calibrate_keeps_under_max_s(self):
        loops = timing.calibrate(lambda: time.sleep(0.002),
                                 timing.Protocol(warmup_s=0.0, sample_s=1.0, max_s=0.1))
        assert loops * 0.002 * 7 <= 0.2


# ------------------------------------------------------------------------------- machine


class TestMachine:
    def test_threads_set_and_restored(self):
        torch = pytest.importorskip("torch")
        cv2 = pytest.importorskip("cv2")
        import candidates.runtime as runtime

        torch.set_num_threads(2)
        cv2.setNumThreads(2)
        runtime.set_threads(None)
        with thread_settings.threads(1) as n:
            assert n == 1
            assert torch.get_num_threads() == 1
            assert cv2.getNumThreads() == 1
            assert runtime.threads() == 1
        assert torch.get_num_threads() == 2
        assert cv2.getNumThreads() == 2
        assert runtime._threads is None

    def test_kernel_cache_keys_on_values_and_stays_bounded(self):
        from candidates.runtime import KernelCache

        made = []

        def make(w):
            made.append(1)
            return w.sum()

        cache = KernelCache(2, max_bytes=4096, nbytes=lambda v: 0)
        w = np.arange(12.0).reshape(3, 4)
        assert cache.get(w, "k", lambda: make(w)) == 66 and len(made) == 1
        assert cache.get(w.copy(), "k", lambda: make(w)) == 66 and len(made) == 1  # equal copy
        assert cache.get(w, "other", lambda: make(w)) == 66 and len(made) == 2     # extra key
        cache.get(np.zeros(1024), "k", lambda: 0.0)                        # 8 KiB: not kept
        assert cache.info()["entries"] == 2 and cache.info()["bytes"] <= 4096
        unbounded = KernelCache(4)
        big = np.zeros(8192)       # every other value is sampled: change an unsampled one
        unbounded.get(big, "k", lambda: make(big))
        big[1] = 5.0               # same array, changed in place, same sample
        assert unbounded.get(big, "k", lambda: make(big)) == 5.0          # never stale
        assert unbounded.info()["misses"] == 2

    def test_metadata(self):
        meta = machine.metadata(3)
        assert meta["cpu"] and isinstance(meta["cpu"], str)
        assert meta["cores"] == os.cpu_count()
        assert meta["threads"] == 3
        assert meta["versions"]["numpy"] == np.__version__
        assert set(meta) >= {"cpu", "cores", "versions", "threads", "python", "gpu", "cpu_flags"}
        json.dumps(meta)

    def test_available_memory(self):
        have = machine.available_memory()
        assert have is None or have > 2 ** 20


# ------------------------------------------------------------------------------- results


ROWS = [{"op": "correlate", "case": "c1", "candidate": "a", "status": "pass", "median": 1e-3,
         "ratio": 1.0, "samples": [1e-3] * 7},
        {"op": "correlate", "case": "c1", "candidate": "b", "status": "FAIL", "median": math.nan,
         "ratio": math.nan, "samples": []}]


def _save(tmp_path, rows=ROWS):
    return results.save_run(rows, suite="unit", machine={"hostname": "h"}, protocol={"samples": 7},
                            command="convbench test", directory=tmp_path)


class TestResults:
    def test_save_and_load(self, tmp_path):
        path = _save(tmp_path)
        assert path.parent == tmp_path and path.suffix == ".json"
        assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp files left
        doc = results.load_run(path)
        assert doc["schema"] == results.SCHEMA and doc["version"] == results.VERSION
        assert doc["suite"] == "unit" and len(doc["rows"]) == 2
        second = _save(tmp_path)
        assert second != path and second.exists()  # same second: a new name, nothing overwritten

    def test_file_is_strict_json(self, tmp_path):
        def refuse(name):
            raise ValueError(f"non-standard JSON constant {name}")

        json.loads(_save(tmp_path).read_text(), parse_constant=refuse)

    def test_failed_publish_leaves_nothing(self, tmp_path, monkeypatch):
        def fail(*a, **k):
            raise OSError(errno.ENOSPC, "disk full")

        monkeypatch.setattr(results.os, "link", fail)  # the run file's no-replace publish
        with pytest.raises(OSError, match="disk full"):
            _save(tmp_path)
        assert list(tmp_path.iterdir()) == []

    def test_failed_write_keeps_old_file(self, tmp_path, monkeypatch):
        target = tmp_path / "run.json"
        results.write_atomic(target, "old\n")

        def fail(fd):
            raise OSError("io error")

        monkeypatch.setattr(results.os, "fsync", fail)
        with pytest.raises(OSError):
            results.write_atomic(target, "new and longer\n")
        assert target.read_text() == "old\n"
        assert [p.name for p in tmp_path.iterdir()] == ["run.json"]

    def test_failed_dumps_leaves_nothing(self, tmp_path, monkeypatch):
        def fail(*a, **k):
            raise TypeError("not serialisable")

        monkeypatch.setattr(results.json, "dumps", fail)
        with pytest.raises(TypeError):
            _save(tmp_path)
        assert list(tmp_path.iterdir()) == []

    def test_unserialisable_row_is_refused(self, tmp_path):
        with pytest.raises(TypeError, match="serialisable"):
            _save(tmp_path, [{"case": object()}])
        assert list(tmp_path.iterdir()) == []

    def test_numpy_values_are_saved(self, tmp_path):
        path = _save(tmp_path, [{"case": "c", "median": np.float64(2.0), "loops": np.int64(3),
                                 "shape": (1, 2)}])
        row = results.load_run(path)["rows"][0]
        assert row == {"case": "c", "median": 2.0, "loops": 3, "shape": [1, 2]}

    def test_load_refuses_wrong_schema_and_version(self, tmp_path):
        path = _save(tmp_path)
        doc = json.loads(path.read_text())
        other = tmp_path / "other.json"
        other.write_text(json.dumps({**doc, "schema": "asv-result"}))
        with pytest.raises(ValueError, match="not a convbench run file"):
            results.load_run(other)
        newer = tmp_path / "newer.json"
        newer.write_text(json.dumps({**doc, "version": results.VERSION + 1}))
        with pytest.raises(ValueError, match=f"version {results.VERSION + 1}"):
            results.load_run(newer)
        with pytest.warns(UserWarning, match="newer.json"):  # skipped, named
            assert results.load_frame([newer]).empty

    def test_load_frame(self, tmp_path):
        a, b = _save(tmp_path), _save(tmp_path)
        frame = results.load_frame([a, b])
        assert len(frame) == 4
        assert {"median", "ratio", "status", "run", "case", "candidate", "suite"} <= set(frame.columns)
        assert set(frame["run"]) == {a.name, b.name}
        assert frame["median"].isna().sum() == 2
        assert len(results.load_frame(a)) == 2
        assert results.load_frame([]).empty


# --------------------------------------------------------------------------------- bench


def zeros_like_output(x, w, **kw):
    return np.zeros(np.shape(x))


class TestBench:
    def test_wrong_candidate_not_timed(self):
        case = small_2d(shape=(64, 64))
        good = registry.get("correlate", "shift_add_numpy")
        wrong = registry.user_candidate("correlate", zeros_like_output, name="zeros")
        rows = {r["candidate"]: r for r in bench.run_case(case, [good, wrong], FAST)}
        assert rows["zeros"]["status"] == "FAIL"
        assert math.isnan(rows["zeros"]["median"]) and math.isnan(rows["zeros"]["ratio"])
        assert rows["zeros"]["samples"] == [] and rows["zeros"]["loops"] == 0
        assert rows["shift_add_numpy"]["status"] == "pass"
        assert rows["shift_add_numpy"]["ratio"] == 1.0
        assert len(rows["shift_add_numpy"]["samples"]) >= 7

    def test_fastest_has_ratio_one(self):
        case = small_2d(shape=(64, 64))
        cands = [registry.get("correlate", n) for n in ("shift_add_numpy", "ndimage_scipy")]
        rows = bench.run_case(case, cands, FAST)
        assert all(r["status"] == "pass" for r in rows)
        ratios = sorted(r["ratio"] for r in rows)
        assert ratios[0] == 1.0 and ratios[1] >= 1.0
        fastest = min(rows, key=lambda r: r["median"])
        assert fastest["ratio"] == 1.0
        for r in rows:
            assert r["ratio"] == pytest.approx(r["median"] / fastest["median"])
            assert r["error_model"] == "direct" and r["checked"] == "all"

    def test_error_and_other_op_rows(self):
        def boom(x, w, **kw):
            raise RuntimeError("kaboom")

        case = small_2d()
        rows = bench.run_case(case, [registry.user_candidate("correlate", boom),
                                     registry.user_candidate("convolve", zeros_like_output)], FAST)
        assert len(rows) == 1  # the convolve candidate does not run a correlate case
        assert rows[0]["status"] == "error" and "kaboom" in rows[0]["detail"]
        assert math.isnan(rows[0]["median"])

    def test_unsupported_row(self):
        case = image_case("correlate", (4, 4, 4, 4), (3, 3, 3, 3), "float32")
        rows = bench.run_case(case, [registry.get("correlate", "conv_torch")], FAST)
        if rows[0]["status"] != "unavailable":
            assert rows[0]["status"] == "unsupported" and "3 spatial" in rows[0]["detail"]
            assert math.isnan(rows[0]["median"])

    def test_memory_refusal(self, monkeypatch):
        case = small_2d(shape=(1000, 1000))
        monkeypatch.setattr(bench, "available_memory", lambda: 10 * 2 ** 20)
        reason = bench.memory_refusal(case)
        assert reason and reason.startswith("refused") and "GiB" in reason
        rows = bench.run_case(case, [registry.user_candidate("correlate", zeros_like_output)], FAST)
        assert rows[0]["status"] == "refused" and math.isnan(rows[0]["median"])
        monkeypatch.setattr(bench, "available_memory", lambda: 2 ** 40)
        assert bench.memory_refusal(case) is None
        monkeypatch.setattr(bench, "available_memory", lambda: None)
        assert bench.memory_refusal(case) is None

    def test_slow_call_reported_not_sampled(self):
        def slow(x, w, **kw):
            time.sleep(0.05)
            return scipy_correlate(x, w, **kw)

        rows = bench.run_case(small_2d(), [registry.user_candidate("correlate", slow)], FAST,
                              slow_call_s=0.01)
        assert rows[0]["status"] == "slow" and math.isnan(rows[0]["median"])
        assert rows[0]["min"] >= 0.05


# ------------------------------------------------------------------------------ registry


class TestRegistry:
    def test_every_candidate_has_availability(self):
        for cand in registry.candidates():
            reason = cand.unavailable()
            assert reason is None or (isinstance(reason, str) and reason.startswith("unavailable")), \
                (cand.key, reason)

    def test_unknown_candidate(self):
        with pytest.raises(ValueError) as err:
            registry.candidates("correlate", ["nope"])
        message = str(err.value)
        assert "nope" in message and "shift_add_numpy" in message and "ndimage_scipy" in message

    def test_unknown_op(self):
        with pytest.raises(ValueError, match="accepted: .*correlate"):
            registry.candidates("corelate")

    def test_convolve_reuses_correlate(self):
        names = [c.name for c in registry.candidates("convolve")]
        assert names == [c.name for c in registry.candidates("correlate")]  # other packages' too
        assert all(c.reused_from == "correlate" for c in registry.candidates("convolve"))

    def test_unimportable_module_is_unavailable(self):
        cand = registry.Candidate("correlate", "ghost_numpy", "candidates.correlate.ghost_numpy")
        reason = cand.unavailable()
        assert reason.startswith("unavailable") and "ghost_numpy" in reason

    def _fake(self, library, device):
        module = types.ModuleType("fake_candidate")
        module.LIBRARY, module.DEVICE, module.ERROR = library, device, "direct"
        module.supports = lambda spec: None
        return registry.Candidate("correlate", "fake", "fake_candidate", _module=module)

    def test_gpu_candidate_without_gpu(self):
        torch = pytest.importorskip("torch")
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        cand = self._fake("torch", "gpu")
        assert cand.device == "gpu"
        assert cand.unavailable() == "unavailable: no GPU"
        assert registry._gpu_missing("torch", torch) == "unavailable: no GPU"
        row = verification.verify_case(cand, small_2d())
        assert row.status == "unavailable" and "no GPU" in row.detail

    def test_missing_library(self):
        cand = self._fake("no_such_library_xyz", "cpu")
        reason = cand.unavailable()
        assert reason.startswith("unavailable") and "pip install no_such_library_xyz" in reason

    def test_cpu_candidate_available(self):
        assert self._fake("numpy", "cpu").unavailable() is None


# -------------------------------------------------------------------------- api / choose


def _spec(shape, kernel, dtype="float32"):
    return Spec.make("correlate", [shape, kernel], [dtype, dtype])


def torch_module():
    return pytest.importorskip("torch")


class TestChoose:
    def test_numpy_2d_prefers_opencv(self):
        pytest.importorskip("cv2")
        assert choose(_spec((64, 64), (3, 3)), "numpy").name == "filter2d_opencv"

    def test_numpy_4d_gets_an_nd_candidate(self):
        chosen = choose(_spec((4, 5, 6, 7), (3, 3, 3, 3)), "numpy")
        assert chosen.name != "filter2d_opencv" and chosen.supports(_spec((4, 5, 6, 7), (3, 3, 3, 3))) is None

    def test_cuda_tensors_prefer_torch_cpu_tensors_get_the_numpy_choice(self):
        from convbench.choose import ranking

        assert ranking(_spec((64, 64), (3, 3)), "torch")[0] == "conv_torch"
        torch = torch_module()
        x, w = torch.randn(16, 16), torch.randn(3, 3)
        tensors = convbench.plan("correlate", x, w).choices[0].candidate.name
        assert tensors == convbench.plan("correlate", x.numpy(), w.numpy()).choices[0].candidate.name

    def test_nearest_measured_row_decides(self, monkeypatch):
        from convbench import choose as choose_module

        rows = [
            {"op": "correlate", "rank": 2, "pixels": 2**20, "taps": 9, "kernel": [3, 3],
             "separable": False, "dtype": "float32", "border": "constant",
             "ranking": ["shift_add_numpy", "ndimage_scipy"]},
            {"op": "correlate", "rank": 2, "pixels": 2**20, "taps": 961, "kernel": [31, 31],
             "separable": False, "dtype": "float32", "border": "constant",
             "ranking": ["ndimage_scipy", "shift_add_numpy"]},
        ]
        monkeypatch.setattr(choose_module, "table", lambda: rows)
        assert choose(_spec((1000, 1000), (3, 3)), "numpy").name == "shift_add_numpy"
        assert choose(_spec((1000, 1000), (29, 29)), "numpy").name == "ndimage_scipy"
        # a ranked candidate that cannot run the call is passed over
        assert choose(_spec((2, 3, 4, 5), (2, 2, 2, 2)), "numpy").name in ("shift_add_numpy", "ndimage_scipy")

    def test_api_uses_the_choice(self, monkeypatch):
        from convbench import choose as choose_module
        import candidates.correlate.shift_add_numpy as sa

        torch = pytest.importorskip("torch")
        calls = []
        original = sa.correlate

        def spy(*a, **k):
            calls.append(1)
            return original(*a, **k)

        monkeypatch.setattr(sa, "correlate", spy)
        monkeypatch.setattr(choose_module, "ranked",
                            lambda spec, library, kernel=None: (("shift_add_numpy",), "spied"))
        convbench.plans.clear_cache()
        y = convbench.correlate(torch.randn(16, 16), torch.ones(3, 3), border="edge")
        assert calls and isinstance(y, torch.Tensor) and y.shape == (16, 16)

    def test_algorithm_picks_the_named_one(self, monkeypatch):
        import candidates.correlate.shift_add_numpy as sa

        calls = []
        original = sa.correlate

        def spy(*a, **k):
            calls.append(k)
            return original(*a, **k)

        monkeypatch.setattr(sa, "correlate", spy)
        x = np.arange(30.0).reshape(5, 6)
        y = convbench.correlate(x, np.ones((3, 3)), border="nearest", algorithm="shift_add_numpy")
        assert len(calls) == 1 and calls[0]["border"] == "edge"
        assert isinstance(y, np.ndarray) and y.shape == (5, 6)

    def test_unknown_algorithm(self):
        with pytest.raises(ValueError, match="accepted"):
            convbench.correlate(np.ones((5, 5)), np.ones((3, 3)), algorithm="magic")

    def test_unsupported_algorithm_refused(self):
        pytest.importorskip("torch")
        with pytest.raises(ValueError, match="cannot run"):
            convbench.correlate(np.ones((3, 3, 3, 3)), np.ones((2, 2, 2, 2)), algorithm="conv_torch")

    @pytest.mark.parametrize("op", ["correlate", "convolve"])
    @pytest.mark.parametrize("border", ["constant", "symmetric", "reflect", "wrap"])
    def test_every_algorithm_agrees_with_scipy(self, op, border):
        import scipy.ndimage as ndi

        rng = np.random.default_rng(3)
        x = rng.standard_normal((20, 17))
        w = rng.standard_normal((4, 3))
        mode = LIBRARY_NAMES["scipy.ndimage"][border]
        expected = getattr(ndi, op)(x, w, mode=mode, cval=0.5)
        fn = getattr(convbench, op)
        ran = []
        for cand in registry.candidates(op):
            spec = Spec.make(op, [x.shape, w.shape], ["float64"] * 2, border=border, cval=0.5)
            if cand.unavailable() or cand.supports(spec):
                continue
            y = fn(x, w, border=border, cval=0.5, algorithm=cand.name)
            assert isinstance(y, np.ndarray) and y.dtype == np.float64, cand.name
            np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10, err_msg=cand.name)
            ran.append(cand.name)
        assert "shift_add_numpy" in ran and len(ran) >= 2
        np.testing.assert_allclose(fn(x, w, border=border, cval=0.5), expected, atol=1e-10)

    def test_integer_image_never_wraps(self):
        x = np.full((6, 6), 200, np.uint8)
        y = convbench.correlate(x, np.ones((3, 3), np.uint8))
        assert y.dtype == np.float32 and y[2, 2] == 1800
        y8 = convbench.correlate(x, np.ones((3, 3), np.float32), out_dtype="uint8")
        assert y8.dtype == np.uint8 and y8[2, 2] == 255

    def test_bad_input_named(self):
        with pytest.raises(ValueError, match="rank"):
            convbench.correlate(np.ones((5, 5)), np.ones(3))
        with pytest.raises(ValueError, match="border"):
            convbench.correlate(np.ones((5, 5)), np.ones((3, 3)), border="bogus")
        with pytest.raises(TypeError):
            convbench.correlate(np.ones((5, 5)), np.ones((3, 3)), mode="reflect")


# ----------------------------------------------------------------------------- tune, report


class TestTuneAndReport:
    def test_tune_writes_a_table_that_choose_reads(self, tmp_path, monkeypatch):
        from convbench import choose as choose_module
        from convbench import tune

        monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path))
        path, rows = tune.tune(suites=("quick",), ops=("correlate",), case_filter=["camera-sharpen"],
                               threads=1)
        assert path == tmp_path / "choices.json"
        doc = json.loads(path.read_text())
        assert doc["schema"] == "convbench-choices"
        [row] = [r for r in doc["rows"] if "camera-sharpen" in r["case"]]  # merged into the packaged rows
        passing = sorted((r for r in rows if r["status"] == "pass"), key=lambda r: r["median"])
        assert sorted(row["ranking"][: len(passing)]) == sorted(r["candidate"] for r in passing)
        first = next(r for r in passing if r["candidate"] == row["ranking"][0])
        assert first is passing[0] or (first["peer"] and (
            passing[0]["median"] >= 0.75 * first["median"] or passing[0]["min"] >= 0.75 * first["min"]))
        assert row["separable"] is False and row["taps"] == 9 and row["dtype"] == "float32"
        # choose now follows the measured ranking for a call like that case
        spec = Spec.make("correlate", [(500, 500), (3, 3)], ["float32"] * 2, border="symmetric")
        assert choose_module.ranking(spec, "numpy", np.ones((3, 3)) + np.eye(3))[0] == row["ranking"][0]

    def test_ranking_puts_a_peer_first_unless_ours_is_clearly_faster(self):
        from convbench.tune import ranked

        def row(name, median, peer, status="pass"):
            return {"candidate": name, "median": median, "min": median, "peer": peer,
                    "status": status}

        # ours 5% faster than the peer: a tie within the noise, the peer goes first
        assert ranked([row("ours", 0.95, False), row("peer", 1.0, True), row("other", 2.0, True)]) \
            == ["peer", "ours", "other"]
        # ours 30% faster: ours first; 20% is within the margin
        assert ranked([row("ours", 0.7, False), row("peer", 1.0, True)]) == ["ours", "peer"]
        assert ranked([row("ours", 0.8, False), row("peer", 1.0, True)]) == ["peer", "ours"]
        # ... by the median only, while the peer's fastest sample ties ours: the peer
        peer = dict(row("peer", 1.0, True), min=0.5)
        assert ranked([dict(row("ours", 0.7, False), min=0.48), peer]) == ["peer", "ours"]
        # a slower peer stays behind; 'slow' rows come last; failures are never ranked
        assert ranked([row("slowpoke", 9.0, False, "slow"), row("bad", 0.1, False, "fail"),
                       row("peer", 1.0, True), row("ours", 0.5, False)]) == ["ours", "peer", "slowpoke"]

    def test_report_writes_plot_borders_and_table(self, tmp_path):
        pytest.importorskip("matplotlib")
        pytest.importorskip("skimage.data")
        from convbench import report

        rows = []
        for k, t_direct, t_fft in ((3, 1e-3, 9e-3), (15, 2e-2, 1e-2), (63, 4e-1, 1.2e-2)):
            case = f"sweep-correlate-x1024x1024-w{k}x{k}-constant-f32"
            for name, t, peer in (("filter2d_opencv", t_direct, True), ("fft_scipy", t_fft, False)):
                rows.append({"op": "correlate", "case": case, "candidate": name, "status": "pass",
                             "detail": "", "device": "cpu", "peer": peer,
                             "default": name == "fft_scipy", "median": t, "iqr": 0.0, "min": t,
                             "loops": 1, "samples": [t] * 7, "ratio": 1.0, "worst": 0.1,
                             "checked": "all", "error_model": "direct"})
        run = results.save_run(rows, suite="images", machine={"hostname": "h"}, protocol={},
                               command="test", directory=tmp_path)
        written = report.report([run], tmp_path / "report")
        names = {p.name for p in written}
        assert {"kernel_size.png", "borders.png", "default_vs_peers.md"} <= names
        assert all(p.stat().st_size > 1000 for p in written if p.suffix == ".png")
        table = (tmp_path / "report" / "default_vs_peers.md").read_text()
        # 3x3: fft 9 ms vs peer 1 ms -> 9.00; 63x63: 12 ms vs 400 ms -> 0.03
        assert "| 9.00 |" in table and "| 0.03 |" in table


class TestMemory:
    def test_peak_extra_memory_sees_a_large_temporary(self):
        """shift_add_numpy pads the image into a float64 copy for a float64 case: its peak
        extra memory is at least that copy; the probe must see it."""
        from convbench.cases import suite
        from convbench.memory import peak_extra_bytes

        case = next(c for c in suite("quick", "correlate") if c.id.startswith("seed-imfilter-3x3"))
        got = peak_extra_bytes("correlate", "shift_add_numpy", "quick", case.id, threads=1)
        padded = 1002 * 1002 * 8
        assert got["output"] == 1000 * 1000 * 8
        assert padded * 0.9 <= got["extra"] < 20 * padded
