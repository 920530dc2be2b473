"""CPU executor: fused prologs/epilogs against a NumPy reference, over layouts, dtypes and forms.

Every case plans the problem with ``plan_problem``, allocates the buffers with the planner's
layouts, runs ``CpuExecutor`` and compares with NumPy in double precision computed without
this library (``np.fft`` on ``window * x``, then ``* filt``). Transforms are unnormalized both
ways, like cuFFT.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from fftfuse_compiler import cpu_backend
from helpers import assert_close, rand
from fftfuse_compiler.cpu_backend import compile_cpu, python_callback
from nvmath.fft import _cpu
from nvmath.fft._cpu import CallbackIndexError, CpuExecutor
from nvmath.fft._layout import Layout, plan_problem
from nvmath.fft._tensor import empty_strided, flat_view

@pytest.fixture(autouse=True)
def _threaded(monkeypatch):
    """Every size takes the threaded paths (pipelined or phased) here; test_cpu_native covers the
    calling-thread path of small problems."""
    monkeypatch.setattr(_cpu, "THREAD_BYTES", 0)


# ---------------------------------------------------------------------------------------------
# Callbacks, one pair per form (module level, so the in-process cache serves repeats)
# ---------------------------------------------------------------------------------------------


def prolog_value(x):
    return x * 0.5 + 1.0


def epilog_value(v):
    return v * 3.0


def prolog_value_data(x, d):
    return x * d


def epilog_value_data(v, d):
    return v * d


def prolog_cufft(data_in, offset, user_info, unused):
    return data_in[offset] * user_info[offset]


def epilog_cufft(data_out, offset, value, user_info, unused):
    data_out[offset] = value * user_info[offset]


FORMS = {
    "value": (prolog_value, epilog_value),
    "value_data": (prolog_value_data, epilog_value_data),
    "cufft": (prolog_cufft, epilog_cufft),
}

# ---------------------------------------------------------------------------------------------
# Operands: (base shape, view taking the operand out of the base, axes)
# ---------------------------------------------------------------------------------------------

LAYOUTS = {
    "1d": ((64,), None, None),
    "batched-1d": ((6, 40), None, (-1,)),
    "2d": ((5, 12, 10), None, (1, 2)),
    "3d": ((3, 6, 8, 10), None, (1, 2, 3)),
    "3d-single": ((6, 8, 10), None, None),
    "permuted": ((24, 6), np.transpose, (-1,)),
    "permuted-3d": ((4, 6, 10), lambda a: a.transpose(2, 0, 1), (1, 2)),
    "strided": ((6, 48), lambda a: a[:, ::2], (-1,)),
    "strided-batch": ((12, 20), lambda a: a[::2, :], (-1,)),
    "leading-axis": ((32, 5), None, (0,)),
    "non-adjacent": ((10, 3, 12), None, (0, 2)),
    "non-collapsible-batch": ((4, 10, 16), lambda a: a[:, :5, :], (-1,)),
}

# (FFT kind, operand dtype, C2R output parity)
TRANSFORMS = [
    ("fft", "complex64", None),
    ("fft", "complex128", None),
    ("ifft", "complex64", None),
    ("ifft", "complex128", None),
    ("rfft", "float32", None),
    ("rfft", "float64", None),
    ("irfft", "complex64", "even"),
    ("irfft", "complex128", "odd"),
]

TOLERANCE = {"float32": 2e-5, "complex64": 2e-5, "float64": 1e-12, "complex128": 1e-12}

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def element_strides(a: np.ndarray) -> tuple[int, ...]:
    return tuple(s // a.itemsize for s in a.strides)


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return rand(shape, dtype, rng)


def make_operand(rng: np.random.Generator, layout: str, dtype: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    shape, view, axes = LAYOUTS[layout]
    base = random_array(rng, shape, dtype)
    return (view(base) if view else base), axes


def laid_out(values: np.ndarray, layout: Layout) -> np.ndarray:
    """``values`` (of the layout's shape) placed so that element ``offset`` is the value there."""
    buffer = empty_strided(np, layout.shape, layout.strides, values.dtype.name, layout.span)
    buffer[...] = values
    return flat_view(buffer, layout.span)


def prepare(kind: str, x: np.ndarray, axes, parity=None, *, inplace=False):
    """The problem, the input buffer (a private copy where planned) and the output buffer."""
    problem = plan_problem(kind, x.shape, element_strides(x), x.dtype.name, axes,
                           last_axis_parity=parity or "even", inplace=inplace)
    inp = x
    if problem.copy_input:
        lay = problem.input
        inp = empty_strided(np, lay.shape, lay.strides, problem.input_dtype, lay.span)
        inp[...] = x
    if inplace:
        return problem, inp, inp
    lay = problem.output
    return problem, inp, empty_strided(np, lay.shape, lay.strides, problem.output_dtype, lay.span)


def run(problem, inp, out, prolog=None, epilog=None, prolog_data=None, epilog_data=None, *,
        workers=2, debug=False, direction=None):
    make = python_callback if debug else compile_cpu
    cb_in = make(prolog, "prolog", problem.input_dtype, _dtype(prolog_data)) if prolog else None
    cb_out = make(epilog, "epilog", problem.output_dtype, _dtype(epilog_data)) if epilog else None
    pdata = laid_out(prolog_data, problem.input) if prolog_data is not None else None
    edata = laid_out(epilog_data, problem.output) if epilog_data is not None else None
    executor = CpuExecutor(problem, cb_in, cb_out, workers=workers, debug=debug)
    executor.execute(inp, out, direction or problem.direction, pdata, edata)
    return out


def _dtype(data):
    return None if data is None else data.dtype


def reference(kind: str, x: np.ndarray, axes, problem, pre=None, post=None) -> np.ndarray:
    """NumPy, double precision: ``post(fft(pre(x)))``, unnormalized both ways."""
    wide = x.astype(np.complex128 if x.dtype.kind == "c" else np.float64)
    if pre is not None:
        wide = pre(wide)
    axes = tuple(range(x.ndim)) if axes is None else axes
    if kind == "fft":
        result = np.fft.fftn(wide, axes=axes)
    elif kind == "ifft":
        result = np.fft.ifftn(wide, axes=axes, norm="forward")
    elif kind == "rfft":
        result = np.fft.rfftn(wide, axes=axes)
    else:
        lengths = [problem.output.shape[a] for a in axes]
        result = np.fft.irfftn(wide, s=lengths, axes=axes, norm="forward")
    return post(result) if post is not None else result


def check(got: np.ndarray, want: np.ndarray, dtype: str) -> None:
    assert_close(got, want, rtol=TOLERANCE[dtype])


def callback_case(form: str, problem, x: np.ndarray, rng: np.random.Generator):
    """(prolog, epilog, prolog data, epilog data, pre, post) for ``form``."""
    prolog, epilog = FORMS[form]
    if form == "value":
        return prolog, epilog, None, None, (lambda a: a * 0.5 + 1.0), (lambda r: r * 3.0)
    window = random_array(rng, problem.input.shape, problem.input_dtype)
    filt = random_array(rng, problem.output.shape, problem.output_dtype)
    return prolog, epilog, window, filt, (lambda a: a * window), (lambda r: r * filt)


# ---------------------------------------------------------------------------------------------
# Fused prolog + epilog against NumPy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("kind, dtype, parity", TRANSFORMS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_prolog_and_epilog_match_numpy(layout, kind, dtype, parity, form):
    rng = np.random.default_rng(zlib.crc32(f"{layout}-{kind}-{dtype}-{form}".encode()))
    x, axes = make_operand(rng, layout, dtype)
    problem, inp, out = prepare(kind, x, axes, parity)
    prolog, epilog, window, filt, pre, post = callback_case(form, problem, x, rng)
    got = run(problem, inp, out, prolog, epilog, window, filt)
    check(got, reference(kind, x, axes, problem, pre, post), dtype)


@pytest.mark.parametrize("which", ["prolog", "epilog", "neither"])
@pytest.mark.parametrize("kind, dtype, parity", TRANSFORMS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("layout", ["batched-1d", "permuted-3d", "strided", "non-collapsible-batch", "3d-single"])
def test_one_callback_or_none(layout, kind, dtype, parity, which):
    rng = np.random.default_rng(7)
    x, axes = make_operand(rng, layout, dtype)
    x_before = x.copy()
    problem, inp, out = prepare(kind, x, axes, parity)
    prolog, epilog, window, filt, pre, post = callback_case("value_data", problem, x, rng)
    if which != "prolog":
        prolog, window, pre = None, None, None
    if which != "epilog":
        epilog, filt, post = None, None, None
    got = run(problem, inp, out, prolog, epilog, window, filt)
    check(got, reference(kind, x, axes, problem, pre, post), dtype)
    np.testing.assert_array_equal(x, x_before)  # the user's operand is never written


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("layout", ["batched-1d", "permuted", "leading-axis", "3d-single"])
def test_inplace_c2c(layout, form):
    """In-place: the output is the input; a cuFFT-form callback may not see half-written data."""
    rng = np.random.default_rng(3)
    x, axes = make_operand(rng, layout, "complex128")
    operand = x.copy(order="K")  # the user's buffer, transformed where it lies
    problem, inp, out = prepare("fft", operand, axes, inplace=True)
    assert inp is out and not problem.copy_input
    prolog, epilog, window, filt, pre, post = callback_case(form, problem, x, rng)
    run(problem, inp, out, prolog, epilog, window, filt)
    check(operand, reference("fft", x, axes, problem, pre, post), "complex128")


@pytest.mark.parametrize("debug", [False, True])
def test_inplace_prolog_reading_other_offsets_sees_the_original_input(debug):
    """A cuFFT-form prolog may read any input offset; in place, it still reads the input."""

    def next_element(data_in, offset, user_info, unused):
        return data_in[(offset + 1) % 240]

    rng = np.random.default_rng(6)
    x = random_array(rng, (6, 40), "complex128")
    operand = x.copy()
    problem, inp, out = prepare("fft", operand, (-1,), inplace=True)
    run(problem, inp, out, prolog=next_element, debug=debug)
    shifted = np.roll(x.reshape(-1), -1).reshape(6, 40)
    check(operand, np.fft.fft(shifted), "complex128")


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_c2c_runs_either_direction(direction):
    rng = np.random.default_rng(5)
    x = random_array(rng, (4, 32), "complex128")
    problem, inp, out = prepare("fft", x, (-1,))
    got = run(problem, inp, out, epilog=epilog_value, direction=direction)
    kind = "fft" if direction == "forward" else "ifft"
    check(got, reference(kind, x, (-1,), problem, post=lambda r: r * 3.0), "complex128")


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("layout", ["batched-1d", "2d", "leading-axis", "non-adjacent", "permuted-3d"])
def test_many_small_blocks(monkeypatch, layout, workers):
    """Pipelined blocks of one batch row each give the result of one whole transform."""
    monkeypatch.setattr(_cpu, "BLOCK_BYTES", 1)
    rng = np.random.default_rng(11)
    x, axes = make_operand(rng, layout, "complex64")
    problem, inp, out = prepare("fft", x, axes)
    prolog, epilog, window, filt, pre, post = callback_case("cufft", problem, x, rng)
    got = run(problem, inp, out, prolog, epilog, window, filt, workers=workers)
    check(got, reference("fft", x, axes, problem, pre, post), "complex64")


@pytest.mark.parametrize("kind, dtype", [("fft", "complex64"), ("rfft", "float64"), ("irfft", "complex128")])
def test_fewer_batches_than_threads_run_phased(kind, dtype):
    rng = np.random.default_rng(13)
    x = random_array(rng, (3, 8, 20), dtype)
    problem, inp, out = prepare(kind, x, (1, 2), "even")
    assert CpuExecutor(problem, None, None, workers=4)._batch_blocks(4) is None
    prolog, epilog, window, filt, pre, post = callback_case("cufft", problem, x, rng)
    got = run(problem, inp, out, prolog, epilog, window, filt, workers=4)
    check(got, reference(kind, x, (1, 2), problem, pre, post), dtype)


def test_large_batch_uses_blocks_and_matches(monkeypatch):
    monkeypatch.setattr(_cpu, "BLOCK_BYTES", 1 << 18)  # 32 rows of 1024 complex64
    rng = np.random.default_rng(2)
    x = random_array(rng, (300, 1024), "complex64")
    problem, inp, out = prepare("fft", x, (-1,))
    executor = CpuExecutor(problem, None, None, workers=2)
    blocks = executor._batch_blocks(2)
    assert blocks is not None and len(blocks) == 10
    prolog, epilog, window, filt, pre, post = callback_case("value_data", problem, x, rng)
    got = run(problem, inp, out, prolog, epilog, window, filt)
    check(got, reference("fft", x, (-1,), problem, pre, post), "complex64")


def test_offsets_seen_by_callbacks_are_the_layout_offsets():
    """A cuFFT-form epilog that stores its offset writes Layout.offset(index) at every index."""

    def store_offset(data_out, offset, value, user_info, unused):
        data_out[offset] = offset

    rng = np.random.default_rng(4)
    x = random_array(rng, (6, 5, 16), "complex128").transpose(1, 2, 0)[:, ::2, :]
    problem, inp, out = prepare("fft", x, (1,))
    run(problem, inp, out, epilog=store_offset)
    lay = problem.output
    want = np.zeros(lay.shape)
    for index in np.ndindex(*lay.shape):
        want[index] = lay.offset(index)
    np.testing.assert_array_equal(out.real, want)


# ---------------------------------------------------------------------------------------------
# Debug mode
# ---------------------------------------------------------------------------------------------


def test_debug_reports_out_of_range_user_info():
    def reads_past_the_end(data_in, offset, user_info, unused):
        return data_in[offset] * user_info[offset + 10**9]

    rng = np.random.default_rng(8)
    x = random_array(rng, (4, 16), "complex64").T
    problem, inp, out = prepare("fft", x, (0,))
    window = random_array(rng, problem.input.shape, "complex64")
    with pytest.raises(CallbackIndexError) as err:
        run(problem, inp, out, reads_past_the_end, None, window, debug=True)
    message = str(err.value)
    assert isinstance(err.value, IndexError)
    assert "prolog" in message and "reads_past_the_end" in message and "user_info" in message
    assert str(10**9) in message  # the first offset visited is 0
    assert str(problem.input.shape) in message and str(problem.input.strides) in message


def test_debug_reports_out_of_range_data_out():
    def writes_past_the_end(data_out, offset, value, user_info, unused):
        data_out[offset + 1] = value

    rng = np.random.default_rng(9)
    x = random_array(rng, (3, 8), "complex128")
    problem, inp, out = prepare("fft", x, (-1,))
    with pytest.raises(CallbackIndexError, match=r"data_out at offset 24, outside its 24 elements") as err:
        run(problem, inp, out, epilog=writes_past_the_end, debug=True)
    assert "the FFT output of shape (3, 8) and element strides (8, 1)" in str(err.value)


def test_debug_user_info_without_data_is_checked():
    rng = np.random.default_rng(9)
    x = random_array(rng, (3, 8), "complex128")
    problem, inp, out = prepare("fft", x, (-1,))
    with pytest.raises(CallbackIndexError, match="user_info at offset 1,"):
        run(problem, inp, out, epilog=epilog_cufft, debug=True)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("kind, dtype, parity", TRANSFORMS[::2], ids=lambda v: v if isinstance(v, str) else "")
def test_debug_equals_compiled(kind, dtype, parity, form):
    rng = np.random.default_rng(12)
    x, axes = make_operand(rng, "permuted-3d", dtype)
    problem, inp, out = prepare(kind, x, axes, parity)
    prolog, epilog, window, filt, _, _ = callback_case(form, problem, x, rng)
    # One thread, as the debug mode runs: ducc0's rounding depends on how a batch is cut in blocks.
    compiled = run(problem, inp, out, prolog, epilog, window, filt, workers=1).copy()
    _, inp, out = prepare(kind, x, axes, parity)
    debugged = run(problem, inp, out, prolog, epilog, window, filt, debug=True)
    np.testing.assert_array_equal(debugged, compiled)


def test_debug_runs_compiled_callbacks_as_python(capsys):
    def noisy(v):
        print("epilog saw", v)
        return v

    x = np.ones(4, np.complex128)
    problem, inp, out = prepare("fft", x, None)
    callback = compile_cpu(noisy, "epilog", "complex128")
    CpuExecutor(problem, None, callback, debug=True).execute(inp, out, "forward", None, None)
    assert capsys.readouterr().out.count("epilog saw") == 4
    np.testing.assert_allclose(out, [4, 0, 0, 0])


def test_debug_refuses_complex_result_for_real_element():
    problem, inp, out = prepare("rfft", np.ones(8), None)
    callback = python_callback(lambda x: x * 1j, "prolog", "float64")
    with pytest.raises(TypeError, match="returns complex"):
        CpuExecutor(problem, callback, None).execute(inp, out, "forward", None, None)


# ---------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------


def test_refuses_arrays_that_do_not_match_the_plan():
    x = np.zeros((4, 8), np.complex64)
    problem, inp, out = prepare("fft", x, (-1,))
    executor = CpuExecutor(problem, None, None)
    with pytest.raises(ValueError, match="input array"):
        executor.execute(inp.T.copy().T, out, "forward", None, None)
    with pytest.raises(ValueError, match="output array"):
        executor.execute(inp, out.astype(np.complex128), "forward", None, None)
    with pytest.raises(ValueError, match="direction"):
        executor.execute(inp, out, "backward", None, None)


def test_refuses_callback_of_other_element_type_or_kind():
    problem, _, _ = prepare("fft", np.zeros(8, np.complex64), None)
    with pytest.raises(ValueError, match="compiled for complex128"):
        CpuExecutor(problem, None, compile_cpu(epilog_value, "epilog", "complex128"))
    with pytest.raises(ValueError, match="passed as the prolog"):
        CpuExecutor(problem, compile_cpu(epilog_value, "epilog", "complex64"), None)


def test_refuses_short_or_missing_user_data():
    problem, inp, out = prepare("fft", np.zeros((4, 8), np.complex64), (-1,))
    callback = compile_cpu(epilog_value_data, "epilog", "complex64", "complex64")
    executor = CpuExecutor(problem, None, callback)
    with pytest.raises(ValueError, match="up to 31"):
        executor.execute(inp, out, "forward", None, np.ones(31, np.complex64))
    with pytest.raises(ValueError, match="none was given"):
        executor.execute(inp, out, "forward", None, None)
    with pytest.raises(ValueError, match="compiled for user data of complex64"):
        executor.execute(inp, out, "forward", None, np.ones(32, np.float32))


# ---------------------------------------------------------------------------------------------
# compile_cpu: cache, staleness, type checks
# ---------------------------------------------------------------------------------------------

GAIN = 2.0


def scaled(v):
    return v * GAIN


def test_compile_cpu_cache_and_changed_global(monkeypatch):
    cpu_backend.clear_cache()
    first = compile_cpu(scaled, "epilog", "complex128")
    again = compile_cpu(scaled, "epilog", "complex128")
    assert (first.source, again.source) == ("compiled", "cache")
    assert again.wrapper is first.wrapper
    monkeypatch.setitem(globals(), "GAIN", 5.0)
    changed = compile_cpu(scaled, "epilog", "complex128")
    assert changed.source == "compiled"  # a new global value is a new key, never a stale hit
    problem, inp, out = prepare("fft", np.ones(4, np.complex128), None)
    CpuExecutor(problem, None, changed).execute(inp, out, "forward", None, None)
    np.testing.assert_allclose(out, [20, 0, 0, 0])


RANDOM = np.random.random  # numba compiles it; no fingerprint can (a method of a hidden state)


def uses_settings(v):
    return v * 2.0 + 0.0 * RANDOM()


def test_compile_cpu_uncacheable_compiles_every_time():
    sources = [compile_cpu(uses_settings, "epilog", "float64").source for _ in range(2)]
    assert sources == ["compiled", "compiled"]


@pytest.mark.parametrize(
    "fn, kind, element, match",
    [
        (lambda x: x * 1j, "prolog", "float32", "returns complex"),
        (lambda x: None, "epilog", "float64", "returns nothing"),
        (lambda x: x.no_such_attribute, "epilog", "float64", "numba could not compile it"),
        (lambda x, d: x * d, "epilog", "float64", "no user data type"),
        (lambda a, b, c: a, "epilog", "float64", "takes 3 parameters"),
    ],
)
def test_compile_cpu_type_errors(fn, kind, element, match):
    with pytest.raises(TypeError, match=match):
        compile_cpu(fn, kind, element)


def test_compile_cpu_accepts_an_njit_function_and_plain_helpers():
    import numba

    def helper(v):
        return v + 1.0

    @numba.njit
    def jitted(v):
        return v * 2.0

    def uses_helper(v):
        return helper(jitted(v))

    problem, inp, out = prepare("fft", np.ones(4, np.complex128), None)
    CpuExecutor(problem, None, compile_cpu(uses_helper, "epilog", "complex128")).execute(
        inp, out, "forward", None, None
    )
    np.testing.assert_allclose(out, [9, 1, 1, 1])


# ---------------------------------------------------------------------------------------------
# Errors in compiled callbacks: the loop stops, the executor names the element
# ---------------------------------------------------------------------------------------------

def stopping(kind: str, at: int):
    """A cuFFT-form callback that raises at offset ``at``."""
    if kind == "prolog":
        def prolog_stops(data_in, offset, user_info, unused):
            if offset == at:
                raise ValueError("stop")
            return data_in[offset]

        return prolog_stops

    def epilog_stops(data_out, offset, value, user_info, unused):
        if offset == at:
            raise ValueError("stop")
        data_out[offset] = value

    return epilog_stops


def prolog_value_stops(x):
    if x.real == 1000.0:
        raise ValueError("stop")
    return x


@pytest.mark.parametrize("inplace", [False, True], ids=["apart", "in place"])
@pytest.mark.parametrize("kind", ["prolog", "epilog"])
def test_a_stopped_loop_reports_the_offset_of_its_element(kind, inplace):
    """Offsets through a transposed, strided layout, on the threaded paths, apart and in place."""
    rng = np.random.default_rng(31)
    x = random_array(rng, (12, 5, 16), "complex64").transpose(1, 2, 0)[:, ::2, :]
    problem, inp, out = prepare("fft", x, (1,), inplace=inplace)
    layout = problem.input if kind == "prolog" else problem.output
    at = layout.offset((3, 5, 2))
    with pytest.raises(ValueError, match="stop") as err:
        run(problem, inp, out, **{kind: stopping(kind, at)})
    side = "input" if kind == "prolog" else "output"
    assert f"{kind} 'stopping.<locals>.{kind}_stops' at offset {at} of the FFT {side}" in err.value.__notes__[0]


def test_an_elementwise_prolog_in_place_reports_its_element():
    rng = np.random.default_rng(32)
    x = random_array(rng, (6, 16), "complex64")
    problem, inp, out = prepare("fft", x, (1,), inplace=True)
    index = (4, 9)
    inp[index] = 1000.0
    with pytest.raises(ValueError, match="stop") as err:
        run(problem, inp, out, prolog_value_stops)
    assert f"at offset {problem.input.offset(index)} of the FFT input" in err.value.__notes__[0]


def test_loops_with_runtime_parameters_report_too():
    def epilog(v, *, k):
        return v * (7 // k)

    from fftfuse_compiler.terms import Terms

    rng = np.random.default_rng(33)
    x = random_array(rng, (3, 16), "complex64")
    problem, inp, out = prepare("fft", x, (1,))
    terms = Terms(problem.output.shape, problem.output.strides, (), None, (("k", "int64"),))
    cb = compile_cpu(epilog, "epilog", "complex64", terms=terms)
    executor = CpuExecutor(problem, None, cb, workers=1)
    with pytest.raises(ZeroDivisionError):
        executor.execute(inp, out, "forward", None, None, params=((), (np.int64(0),)))
    executor.execute(inp, out, "forward", None, None, params=((), (np.int64(7),)))
    np.testing.assert_allclose(out, np.fft.fft(x.astype(np.complex128)), rtol=1e-4, atol=1e-3)
