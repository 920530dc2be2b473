"""Callbacks in array terms: broadcast user data, the index forms and runtime parameters, against
float64 NumPy references on fresh random data; the feature tests run on every execution (CPU,
debug mode, fake GPU, GPU: the ``execution`` fixture).

References broadcast the data and build indices with ``np.indices`` over the array the callback
sees (the operand for a prolog, the result for an epilog); transforms are unnormalized both ways.
"""

from __future__ import annotations

import cmath
import zlib

import numpy as np
import pytest

import nvmath
from helpers import assert_close, reference, result_shape

# (FFT kind, operand dtype); irfft's operand is the spectrum of real data, so every library agrees
# on it (its DC and Nyquist terms are real).
KINDS = [("fft", "complex128"), ("ifft", "complex128"), ("rfft", "float64"), ("irfft", "complex128"),
         ("fft", "complex64"), ("rfft", "float32")]


def rng_for(*names: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(names).encode()))


def operand(kind: str, dtype: str, shape: tuple[int, ...], axes: tuple[int, ...], rng) -> np.ndarray:
    if kind == "irfft":
        real = rng.standard_normal(shape[:-1] + (2 * (shape[-1] - 1),))
        return np.fft.rfftn(real, axes=axes).astype(dtype)
    x = rng.standard_normal(shape)
    if dtype.startswith("complex"):
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def run(kind: str, x, *, debug: bool = False, **callbacks):
    options = {"debug": True} if debug else None
    axes = callbacks.pop("axes")
    return getattr(nvmath.fft, kind)(x, axes=list(axes), options=options, **callbacks)


def run_on(execution, kind: str, x, *, axes, **callbacks):
    """``kind`` of ``x`` on ``execution``: the operand and every callback's data put there first."""
    for spec in callbacks.values():
        if isinstance(spec, dict) and "data" in spec:
            spec["data"] = execution.put(spec["data"])
    return getattr(nvmath.fft, kind)(execution.put(x), axes=list(axes), options=execution.options, **callbacks)


def check(got, want, dtype: str) -> None:
    assert_close(got, want, dtype)


def mul(x, d):
    return x * d


# ---------------------------------------------------------------------------------------------
# Broadcast user data
# ---------------------------------------------------------------------------------------------

# (operand shape, axes, data shapes as functions of the callback's array shape)
BROADCASTS = [
    ((3, 8), (1,), [lambda s: (s[-1],), lambda s: (1, s[-1]), lambda s: (s[0], 1), lambda s: ()]),
    ((2, 4, 6), (1, 2), [lambda s: s[1:], lambda s: (s[0], 1, 1)]),  # a 2-D mask over a 3-D batch
    ((8, 3), (0,), [lambda s: (s[0], 1)]),  # the FFT along the outer axis
]


@pytest.mark.parametrize("kind,dtype", KINDS)
@pytest.mark.parametrize("side", ["prolog", "epilog"])
@pytest.mark.parametrize("case", range(len(BROADCASTS)))
def test_broadcast_data(execution, kind, dtype, side, case):
    shape, axes, data_shapes = BROADCASTS[case]
    rng = rng_for("broadcast", kind, dtype, side, case)
    x = operand(kind, dtype, shape, axes, rng)
    sees = x.shape if side == "prolog" else result_shape(kind, x.shape, axes)
    single = dtype in ("complex64", "float32")
    complex_element = x.dtype.kind == "c" if side == "prolog" else kind != "irfft"
    for make in data_shapes:
        d = rng.uniform(0.5, 1.5, make(sees))
        if complex_element and not (kind == "irfft" and side == "prolog"):  # keeps DC/Nyquist real
            d = d + 0.25j * rng.standard_normal(d.shape)
        d = d.astype((np.complex64 if d.dtype.kind == "c" else np.float32) if single else d.dtype)
        if side == "prolog":
            want = reference(kind, x.astype(np.complex128 if x.dtype.kind == "c" else np.float64) * d, axes)
        else:
            want = reference(kind, x, axes) * d
        got = run_on(execution, kind, x, axes=axes, **{side: {"fn": mul, "data": d}})
        execution.check(got, want, dtype)


