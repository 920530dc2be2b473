"""nvmath.fft.fuse on the CPU executor: every traced function gives the undecorated function's
result (values within floating-point tolerance, and its dtype), fused where it can be, run as
written where it cannot; scalars change without compiling; changed globals trace again."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from numpy.fft import fft as np_fft_imported

import nvmath
import nvmath.fft
from helpers import assert_close
from nvmath.fft import fuse

B, N = 6, 32
RNG_SEED = 20261205


def rng():
    return np.random.default_rng(RNG_SEED)


def c(shape, dtype=np.complex64, seed=0):
    r = np.random.default_rng(RNG_SEED + seed)
    return (r.standard_normal(shape) + 1j * r.standard_normal(shape)).astype(dtype)


def f(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(RNG_SEED + seed).uniform(0.5, 1.5, shape).astype(dtype)


# -- the traced functions ----------------------------------------------------------------------

SCALE = 0.5
GLOBAL_FILTER = c(N, seed=40)


def scale(x):
    return np.fft.fft(x, axis=-1) * 0.5


def scale_arg(x, s):
    return np.fft.fft(x) * s


def filt(x, H):
    return np.fft.fft(x, axis=-1) * H


def window(x, w):
    return np.fft.fft(x * w, axis=-1)


def convolution(x, H):
    return np.fft.ifft(np.fft.fft(x, axis=-1) * H, axis=-1)


def r2c_scale(x, s):
    return np.fft.rfft(x, axis=-1) * s


def mask_2d(x, M):
    return np.fft.fft2(x) * M


def propagate(x, w, H, s):
    X = np.fft.fft(x * w, axis=-1)
    return np.fft.ifft(X * H, axis=-1) * s


def scipy_scale(x):
    return scipy.fft.fft(x) / 32


def scipy_convolution(x, H):
    return scipy.fft.ifft(scipy.fft.fft(x, axis=-1) * H, axis=-1)


def scipy_r2c_c2r(x, H):
    return scipy.fft.irfft(scipy.fft.rfft(x) * H)


def nvmath_scale(x):
    return nvmath.fft.fft(x, axes=[-1]) * 2.0


def nvmath_convolution(x, H):
    return nvmath.fft.ifft(nvmath.fft.fft(x, axes=[-1]) * H, axes=[-1], norm="backward")


def nvmath_r2c(x, w):
    return nvmath.fft.rfft(x * w, axes=[-1]) * 0.25


def array_api(x, H):
    xp = x.__array_namespace__()
    return xp.fft.ifft(xp.fft.fft(xp.exp(x * 0.1j)) * H)


def imported_name(x):
    return np_fft_imported(x) * 3


def c2r_prolog(X, H):
    return np.fft.irfft(X * H, axis=-1)


def fftn_scale(x):
    return np.fft.fftn(x) * 0.5


def ifft2_ortho(x, w):
    return np.fft.ifft2(x * w, norm="ortho")


def first_axis(x, col):
    return np.fft.fft(x, axis=0) * col


def conj_phase(x, s):
    return np.conj(np.fft.fft(x)) * np.exp(1j * s)


def reflected(x):
    return 1.0 - 2.0 * np.fft.fft(x)


def affine(x, a, b, d):
    return (np.fft.fft(x) * a + b) / d


def ifft_forward_norm(x):
    return np.fft.ifft(x * 2, norm="forward")


def uses_global(x):
    return np.fft.fft(x) * SCALE


def uses_global_array(x):
    return np.fft.fft(x) * GLOBAL_FILTER


def rfft2_mask(x, M):
    return np.fft.rfft2(x) * M


def square_epilog(x):
    return np.square(np.fft.fft(x)) - np.fft.fft(x)


def negative(x, w):
    return -np.fft.fft(x * w)


def power_int(x):
    return np.fft.fft(x) ** 2


def boolean_mask(x):
    return np.fft.fft(x * (x.real > 0))


def exp_prolog(x):
    return np.fft.fft(np.exp(x * 0.01j))


def float32_param(x, s):
    return np.fft.fft(x) * s


def make_scaler(k):
    def scaled(x):
        return np.fft.fft(x) * k
    return scaled


# partly fusable
def two_filters(x, H, G):
    return np.fft.fft(x) * H * G


def power_spectrum(x, w):
    return np.abs(np.fft.fft(x * w)) ** 2


def used_twice(x, H, G):
    X = np.fft.fft(x)
    return X * H, X * G


def numpy_float64_scalar(x):
    return np.fft.fft(x) * np.float64(2.0)


def float64_filter(x, H64):
    return np.fft.fft(x) * H64


def padded_second(x, w):
    y = np.fft.ifft(np.fft.fft(x * w))
    return np.fft.fft(y, n=2 * N)


def maximum_tail(x, H):
    y = np.fft.ifft(np.fft.fft(x) * H)
    return np.maximum(y.real, 0)


def real_c2c(x, w):
    return np.fft.fft(x * w)


# not fusable: run as written
def reduction(x):
    return np.fft.fft(x) / x.sum()


def reshaped(x):
    return np.fft.fft(x.reshape(-1))


def fancy_index(x, idx):
    return np.fft.fft(x)[:, idx]


def branch(x, s):
    if s > 0:
        return np.fft.fft(x) * s
    return np.fft.ifft(x)


def branch_on_data(x):
    if x.real.sum() > 0:
        return np.fft.fft(x)
    return x


def shifted(x):
    return np.fft.fftshift(np.fft.fft(x))


def astype(x):
    return np.fft.fft(x.astype(np.complex128))


def energy(x):
    return np.sum(np.abs(np.fft.fft(x)) ** 2)


def caught(x):
    try:
        total = x.sum()
    except Exception:
        total = 1.0
    return np.fft.fft(x) / total


def no_fft(x):
    return x * 2


def converted(x):
    return np.fft.fft(np.asarray(x) * 2)


def in_place(x):
    x *= 2
    return np.fft.fft(x)


def nvmath_default_axes(x):
    return nvmath.fft.fft(x) * 2


def fftn_4d(x):
    return np.fft.fftn(x) * 2


def real_input_c2c(x):
    return np.fft.fft(x) * 0.5


def returns_dict(x):
    return {"spectrum": np.fft.fft(x)}


ARGS = {
    "x": lambda: (c((B, N)),),
    "xs": lambda: (c((B, N)), 0.75),
    "xH": lambda: (c((B, N)), c(N, seed=1)),
    "xw": lambda: (c((B, N)), f(N, seed=2)),
}

FUSED = [
    (scale, lambda: (c((B, N)),)),
    (scale_arg, lambda: (c((B, N)), 0.75)),
    (filt, lambda: (c((B, N)), c(N, seed=1))),
    (window, lambda: (c((B, N)), f(N, seed=2))),
    (convolution, lambda: (c((B, N)), c(N, seed=1))),
    (r2c_scale, lambda: (f((B, N)) - 1.0, 1.5)),
    (mask_2d, lambda: (c((3, 8, N)), f((8, N), seed=3))),
    (propagate, lambda: (c((B, N)), f(N, seed=2), c(N, seed=1), 0.5)),
    (scipy_scale, lambda: (c((B, N)),)),
    (scipy_convolution, lambda: (c((B, N)), c(N, seed=1))),
    (scipy_r2c_c2r, lambda: (f((B, N)), c(N // 2 + 1, seed=4))),
    (nvmath_scale, lambda: (c((B, N)),)),
    (nvmath_convolution, lambda: (c((B, N)), c(N, seed=1))),
    (nvmath_r2c, lambda: (f((B, N)), f(N, seed=2))),
    (array_api, lambda: (c((B, N)), c(N, seed=1))),
    (imported_name, lambda: (c((B, N)),)),
    (c2r_prolog, lambda: (c((B, N // 2 + 1)), f(N // 2 + 1, seed=5))),
    (fftn_scale, lambda: (c((4, 8, 16)),)),
    (ifft2_ortho, lambda: (c((3, 8, N)), f((8, N), seed=3))),
    (first_axis, lambda: (c((B, N)), f((B, 1), seed=6))),
    (conj_phase, lambda: (c((B, N)), 0.3)),
    (reflected, lambda: (c((B, N)),)),
    (affine, lambda: (c((B, N)), 2.0, 1.0 + 1j, 4.0)),
    (ifft_forward_norm, lambda: (c((B, N)),)),
    (uses_global, lambda: (c((B, N)),)),
    (uses_global_array, lambda: (c((B, N)),)),
    (rfft2_mask, lambda: (f((3, 8, N)), f((8, N // 2 + 1), seed=7))),
    (negative, lambda: (c((B, N)), f(N, seed=2))),
    (power_int, lambda: (c((B, N)),)),
    (boolean_mask, lambda: (c((B, N)),)),
    (exp_prolog, lambda: (c((B, N)),)),
    (float32_param, lambda: (c((B, N)), np.float32(1.25))),
    (make_scaler(3.0), lambda: (c((B, N)),)),
    (propagate, lambda: (c((B, N), np.complex128), f(N, np.float64, seed=2), c(N, np.complex128, seed=1), 0.5)),
    (scale, lambda: (c((B, N), np.complex128),)),
    (nvmath_default_axes, lambda: (c((2, 3, 4, 8)),)),
    (real_input_c2c, lambda: (f((B, N), np.float64),)),
    (real_input_c2c, lambda: (f((B, N)),)),
]

PARTLY = [
    (two_filters, lambda: (c((B, N)), c(N, seed=1), c(N, seed=8))),
    (power_spectrum, lambda: (c((B, N)), f(N, seed=2))),
    (used_twice, lambda: (c((B, N)), c(N, seed=1), c(N, seed=8))),
    (numpy_float64_scalar, lambda: (c((B, N)),)),
    (float64_filter, lambda: (c((B, N)), c(N, np.complex128, seed=1))),
    (padded_second, lambda: (c((B, N)), f(N, seed=2))),
    (maximum_tail, lambda: (c((B, N)), c(N, seed=1))),
    (real_c2c, lambda: (f((B, N)), f(N, seed=2))),
]

EAGER = [
    (reduction, lambda: (c((B, N)),), "'.sum'"),
    (reshaped, lambda: (c((B, N)),), "'.reshape'"),
    (fancy_index, lambda: (c((B, N)), np.array([3, 1, 4])), "indexing"),
    (branch, lambda: (c((B, N)), 0.5), "branch on a value"),
    (branch_on_data, lambda: (c((B, N)),), "'.sum'"),
    (shifted, lambda: (c((B, N)),), "np.fftshift"),
    (astype, lambda: (c((B, N)),), "'.astype'"),
    (energy, lambda: (c((B, N)),), "np.sum"),
    (caught, lambda: (c((B, N)),), "'.sum'"),
    (no_fft, lambda: (c((B, N)),), "no FFT"),
    (converted, lambda: (c((B, N)),), "converted to a concrete array"),
]


def _single(args):
    return any(getattr(a, "dtype", None) in (np.complex64, np.float32) for a in args)


def _close(got, want, single=True):
    """Equal within the tolerance of the computation's precision (single where any input is)."""
    if isinstance(want, (tuple, list)):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want):
            _close(g, w, single)
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert got.dtype == want.dtype, f"dtype {got.dtype}, the undecorated function gives {want.dtype}"
    single = single or want.dtype in (np.complex64, np.float32)
    assert_close(got, want, rtol=(2e-5 if single else 1e-11) * 8)