def test_broadcast_to_view_and_transposed_data_are_read_in_place():
    """``np.broadcast_to`` views and full-size data of other strides are read where they lie."""
    from nvmath.fft._callbacks import callback_spec, lay_out_user_data
    from nvmath.fft._layout import Layout

    rng = rng_for("views")
    x = operand("fft", "complex128", (4, 16), (1,), rng)
    window = rng.uniform(0.5, 1.5, 16)
    full = np.ascontiguousarray(rng.standard_normal((16, 4)) + 1j * rng.standard_normal((16, 4))).T
    target = Layout((4, 16), (16, 1))
    for data, strides, size in [(np.broadcast_to(window, (4, 16)), (0, 1), 16), (full, (1, 4), 64)]:
        flat, read_at = lay_out_user_data(callback_spec({"fn": mul, "data": data}, "prolog"), target, broadcast=True)
        assert read_at == strides and flat.size == size and np.shares_memory(flat, data)
    got = run("fft", x, axes=(1,), prolog={"fn": mul, "data": np.broadcast_to(window, (4, 16))})
    check(got, np.fft.fft(x * window, axis=1), "complex128")
    got = run("fft", x, axes=(1,), epilog={"fn": mul, "data": full})
    check(got, np.fft.fft(x, axis=1) * full, "complex128")


def test_negative_strides_copy_only_the_data():
    rng = rng_for("negative")
    x = operand("fft", "complex128", (3, 8), (1,), rng)
    w = rng.uniform(0.5, 1.5, 8)
    got = run("fft", x, axes=(1,), prolog={"fn": mul, "data": w[::-1]})
    check(got, np.fft.fft(x * w[::-1], axis=1), "complex128")


@pytest.mark.parametrize("view", ["permuted", "strided"])
@pytest.mark.parametrize("debug", [False, True])
def test_broadcast_on_permuted_and_strided_operands(view, debug):
    rng = rng_for("views", view, debug)
    base = operand("fft", "complex128", (8, 6) if view == "permuted" else (5, 16), (1,), rng)
    x = base.T if view == "permuted" else base[:, ::2]
    w = rng.uniform(0.5, 1.5, x.shape[-1])
    h = rng.standard_normal((x.shape[0], 1)) + 1j
    got = run("fft", x, axes=(1,), debug=debug, prolog={"fn": mul, "data": w}, epilog={"fn": mul, "data": h})
    check(got, np.fft.fft(x * w, axis=1) * h, "complex128")


@pytest.mark.parametrize("shape", [(5,), (3, 8), (2, 8)])
def test_data_that_does_not_broadcast_is_refused_naming_both_shapes(shape):
    x = np.ones((4, 8), np.complex128)
    with pytest.raises(ValueError) as info:
        run("fft", x, axes=(1,), epilog={"fn": mul, "data": np.ones(shape)})
    message = str(info.value)
    assert f"data of shape {shape} does not broadcast to the result shape (4, 8)" in message
    assert "(8,)" in message and "(4, 1)" in message


# ---------------------------------------------------------------------------------------------
# The index forms
# ---------------------------------------------------------------------------------------------


def ramp_2d(x, b, k):
    return x * (1.0 + 0.01 * k) + 0.5 * b


def ramp_3d(x, b, i, j):
    return x * (1.0 + 0.01 * i - 0.003 * j) + 0.25 * b


def scaled_by_data_and_index(x, d, b, k):
    return x * d + 0.125 * k


# (operand shape, axes, function, reference from the np.indices of the array it sees)
INDEXED = [
    ((3, 10), (1,), ramp_2d, lambda v, ix: v * (1.0 + 0.01 * ix[1]) + 0.5 * ix[0]),
    ((10, 3), (0,), ramp_2d, lambda v, ix: v * (1.0 + 0.01 * ix[1]) + 0.5 * ix[0]),
    ((2, 6, 8), (1, 2), ramp_3d, lambda v, ix: v * (1.0 + 0.01 * ix[1] - 0.003 * ix[2]) + 0.25 * ix[0]),
]