def _name(case):
    return case[0].__name__


@pytest.mark.parametrize("fn,make", FUSED, ids=[f"{i}-{_name(c_)}" for i, c_ in enumerate(FUSED)])
def test_fusable_functions_are_fused_and_agree(fn, make):
    fused = fuse(fn, execution="cpu")
    args = make()
    text = fused.explain(*args)
    assert "prolog:" in text or "epilog:" in text, text
    assert "runs as written (the undecorated" not in text
    _close(fused(*args), fn(*args), _single(args))


@pytest.mark.parametrize("fn,make", PARTLY, ids=[_name(c_) for c_ in PARTLY])
def test_partly_fusable_functions_agree(fn, make):
    fused = fuse(fn, execution="cpu")
    args = make()
    text = fused.explain(*args)
    assert "FFT 0" in text and "runs as written:" in text, text
    _close(fused(*args), fn(*args), _single(args))


@pytest.mark.parametrize("fn,make,why", EAGER, ids=[_name(c_) for c_ in EAGER])
def test_functions_that_cannot_be_traced_run_as_written(fn, make, why):
    fused = fuse(fn, execution="cpu")
    args = make()
    text = fused.explain(*args)
    assert text.startswith("runs as written (the undecorated function)") and why in text, text
    _close(fused(*args), fn(*args), _single(args))


def test_the_untraceable_line_is_named_and_strict_raises():
    text = fuse(reduction).explain(c((B, N)))
    assert "test_fuse.py" in text and "return np.fft.fft(x) / x.sum()" in text
    with pytest.raises(nvmath.fft.TraceError, match=r"reduction cannot be traced: '\.sum'.*x\.sum\(\)"):
        fuse(reduction, strict=True)(c((B, N)))


def test_an_fftn_over_more_axes_than_nvmath_takes_runs_as_written():
    fused = fuse(fftn_4d, execution="cpu")
    x = c((2, 3, 4, 8))
    assert "runs as written" in fused.explain(x)
    _close(fused(x), fftn_4d(x))


def test_in_place_steps_leave_the_callers_array_as_the_function_does():
    x = c((B, N))
    mine, theirs = x.copy(), x.copy()
    fused = fuse(in_place, execution="cpu")
    assert "in-place operator" in fused.explain(x.copy())
    _close(fused(mine), in_place(theirs))
    assert np.array_equal(mine, theirs)


def test_returning_a_dict_runs_as_written():
    fused = fuse(returns_dict, execution="cpu")
    x = c((B, N))
    assert "returns a dict" in fused.explain(x)
    _close(fused(x)["spectrum"], returns_dict(x)["spectrum"])