@pytest.mark.parametrize("kind,dtype", KINDS)
@pytest.mark.parametrize("side", ["prolog", "epilog"])
@pytest.mark.parametrize("case", range(len(INDEXED)))
def test_index_form_matches_np_indices(execution, kind, dtype, side, case):
    shape, axes, fn, indexed = INDEXED[case]
    if kind == "irfft" and side == "prolog" and len(axes) > 1:
        pytest.skip("a position-dependent factor breaks the Hermitian symmetry a 2-D C2R input needs")
    rng = rng_for("index", kind, dtype, side, case)
    x = operand(kind, dtype, shape, axes, rng)
    if side == "prolog":
        wide = x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)
        want = reference(kind, indexed(wide, np.indices(x.shape)), axes)
    else:
        y = reference(kind, x, axes)
        want = indexed(y, np.indices(y.shape))
    got = run_on(execution, kind, x, axes=axes, **{side: fn})
    execution.check(got, want, dtype)


def test_fftshift_by_sign_flip(execution):
    """``(-1) ** (i + j)`` on the input moves the zero frequency to the centre (even sizes)."""
    rng = rng_for("fftshift")
    x = operand("fft", "complex128", (3, 8, 6), (1, 2), rng)
    got = run_on(execution, "fft", x, axes=(1, 2), prolog=lambda v, b, i, j: v * (-1) ** (i + j))
    execution.check(got, np.fft.fftshift(np.fft.fftn(x, axes=(1, 2)), axes=(1, 2)), "complex128")


@pytest.mark.parametrize("view", ["permuted", "strided"])
def test_index_form_on_permuted_and_strided_operands(view):
    rng = rng_for("index-views", view)
    base = operand("fft", "complex128", (10, 4) if view == "permuted" else (4, 20), (1,), rng)
    x = base.T if view == "permuted" else base[:, ::2]
    got = run("fft", x, axes=(1,), prolog=ramp_2d, epilog={"fn": scaled_by_data_and_index, "data": np.full(10, 2.0)})
    b, k = np.indices(x.shape)
    want = np.fft.fft(x * (1.0 + 0.01 * k) + 0.5 * b, axis=1) * 2.0 + 0.125 * k
    check(got, want, "complex128")


def test_unused_indices_are_not_decoded():
    from fftfuse_compiler.terms import Terms

    used = Terms((4, 8, 16), (128, 16, 1), index=(False, False, True))
    assert used.decode() == ["o = _U(offset)", "u2 = o % _U(16)", "i2 = _I(u2)"]
    assert Terms((4, 8, 16), (128, 16, 1), index=(False, False, False)).decode() == []


def test_index_form_arity_is_checked_against_the_array():
    x = np.ones((4, 8), np.complex128)
    with pytest.raises(TypeError, match=r"for this 2-D array without user data the value forms are f\(x\) and f\(x, i, j\)"):
        run("fft", x, axes=(1,), epilog=lambda v, i: v)


# ---------------------------------------------------------------------------------------------
# Runtime parameters
# ---------------------------------------------------------------------------------------------


def phase_ramp(v, b, k, *, shift, gain):
    return v * gain * cmath.exp(2j * cmath.pi * k * shift / 16)


def windowed(x, w, *, power):
    return x * w**power


def test_parameters_change_on_one_stateful_plan_without_compiling(execution, events):
    rng = rng_for("stateful-params")
    x = operand("fft", "complex128", (3, 16), (1,), rng)
    w = rng.uniform(0.5, 1.5, 16)
    b, k = np.indices(x.shape)
    with nvmath.fft.FFT(execution.put(x), axes=[1], options=execution.options) as f:
        f.plan(prolog={"fn": windowed, "data": execution.put(w), "params": {"power": 1.0}},
               epilog={"fn": phase_ramp, "params": {"shift": 0.0, "gain": 1.0}})
        before = (events.compiles, events.plans)
        for shift, gain, power in [(0.5, 2.0, 2.0), (-3.25, 0.5, 0.0), (7.0, 1.5, 3.0)]:
            f.set_params(prolog={"power": power}, epilog={"shift": shift, "gain": gain})
            want = np.fft.fft(x * w**power, axis=1) * gain * np.exp(2j * np.pi * k * shift / 16)
            execution.check(f.execute(), want, "complex128")
        assert (events.compiles, events.plans) == before