def test_stand_ins_answer_protocol_probes_outside_a_trace():
    """hasattr() probes (NumPy's, doctest's) get AttributeError, not a trace error."""
    from nvmath.fft import _trace

    assert not hasattr(_trace.ArrayNamespace, "__wrapped__")
    assert not hasattr(_trace.ArrayNamespace.fft, "__wrapped__")
    assert not hasattr(_trace.CupyNamespace, "__array_interface__")


def test_partial_plans_say_why():
    assert "second array" in fuse(two_filters).explain(c((B, N)), c(N), c(N))
    assert "used elsewhere" in fuse(used_twice).explain(c((B, N)), c(N), c(N))


def test_numpy_2_promotion_is_kept():
    x = c((B, N))
    assert fuse(scale_arg, execution="cpu")(x, 2.0).dtype == np.complex64             # Python float: weak
    assert fuse(numpy_float64_scalar, execution="cpu")(x).dtype == np.complex128      # NumPy float64: strong
    assert fuse(float64_filter, execution="cpu")(x, c(N, np.complex128)).dtype == np.complex128


@pytest.mark.parametrize("fn,values", [
    (propagate, [0.5, 0.25, -3.0, 1e-3]),
    (conj_phase, [0.1, 2.0, -1.0]),
    (float32_param, [np.float32(0.5), np.float32(2.0), np.float32(-1.5)]),
    (affine, [(2.0, 1.0 + 1j, 4.0), (-1.0, 0.5j, 0.5), (3.0, -2.0 + 0j, 7.0)]),
])
def test_new_scalar_values_compile_nothing_and_trace_once(fn, values, events):
    fused = fuse(fn, execution="cpu")
    base = {propagate: lambda s: (c((B, N)), f(N, seed=2), c(N, seed=1), s),
            conj_phase: lambda s: (c((B, N)), s), float32_param: lambda s: (c((B, N)), s),
            affine: lambda s: (c((B, N)),) + s}[fn]
    _close(fused(*base(values[0])), fn(*base(values[0])))
    compiles = events.compiles
    for value in values[1:]:
        _close(fused(*base(value)), fn(*base(value)))
    assert events.compiles == compiles
    assert fused.cache_info() == {"plans": 1, "traces": 1}


def test_a_changed_global_traces_again(monkeypatch):
    fused = fuse(uses_global, execution="cpu")
    x = c((B, N))
    _close(fused(x), uses_global(x))
    monkeypatch.setattr(__import__(__name__), "SCALE", 4.0)
    assert uses_global.__globals__["SCALE"] == 4.0
    _close(fused(x), np.fft.fft(x) * 4.0)
    assert fused.cache_info()["traces"] == 2


def test_a_rebound_global_array_traces_again(monkeypatch):
    fused = fuse(uses_global_array, execution="cpu")
    x = c((B, N))
    _close(fused(x), uses_global_array(x))
    monkeypatch.setitem(uses_global_array.__globals__, "GLOBAL_FILTER", c(N, seed=41))
    _close(fused(x), uses_global_array(x))
    assert fused.cache_info()["traces"] == 2


def test_a_global_array_changed_in_place_is_seen(monkeypatch):
    """An array may change without being rebound: its contents are fingerprinted on every call
    (only immutable values and library names are trusted by identity)."""
    monkeypatch.setitem(uses_global_array.__globals__, "GLOBAL_FILTER", c(N, seed=43))
    fused = fuse(uses_global_array, execution="cpu")
    x = c((B, N))
    _close(fused(x), uses_global_array(x))
    uses_global_array.__globals__["GLOBAL_FILTER"][:] = c(N, seed=44)
    _close(fused(x), uses_global_array(x))


def test_a_changed_closure_value_traces_again():
    k = 2.0

    def scaled(x):
        return np.fft.fft(x) * k

    fused = fuse(scaled, execution="cpu")
    x = c((B, N))
    _close(fused(x), np.fft.fft(x) * 2.0)
    k = 5.0
    _close(fused(x), np.fft.fft(x) * 5.0)
    assert fused.cache_info()["traces"] == 2


def test_new_shapes_and_dtypes_trace_again_and_reuse_plans():
    fused = fuse(filt, execution="cpu")
    for shape in [(B, N), (2, N), (B, N)]:
        x, H = c(shape), c(shape[-1:], seed=1)
        _close(fused(x, H), filt(x, H))
    assert fused.cache_info() == {"plans": 2, "traces": 2}



def test_signatures_of_cupy_arrays_and_numpy_scalars_tell_shapes_dtypes_and_scalar_types_apart(fake_gpu):
    """The signature is taken on every call, CuPy arrays' and NumPy scalars' by their type alone
    after the first: a new shape, dtype or scalar type still traces again, an equal one does not;
    a NumPy scalar is a runtime parameter (NumPy 2's scalars look like arrays: they were taken as
    host data, which a GPU plan refuses). The fake GPU computes no numbers: the plans are checked."""
    import cupy

    def scaled(x, s):
        return cupy.fft.fft(x, axis=-1) * s

    fused = fuse(scaled, strict=True)
    calls = [((B, N), np.complex64, np.float32(2)), ((B, N), np.complex64, np.float32(3)),
             ((2, N), np.complex64, np.float32(2)), ((B, N), np.complex128, np.float32(2)),
             ((B, N), np.complex64, np.complex64(2j)), ((B, N), np.complex64, np.float32(5))]
    for shape, dtype, s in calls:
        x = cupy.asarray(c(shape, dtype))
        assert "runtime parameters" in fused.explain(x, s)
        assert fused(x, s).shape == shape
    assert fused.cache_info() == {"plans": 4, "traces": 4}


def test_numpy_scalars_are_runtime_parameters():
    def scaled(x, s):
        return np.fft.fft(x, axis=-1) * s

    fused = fuse(scaled, execution="cpu")
    x = c((B, N))
    for s in (np.float32(2), np.float32(-0.5), np.complex64(1 + 2j)):
        assert "runtime parameters" in fused.explain(x, s)
        _close(fused(x, s), scaled(x, s))
    assert fused.cache_info()["traces"] == 2
    # A float64 scalar makes NumPy 2's result complex128: that step runs as written.
    assert "a dtype change" in fused.explain(x, np.float64(3))
    _close(fused(x, np.float64(3)), scaled(x, np.float64(3)))