def test_parameters_change_between_stateless_calls_without_compiling(execution, events):
    rng = rng_for("stateless-params", execution.name)
    x = operand("fft", "complex64", (2, 16), (1,), rng)
    run_on(execution, "fft", x, axes=(1,), epilog={"fn": phase_ramp, "params": {"shift": 0.0, "gain": 1.0}})
    before = (events.compiles, events.plans)
    b, k = np.indices(x.shape)
    for shift in (0.25, 1.5, -2.0):
        x = operand("fft", "complex64", (2, 16), (1,), rng)  # fresh data each call
        got = run_on(execution, "fft", x, axes=(1,), epilog={"fn": phase_ramp, "params": {"shift": shift, "gain": 3.0}})
        execution.check(got, np.fft.fft(x.astype(np.complex128), axis=1) * 3.0 * np.exp(2j * np.pi * k * shift / 16),
                        "complex64")
    assert events.compiles == before[0]
    if execution.name != "debug":  # the debug mode plans each call anew: it keeps no engines
        assert events.plans == before[1]


def test_compiled_and_debug_mode_agree():
    rng = rng_for("agree")
    x = operand("rfft", "float64", (3, 2, 12), (1, 2), rng)
    mask = rng.uniform(0.0, 1.0, (2, 7))
    spec = {"fn": lambda v, d, b, i, j, *, s: v * d * (1 + s * j) + b, "data": mask, "params": {"s": 0.125}}
    fast = run("rfft", x, axes=(1, 2), epilog=spec)
    slow = run("rfft", x, axes=(1, 2), epilog=spec, debug=True)
    np.testing.assert_allclose(fast, slow, rtol=1e-13, atol=1e-13)
    b, i, j = np.indices(fast.shape)
    check(fast, np.fft.rfftn(x, axes=(1, 2)) * mask * (1 + 0.125 * j) + b, "float64")


def test_parameter_errors_name_the_parameters():
    x = np.ones((2, 16), np.complex128)
    with pytest.raises(TypeError, match=r"no value for \['gain'\].*'params': \{'shift': value, 'gain': value\}"):
        run("fft", x, axes=(1,), epilog={"fn": phase_ramp, "params": {"shift": 1.0}})
    with pytest.raises(TypeError, match=r"unknown \['scale'\]"):
        run("fft", x, axes=(1,), epilog={"fn": phase_ramp, "params": {"shift": 1.0, "gain": 1.0, "scale": 2}})
    with pytest.raises(TypeError, match="parameters are scalars"):
        run("fft", x, axes=(1,), epilog={"fn": phase_ramp, "params": {"shift": np.ones(3), "gain": 1.0}})
    with nvmath.fft.FFT(x, axes=[1]) as f:
        f.plan(epilog=lambda v: v)
        with pytest.raises(ValueError, match="no runtime parameters"):
            f.set_params(epilog={"shift": 1.0})


def test_keyword_defaults_are_parameter_values():
    def gain(v, *, g=2.0):
        return v * g

    x = rng_for("defaults").standard_normal((2, 8)).astype(np.complex128)
    check(run("fft", x, axes=(1,), epilog=gain), 2.0 * np.fft.fft(x, axis=1), "complex128")
    check(run("fft", x, axes=(1,), epilog={"fn": gain, "params": {"g": -1.0}}), -np.fft.fft(x, axis=1), "complex128")


def test_index_form_and_cufft_form_of_one_arity_are_told_apart_by_name():
    """A prolog of four parameters on a 2-D array with data: cuFFT's form names its second ``offset``."""
    rng = rng_for("arity")
    x = operand("fft", "complex128", (4, 8), (1,), rng)
    d = rng.uniform(0.5, 1.5, (4, 8))

    def raw(data_in, offset, user_info, unused, *, g):
        return data_in[offset] * user_info[offset] * g

    def indexed(v, w, b, k):
        return v * w + k

    got = run("fft", x, axes=(1,), prolog={"fn": raw, "data": d, "params": {"g": 2.0}})
    check(got, np.fft.fft(x * d * 2.0, axis=1), "complex128")
    got = run("fft", x, axes=(1,), prolog={"fn": indexed, "data": d})
    check(got, np.fft.fft(x * d + np.indices(x.shape)[1], axis=1), "complex128")