def test_decorator_forms():
    @fuse
    def a(x):
        return np.fft.fft(x) * 2

    @fuse(execution="cpu")
    def b(x):
        return np.fft.fft(x) * 2

    x = c((B, N))
    _close(a(x), np.fft.fft(x) * 2)
    _close(b(x), np.fft.fft(x) * 2)
    assert a.__name__ == "a" and isinstance(b, nvmath.fft.FusedFunction)
    with pytest.raises(TypeError, match="fuse expects a function"):
        fuse(3)


def test_keyword_arguments_and_static_ints():
    def along(x, axis, *, s=1.0):
        return np.fft.fft(x, axis=axis) * s

    fused = fuse(along, execution="cpu")
    x = c((B, N))
    for axis, s in [(0, 2.0), (1, 3.0), (0, 0.5)]:
        _close(fused(x, axis, s=s), along(x, axis, s=s))
    assert fused.cache_info()["plans"] == 2


def test_tuple_output_and_chain_is_marked():
    fused = fuse(propagate, execution="cpu")
    text = fused.explain(c((B, N)), f(N), c(N), 0.5)
    assert "[chain" in text and "route:" in text


def test_dask_arrays_follow_the_same_plan():
    da = pytest.importorskip("dask.array")
    x = c((B, N))
    H = c(N, seed=1)
    fused = fuse(filt, execution="cpu")
    got = fused(da.from_array(x, chunks=(2, N)), H)
    _close(np.asarray(got.compute()), filt(x, H))


@pytest.mark.gpu
def test_cupy_propagate_is_fused_on_the_gpu():
    import cupy as cp

    def propagate_cp(x, w, H, s):
        X = cp.fft.fft(x * w, axis=-1)
        return cp.fft.ifft(X * H, axis=-1) * s

    fused = fuse(propagate_cp)
    args = tuple(cp.asarray(a) for a in (c((B, N)), f(N), c(N, seed=1))) + (0.5,)
    assert "epilog:" in fused.explain(*args)
    _close(cp.asnumpy(fused(*args)), cp.asnumpy(propagate_cp(*args)))


@pytest.mark.gpu
def test_cupy_array_api_namespace_is_fused_on_the_gpu():
    import cupy as cp

    fused = fuse(array_api)
    host = (c((B, N)), c(N, seed=1))
    # CuPy 14's arrays have no __array_namespace__ (the undecorated call fails on them): NumPy's
    # result is the reference
    _close(cp.asnumpy(fused(*(cp.asarray(a) for a in host))), array_api(*host))


# -- chains: a forward FFT, a step, the inverse over the same axes -> nvmath.fft.filtered ----------

def chain_full_filter(x, H):
    return np.fft.ifft(np.fft.fft(x, axis=-1) * H, axis=-1)


def chain_scalars(x, s, t):
    return np.fft.ifft(np.fft.fft(x) * s) * t


def chain_ortho(x, H):
    return np.fft.ifft(np.fft.fft(x, norm="ortho") * H, norm="ortho")


def chain_forward(x, H):
    return np.fft.ifft(np.fft.fft(x, norm="forward") * H, norm="forward")


def chain_unnormalized(x, H):
    return nvmath.fft.ifft(nvmath.fft.fft(x, axes=[-1]) * H, axes=[-1])


def chain_ortho_nonlinear(x):
    # a pointwise step that is not linear: where the scales go matters
    return np.fft.ifft(np.fft.fft(x, norm="ortho") ** 2 + 1.0, norm="ortho")


def chain_rfft(x, H, s):
    return np.fft.irfft(np.fft.rfft(x) * H) * s


def chain_rfft2(x, M):
    return np.fft.irfft2(np.fft.rfft2(x) * M)


def chain_fft2(x, M):
    return np.fft.ifft2(np.fft.fft2(x) * M)


def chain_prolog_only(x, w):
    return np.fft.ifft(np.fft.fft(x * w))


def chain_scipy_first_axis(x, col):
    return scipy.fft.ifft(scipy.fft.fft(x, axis=0) * col, axis=0)


CHAINED = [
    (convolution, lambda: (c((B, N)), c(N, seed=1)), "backward"),
    (chain_full_filter, lambda: (c((B, N)), c((B, N), seed=9)), "backward"),
    (chain_scalars, lambda: (c((B, N)), 0.75, 2.0 - 1j), "backward"),
    (chain_ortho, lambda: (c((B, N)), c(N, seed=1)), "ortho"),
    (chain_forward, lambda: (c((B, N)), c(N, seed=1)), "forward"),
    (chain_unnormalized, lambda: (c((B, N)), c(N, seed=1)), None),
    (chain_ortho_nonlinear, lambda: (c((B, N)),), "ortho"),
    (chain_rfft, lambda: (f((B, N)), c(N // 2 + 1, seed=4), 0.5), "backward"),
    (chain_rfft2, lambda: (f((3, 8, N)), f((8, N // 2 + 1), seed=7)), "backward"),
    (chain_fft2, lambda: (c((3, 8, N)), f((8, N), seed=3)), "backward"),
    (chain_prolog_only, lambda: (c((B, N)), f(N, seed=2)), "backward"),
    (chain_scipy_first_axis, lambda: (c((B, N)), c((B, 1), seed=6)), "backward"),
    (propagate, lambda: (c((B, N)), f(N, seed=2), c(N, seed=1), 0.5), "backward"),
    (propagate, lambda: (c((B, N), np.complex128), f(N, np.float64, seed=2), c(N, np.complex128, seed=1), 0.5),
     "backward"),
    (scipy_r2c_c2r, lambda: (f((B, N)), c(N // 2 + 1, seed=4)), "backward"),
    (nvmath_convolution, lambda: (c((B, N)), c(N, seed=1)), "backward"),
    (array_api, lambda: (c((B, N)), c(N, seed=1)), "backward"),
]


@pytest.fixture
def filtered_calls(monkeypatch):
    """Counts calls of nvmath.fft.filtered (the fused runner looks it up on every call)."""
    calls = []
    real = nvmath.fft.filtered

    def counting(*args, **kwargs):
        calls.append(kwargs.get("norm"))
        return real(*args, **kwargs)

    monkeypatch.setattr(nvmath.fft, "filtered", counting)
    return calls


@pytest.mark.parametrize("fn,make,norm", CHAINED, ids=[f"{i}-{_name(c_)}" for i, c_ in enumerate(CHAINED)])
def test_forward_step_inverse_runs_as_one_filtered_call(fn, make, norm, filtered_calls):
    fused = fuse(fn, execution="cpu")
    args = make()
    text = fused.explain(*args)
    assert "run as one call, nvmath.fft.filtered(axes=" in text and f"norm={norm!r}" in text, text
    assert "route: two-plans on the CPU executor" in text and "why: " in text, text   # the ChainPlan's describe
    _close(fused(*args), fn(*args), _single(args))
    assert filtered_calls == [norm]


def chain_other_axes(x, H):
    return np.fft.ifft(np.fft.fft(x, axis=-1) * H, axis=0)


def chain_real_operand(x, H):
    return np.fft.ifft(np.fft.fft(x) * H)


def chain_mixed_norms(x, H):
    return np.fft.ifft(np.fft.fft(x, norm="ortho") * H)


def chain_odd_rfft(x, H):
    return np.fft.irfft(np.fft.rfft(x) * H)       # irfft gives N - 1 points


def chain_spectrum_twice(x, H):
    X = np.fft.fft(x) * H
    return np.fft.ifft(X), X


def chain_two_arrays(x, H, G):
    return np.fft.ifft(np.fft.fft(x) * H * G)


def inverse_then_forward(x, H):
    return np.fft.fft(np.fft.ifft(x) * H)


NOT_CHAINED = [
    (chain_other_axes, lambda: (c((B, B)), c(B, seed=1)), None),
    (chain_real_operand, lambda: (f((B, N), np.float64), c(N, np.complex128, seed=1)), "operand is real"),
    (chain_mixed_norms, lambda: (c((B, N)), c(N, seed=1)), "not one of filtered's norms"),
    (chain_odd_rfft, lambda: (f((B, 33)), c(17, seed=4)), "an odd length"),
    (chain_spectrum_twice, lambda: (c((B, N)), c(N, seed=1)), "used elsewhere"),
    (chain_two_arrays, lambda: (c((B, N)), c(N, seed=1), c(N, seed=8)), "second array"),
    (inverse_then_forward, lambda: (c((B, N)), c(N, seed=1)), None),
]


@pytest.mark.parametrize("fn,make,why", NOT_CHAINED, ids=[_name(c_) for c_ in NOT_CHAINED])
def test_pairs_filtered_cannot_run_stay_two_calls(fn, make, why, filtered_calls):
    fused = fuse(fn, execution="cpu")
    args = make()
    text = fused.explain(*args)
    assert "nvmath.fft.filtered" not in text and "[chain" not in text and "FFT 1" in text, text
    if why is not None:
        assert "run as two FFTs, not as one chain: " in text and why in text, text
    else:
        assert "one chain" not in text, text
    _close(fused(*args), fn(*args), _single(args))
    assert filtered_calls == []


def test_chains_keep_numpy_2_promotion():
    x, H = c((B, N)), c(N, seed=1)
    assert fuse(chain_scalars, execution="cpu")(x, 0.5, 2.0).dtype == np.complex64        # Python scalars: weak

    def promoted_after(x, H):
        return np.fft.ifft(np.fft.fft(x) * H) * np.float64(2.0)

    def promoted_between(x, H64):
        return np.fft.ifft(np.fft.fft(x) * H64)

    for fn, args in [(promoted_after, (x, H)), (promoted_between, (x, c(N, np.complex128, seed=1)))]:
        fused = fuse(fn, execution="cpu")
        got, want = fused(*args), fn(*args)
        assert got.dtype == want.dtype == np.complex128
        _close(got, want)
    assert "runs as written: *" in fuse(promoted_after, execution="cpu").explain(x, H)


def test_chain_scalars_change_without_compiling_or_tracing(events):
    fused = fuse(chain_scalars, execution="cpu")
    x = c((B, N))
    _close(fused(x, 0.5, 1.0 + 0j), chain_scalars(x, 0.5, 1.0 + 0j))
    compiles = events.compiles
    for s, t in [(2.0, 1j), (-0.25, 3.0 + 0.5j)]:  # same types: one signature
        _close(fused(x, s, t), chain_scalars(x, s, t))
    assert events.compiles == compiles
    assert fused.cache_info() == {"plans": 1, "traces": 1}


def test_a_chain_on_the_default_execution_keeps_its_planned_chain():
    """No execution=: filtered's stateless hot path (one planned chain per layout and code)."""
    fused = fuse(propagate)
    for s in (0.5, 0.25):
        args = (c((B, N)), f(N, seed=2), c(N, seed=1), s)
        _close(fused(*args), propagate(*args))


def test_dask_chains_follow_the_same_plan(filtered_calls):
    da = pytest.importorskip("dask.array")
    x, H = c((B, N)), c(N, seed=1)
    fused = fuse(convolution, execution="cpu")
    got = fused(da.from_array(x, chunks=(2, N)), H)
    _close(np.asarray(got.compute()), convolution(x, H))
    assert filtered_calls == ["backward"]


def test_a_gpu_chain_is_one_filtered_call_its_spectrum_passed_between_two_cufft_plans(fake_gpu, filtered_calls):
    # scalars only: a host operand crosses to the GPU, host data arrays would be refused there
    fused = fuse(chain_scalars, execution="cuda", strict=True)   # strict: a failing fused call raises
    args = (c((B, N)), 0.5, 2.0 + 1j)
    text = fused.explain(*args)
    assert "route: two-plans on cuFFT with LTO callbacks" in text or "route: one-kernel" in text, text
    y = fused(*args)
    assert isinstance(y, np.ndarray) and y.shape == (B, N) and y.dtype == np.complex64
    assert filtered_calls == ["backward"]
    forward, inverse = fake_gpu.launches
    assert (forward.direction, inverse.direction) == (-1, 1) and inverse.input == forward.output