@pytest.mark.parametrize("debug", [False, True])
def test_index_form_where_strides_do_not_divide(debug):
    """Strides (7, 2): the offset is peeled axis by axis instead of (offset // stride) % extent."""
    from fftfuse_compiler.terms import Terms

    assert "r0 = o - u0 * _U(7)" in Terms((6, 4), (7, 2), index=(True, True)).decode()
    rng = rng_for("peel", debug)
    x = operand("fft", "complex128", (6, 7), (1,), rng)[:, ::2]
    got = run("fft", x, axes=(1,), debug=debug, prolog=ramp_2d, epilog={"fn": mul, "data": np.arange(6.0)[:, None] + 1})
    b, k = np.indices(x.shape)
    check(got, np.fft.fft(x * (1.0 + 0.01 * k) + 0.5 * b, axis=1) * (np.arange(6.0)[:, None] + 1), "complex128")


def test_numpy_function_numba_cuda_lacks_gets_a_specific_error(tmp_path):
    from fftfuse_cache import ArtifactStore
    from fftfuse_compiler import compile_callback
    from fftfuse_compiler.terms import Terms

    with pytest.raises(TypeError, match=r"cannot compile NumPy's exp here for the GPU; .*cmath\.exp"):
        compile_callback(lambda v, b, k: v * np.exp(2j * np.pi * k / 256), "epilog", "complex64",
                         compute_capability=80, terms=Terms((4, 256), (256, 1), (False, True)),
                         store=ArtifactStore(tmp_path / "cache"))


@pytest.mark.parametrize("kind", ["prolog", "epilog"])
def test_array_terms_inline_into_cufft_kernels(kind, tmp_path):
    """Index decoding, broadcast reads and slot parameters leave no call in the linked kernel."""
    from fftfuse_cache import ArtifactStore
    from fftfuse_compiler import compile_callback, linkcheck
    from fftfuse_compiler.terms import Terms

    def fn(x, d, b, k, *, s):
        return x * d * s + k

    terms = Terms((64, 1000), (1000, 1), (False, True), (0, 1), (("s", "float32"),))
    compiled = compile_callback(fn, kind, "complex64", "complex64", compute_capability=75, indirect=True,
                                terms=terms, store=ArtifactStore(tmp_path / "cache"))
    for callback_first in (False, True):
        ptx = linkcheck.link_check(compiled.ltoir, kind, "complex64", 75, callback_first=callback_first)
        assert linkcheck.kernel_calls(ptx) == []


def test_norm_composes_with_index_forms_and_parameters():
    rng = rng_for("norm")
    x = operand("fft", "complex128", (3, 16), (1,), rng)
    d = rng.uniform(0.5, 1.5, 16)

    def shaped(v, w, b, k, *, g):
        return v * w * g + k

    got = nvmath.fft.ifft(x, axes=[1], norm="backward", epilog={"fn": shaped, "data": d, "params": {"g": 2.0}})
    k = np.indices(x.shape)[1]
    check(got, (np.fft.ifft(x, axis=1, norm="forward") * d * 2.0 + k) / 16, "complex128")
    got = nvmath.fft.fft(x, axes=[1], norm="ortho", prolog=lambda v, b, k: v * (1 + 0.5 * b))
    check(got, np.fft.fft(x * (1 + 0.5 * np.indices(x.shape)[0]), axis=1) / 4, "complex128")


def test_create_key_ignores_parameter_values_but_not_their_types():
    x = np.ones((2, 16), np.complex128)
    key = lambda g: nvmath.fft.FFT.create_key(x, axes=[1], epilog={"fn": phase_ramp, "params": {"shift": g, "gain": 1.0}})  # noqa: E731
    assert key(0.5) == key(2.0) != key(np.float32(2.0))
