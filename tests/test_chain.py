"""The chain ``epilog(ifft(pointwise(fft(prolog(x)))))``: ``nvmath.fft.filtered`` and ``FilteredFFT``
against float64 NumPy references on random inputs, on the CPU executor, the debug mode and the
GPU code path with CuPy and cuFFT faked; the same on a real GPU where one is present."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from helpers import assert_close, chain_reference, precision_of, rand
from nvmath.fft import ExecutionCPU, FilteredFFT, filtered

RNG = np.random.default_rng(2026)  # one stream of draws: each unseeded array is new


def random(shape, dtype, seed=None):
    return rand(shape, dtype, RNG if seed is None else seed)


def reference(x, axes, prolog=None, pointwise=None, epilog=None, norm="backward"):
    return chain_reference(x, axes, prolog, pointwise, epilog, norm)


def check(got, want, dtype):
    assert got.dtype == np.dtype(dtype), got.dtype
    assert_close(got, want, dtype, rtol=2e-5 if precision_of(dtype) == "single" else 1e-11)


def mul(v, d):
    return v * d


def square(v):
    return v * v


def ramp(v, b, k):
    return v * (1 + k) / (1 + b)


def ramp_1d(v, k):
    return v * (1 + k)


def ramp_3d(v, a, b, k):
    return v * (1 + k) / (1 + a)


def ramp_4d(v, a, b, c, k):
    return v * (1 + k) / (1 + a)


def gain(v, *, g):
    return v * g


def load_times(data_in, offset, user_info, unused):
    return data_in[offset] * user_info[offset]


def store_times(data_out, offset, value, user_info, unused):
    data_out[offset] = value * user_info[offset]


FORMS = ("plain", "data", "broadcast", "index", "params", "cufft")


def form(name, kind, shape, dtype):
    """(callback, its reference ``f(array, indices)``) of form ``name`` for a step seeing
    elements of ``shape`` and ``dtype`` (``kind``: "prolog", or "epilog" for pointwise/epilog)."""
    if name == "plain":
        return square, lambda a, i: a * a
    if name == "data":
        d = random(shape, dtype)
        return {"fn": mul, "data": d}, lambda a, i: a * d
    if name == "broadcast":
        d = random(shape[-1:], dtype)
        return {"fn": mul, "data": d}, lambda a, i: a * d
    if name == "index":
        return ramp, lambda a, i: a * (1 + i[-1]) / (1 + i[0])
    if name == "params":
        return {"fn": gain, "params": {"g": 1.5}}, lambda a, i: a * 1.5
    d = random(shape, dtype)
    fn = load_times if kind == "prolog" else store_times
    return {"fn": fn, "data": d}, lambda a, i: a * d


def spectrum_shape(shape, real):
    return shape[:-1] + (shape[-1] // 2 + 1,) if real else shape


@pytest.mark.parametrize("step", ["prolog", "pointwise", "epilog"])
@pytest.mark.parametrize("name", FORMS)
@pytest.mark.parametrize("dtype", [np.complex64, np.float64])
def test_every_form_of_each_step(step, name, dtype):
    x, callback, ref = form_case(step, name, dtype)
    got = filtered(x, axes=[-1], **{step: callback})
    check(got, reference(x, (-1,), **{step: ref}), dtype)


def form_case(step, name, dtype):
    """A (6, 40) operand, the callback of form ``name`` for ``step`` and its NumPy reference; the
    pointwise step sees the spectrum (half of it for a real operand)."""
    shape = (6, 40)
    x = random(shape, dtype)
    real = np.dtype(dtype).kind == "f"
    spectrum_dtype = np.complex128 if dtype == np.float64 else np.complex64
    seen = (spectrum_shape(shape, real), spectrum_dtype) if step == "pointwise" else (shape, dtype)
    callback, ref = form(name, "prolog" if step == "prolog" else "epilog", *seen)
    return x, callback, ref


def test_all_three_steps_at_once_stateless_and_stateful_agree():
    x = random((5, 64), np.complex128)
    w, h = random((64,), np.float64), random((64,), np.complex128)
    steps = {"prolog": {"fn": mul, "data": w}, "pointwise": {"fn": mul, "data": h},
             "epilog": {"fn": gain, "params": {"g": 0.25}}}
    want = reference(x, (-1,), lambda a, i: a * w, lambda a, i: a * h, lambda a, i: a * 0.25)
    a = filtered(x, axes=-1, **steps)
    with FilteredFFT(x, axes=-1) as f:
        f.plan(**steps)
        b, c = f.execute(), f.execute()
    check(a, want, np.complex128)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(b, c)


# -- lengths, precisions, batches, axes, strides ---------------------------------------------------

@pytest.mark.parametrize("n", [16, 45, 100, 256, 1024, 4096])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, np.float32, np.float64])
def test_lengths_and_precisions(n, dtype):
    x = random((3, n), dtype)
    real = np.dtype(dtype).kind == "f"
    h_dtype = np.complex64 if dtype in (np.complex64, np.float32) else np.complex128
    h = random(spectrum_shape((n,), real), h_dtype)
    got = filtered(x, axes=[-1], pointwise={"fn": mul, "data": h})
    check(got, reference(x, (-1,), pointwise=lambda a, i: a * h), dtype)


@pytest.mark.parametrize("shape,axes", [
    ((64,), (-1,)), ((2, 3, 32), (-1,)), ((32, 5), (0,)), ((4, 16, 12), (-2, -1)), ((8, 6), (0, 1)),
    ((3, 10, 8, 4), (1, 2, 3)), ((7, 9), (-1,)),
])
@pytest.mark.parametrize("dtype", [np.complex64, np.float64])
def test_batch_shapes_and_axes(shape, axes, dtype):
    x = random(shape, dtype)
    index_form = {1: ramp_1d, 2: ramp, 3: ramp_3d, 4: ramp_4d}[len(shape)]
    got = filtered(x, axes=list(axes), pointwise=index_form, epilog=square)
    want = reference(x, axes, pointwise=lambda a, i: a * (1 + i[-1]) / (1 + i[0] * (len(shape) > 1)),
                     epilog=lambda a, i: a * a)
    check(got, want, dtype)


@pytest.mark.parametrize("view", ["every_other", "transposed", "reversed", "sliced_batch"])
@pytest.mark.parametrize("dtype", [np.complex128, np.float32])
def test_strided_operands(view, dtype):
    base = random((12, 96), dtype)
    x = {"every_other": base[:, ::2], "transposed": base[:, :48].T.copy().T, "reversed": base[:, ::-1],
         "sliced_batch": base[2:10:3, 16:80]}[view]
    if view == "transposed":
        x = random((48, 12), dtype).T
    w = random(x.shape[-1:], np.float32 if dtype == np.float32 else np.float64)
    got = filtered(x, axes=[-1], prolog={"fn": mul, "data": w}, pointwise=square)
    check(got, reference(x, (-1,), prolog=lambda a, i: a * w, pointwise=lambda a, i: a * a), dtype)


# -- norm= across the pair ------------------------------------------------------------------------

def magnitude(v):
    return v * abs(v)  # not linear: tells where the forward's scale sits


@pytest.mark.parametrize("norm", [None, "backward", "ortho", "forward"])
@pytest.mark.parametrize("dtype", [np.complex128, np.float64])
@pytest.mark.parametrize("with_epilog", [False, True])
def test_norms(norm, dtype, with_epilog):
    x = random((4, 30), dtype)
    epilog = ramp if with_epilog else None
    want = reference(x, (-1,), pointwise=lambda a, i: a * np.abs(a),
                     epilog=(lambda a, i: a * (1 + i[-1]) / (1 + i[0])) if with_epilog else None, norm=norm)
    got = filtered(x, axes=[-1], pointwise=magnitude, epilog=epilog, norm=norm)
    check(got, want, dtype)
    with FilteredFFT(x, axes=[-1]) as f:
        f.plan(pointwise=magnitude, epilog=epilog, norm=norm)
        check(f.execute(), want, dtype)


@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_no_callbacks_give_the_operand_back(norm):
    x = random((3, 50), np.complex128)
    np.testing.assert_allclose(filtered(x, norm=norm), x, atol=1e-12)
    y = random((3, 51), np.float64)  # odd: the real result keeps its length
    np.testing.assert_allclose(filtered(y, norm=norm), y, atol=1e-12)


def test_the_default_norm_is_backward_and_a_cuFFT_form_epilog_takes_it():
    x = random((4, 32), np.complex64)
    d = random((4, 32), np.complex64)
    got = filtered(x, epilog={"fn": store_times, "data": d})  # the scale goes into the inverse's prolog
    check(got, reference(x, (-1,), epilog=lambda a, i: a * d), np.complex64)


# -- runtime parameters, compiles, the route -----------------------------------------------------

def shift(v, b, k, *, s):
    return v * (1 - 0.01 * s * k)


def offset_by(v, *, c):
    return v + c


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def fft_log():
    log = logging.getLogger("fftfuse")  # plans (fftfuse.fft) and compiles (fftfuse.compiler)
    handler, level = Records(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield handler.messages
    log.removeHandler(handler)
    log.setLevel(level)


def compiled(messages):
    return [m for m in messages if " compiled:" in m or " compiled in " in m]


def compiles(messages):
    return compiled(messages) + [m for m in messages if m.startswith("planned ")]


@pytest.mark.parametrize("dtype", [np.complex64, np.float64])
def test_runtime_parameters_change_between_executes_with_nothing_compiled(dtype, fft_log):
    x = random((4, 40), dtype)
    fft_log.clear()
    with FilteredFFT(x, axes=[-1]) as f:
        f.plan(prolog={"fn": gain, "params": {"g": 2.0}}, pointwise={"fn": shift, "params": {"s": 1.0}},
               epilog={"fn": offset_by, "params": {"c": 0.5}})
        first = f.execute()
        fft_log.clear()
        for g, s, c in ((3.0, 2.0, -1.0), (0.5, 0.0, 2.0)):
            f.set_params(prolog={"g": g}, pointwise={"s": s}, epilog={"c": c})
            got = f.execute()
            want = reference(x, (-1,), lambda a, i: a * g, lambda a, i: a * (1 - 0.01 * s * i[-1]),
                             lambda a, i: a + c)
            check(got, want, dtype)
        assert compiles(fft_log) == []
    check(first, reference(x, (-1,), lambda a, i: a * 2.0, lambda a, i: a * (1 - 0.01 * i[-1]),
                           lambda a, i: a + 0.5), dtype)


def test_stateless_calls_with_new_parameter_values_compile_nothing(fft_log):
    x = random((4, 40), np.complex128)
    filtered(x, axes=[-1], pointwise={"fn": shift, "params": {"s": 1.0}})
    fft_log.clear()
    for s in (2.0, 3.5):
        got = filtered(x, axes=[-1], pointwise={"fn": shift, "params": {"s": s}})
        check(got, reference(x, (-1,), pointwise=lambda a, i: a * (1 - 0.01 * s * i[-1])), np.complex128)
    # On the CPU a call with runtime parameters plans anew (as fft does), from the cache: no compile.
    assert compiled(fft_log) == []



def test_stateless_chains_given_execution_and_options_every_call_reuse_their_plans(fft_log):
    """As fft's: equal execution= and options= values (new objects each call, as fuse(execution=)
    passes them) run the first call's chain again; before, each call planned both FFTs anew."""
    x = random((4, 64), np.complex64)
    for k, settings in enumerate([{"execution": "cpu"}, {"execution": ExecutionCPU(num_threads=1)},
                                  {"options": {"num_threads": 1}}]):
        for seed in range(3):
            h = random((64,), np.complex64, 10 + seed)
            got = filtered(x, axes=[-1], pointwise={"fn": mul, "data": h}, **settings)
            check(got, reference(x, (-1,), pointwise=lambda a, i: a * h), np.complex64)
            if seed == 0:
                planned = len([m for m in fft_log if m.startswith("planned ")])
        assert len([m for m in fft_log if m.startswith("planned ")]) == planned, settings


def test_set_params_on_a_step_without_parameters_says_so():
    x = random((2, 16), np.complex64)
    with FilteredFFT(x) as f:
        f.plan(pointwise=square)
        with pytest.raises(ValueError, match="no runtime parameters"):
            f.set_params(pointwise={"g": 1.0})


def test_the_route_is_described_and_logged(fft_log):
    x = random((4, 64), np.float32)
    with FilteredFFT(x, axes=[-1]) as f:
        with pytest.raises(RuntimeError, match="plan"):
            f.describe()
        f.plan(prolog=square, pointwise={"fn": mul, "data": random((33,), np.complex64)}, norm="ortho")
        text = f.describe()
        assert f.route == "two-plans" and f.chain_plan.executor == "cpu"
        assert f.chain_plan.transforms == ("rfft", "irfft")
    assert "route: two-plans" in text and "prolog=square" in text and "pointwise mul" in text
    assert "scale 0.125" in text  # ortho: 1/sqrt(64) on each transform
    assert any("route two-plans" in m for m in fft_log)


def test_the_debug_mode_runs_the_same_chain():
    x = random((3, 24), np.complex128)
    h = random((24,), np.complex128)
    steps = dict(prolog=square, pointwise={"fn": mul, "data": h}, epilog={"fn": gain, "params": {"g": 2.0}})
    want = reference(x, (-1,), lambda a, i: a * a, lambda a, i: a * h, lambda a, i: a * 2.0)
    check(filtered(x, options={"debug": True}, **steps), want, np.complex128)
    with FilteredFFT(x, options={"debug": True}) as f:
        f.plan(**steps)
        assert f.chain_plan.executor == "cpu-debug"
        check(f.execute(), want, np.complex128)


def test_reset_operand_runs_the_plan_on_new_data():
    x, y = random((3, 32), np.float32), random((3, 32), np.float32)
    with FilteredFFT(x, axes=[-1]) as f:
        f.plan(pointwise=square)
        f.execute()
        f.reset_operand(y)
        check(f.execute(), reference(y, (-1,), pointwise=lambda a, i: a * a), np.float32)


def test_options_a_chain_decides_itself_are_refused():
    x = random((2, 16), np.complex64)
    with pytest.raises(ValueError, match="inplace"):
        filtered(x, options={"inplace": True})
    with pytest.raises(ValueError, match="fft_type"):
        filtered(x, options={"fft_type": "R2C"})
    with pytest.raises(ValueError, match="fft_type"):
        FilteredFFT(random((2, 16), np.float32), options={"fft_type": "C2C"})


def test_bad_pointwise_data_is_refused_naming_the_spectrum_shape():
    x = random((4, 16), np.float32)
    with pytest.raises(ValueError, match=r"\(4, 9\)"):  # the half spectrum
        filtered(x, pointwise={"fn": mul, "data": random((16,), np.complex64)})


# -- the GPU code path, CuPy and cuFFT faked ------------------------------------------------------

def test_on_the_gpu_the_spectrum_goes_from_one_plan_to_the_other(fake_gpu):
    cupy = sys.modules["cupy"]
    x = cupy.asarray(random((4, 64), np.complex64))
    h = cupy.asarray(random((64,), np.complex64))
    with FilteredFFT(x, axes=[-1]) as f:
        f.plan(pointwise={"fn": mul, "data": h}, epilog=square, route="two-plans")  # a real GPU could take one kernel
        assert f.chain_plan.executor == "cufft" and f.route == "two-plans"
        ys = [f.execute() for _ in range(3)]
    assert fake_gpu.plans_made == 2 and len(fake_gpu.launches) == 6
    for k in range(3):
        forward, inverse = fake_gpu.launches[2 * k: 2 * k + 2]
        assert (forward.direction, inverse.direction) == (-1, 1)
        assert forward.input == x.data.ptr and inverse.input == forward.output
        assert inverse.output == ys[k].data.ptr


def test_stateless_chains_on_the_gpu_reuse_both_plans(fake_gpu):
    cupy = sys.modules["cupy"]
    for seed in range(3):
        x = cupy.asarray(random((4, 64), np.float32, seed))
        y = filtered(x, axes=[-1], pointwise={"fn": mul, "data": cupy.asarray(random((33,), np.complex64, seed))},
                     route="two-plans")
        assert y.shape == (4, 64) and y.dtype == np.float32
    assert fake_gpu.plans_made == 2 and len(fake_gpu.launches) == 6
    assert [launch.direction for launch in fake_gpu.launches] == [-1, 1] * 3


def test_stateless_chains_on_the_gpu_read_each_calls_data(fake_gpu):
    """A reused stateless chain hands cuFFT this call's filter, never the one it was planned with
    (its plans read the data pointer from a slot, as the stateless functions' plans do)."""
    cupy = sys.modules["cupy"]
    x = cupy.asarray(random((4, 64), np.complex64))
    filters = [cupy.asarray(random((64,), np.complex64, seed)) for seed in range(3)]
    for h in filters:
        filtered(x, axes=[-1], pointwise={"fn": mul, "data": h}, route="two-plans")
    forwards = fake_gpu.launches[0::2]
    assert fake_gpu.plans_made == 2 and len(forwards) == 3
    pointers = [word if word is not None else info
                for launch in forwards for info, word in launch.caller_info.values()]
    assert pointers == [h.data.ptr for h in filters]


def test_a_host_operand_of_a_gpu_chain_crosses_to_the_gpu_once(fake_gpu):
    x = random((4, 32), np.complex64)
    y = filtered(x, execution="cuda", pointwise=square, route="two-plans")
    assert isinstance(y, np.ndarray) and y.shape == x.shape
    assert len(fake_gpu.launches) == 2
    assert fake_gpu.launches[1].input == fake_gpu.launches[0].output


# -- on a real GPU ------------------------------------------------------------------------------

CPP_FILTER = r"""
__device__ void apply_filter(void* out, unsigned long long offset, float2 v, void* info, void* shared) {
    float2 f = ((float2*)info)[offset];
    ((float2*)out)[offset] = make_float2(v.x * f.x - v.y * f.y, v.x * f.y + v.y * f.x);
}"""


@pytest.mark.gpu
@pytest.mark.parametrize("step", ["prolog", "pointwise", "epilog"])
@pytest.mark.parametrize("name", FORMS)
@pytest.mark.parametrize("dtype", [np.complex64, np.float64])
def test_gpu_every_form_of_each_step(step, name, dtype):
    import cupy

    x, callback, ref = form_case(step, name, dtype)
    if isinstance(callback, dict) and "data" in callback:
        callback = {**callback, "data": cupy.asarray(callback["data"])}
    got = filtered(cupy.asarray(x), axes=[-1], **{step: callback})
    check(cupy.asnumpy(got), reference(x, (-1,), **{step: ref}), dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("n", [16, 45, 100, 1024, 4096])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, np.float32, np.float64])
@pytest.mark.parametrize("norm", [None, "backward", "ortho", "forward"])
def test_gpu_lengths_precisions_and_norms(n, dtype, norm):
    import cupy

    x = random((3, n), dtype)
    real = np.dtype(dtype).kind == "f"
    h = random(spectrum_shape((n,), real), np.complex64 if dtype in (np.complex64, np.float32) else np.complex128)
    want = reference(x, (-1,), pointwise=lambda a, i: a * h, norm=norm)
    steps = dict(pointwise={"fn": mul, "data": cupy.asarray(h)}, norm=norm)
    check(cupy.asnumpy(filtered(cupy.asarray(x), axes=[-1], **steps)), want, dtype)
    with FilteredFFT(cupy.asarray(x), axes=[-1]) as f:
        f.plan(**steps)
        check(cupy.asnumpy(f.execute()), want, dtype)
    check(filtered(x, axes=[-1], execution="cuda", **steps), want, dtype)  # a host operand


@pytest.mark.gpu
def test_gpu_cpp_pointwise_and_strided_batches():
    import cupy

    base = random((8, 128), np.complex64)
    x = base[1::2, ::2]
    h = random((4, 64), np.complex64)
    got = filtered(cupy.asarray(x), axes=[-1], pointwise={"source": CPP_FILTER, "data": cupy.asarray(h)})
    check(cupy.asnumpy(got), reference(x, (-1,), pointwise=lambda a, i: a * h), np.complex64)


@pytest.mark.gpu
def test_gpu_runtime_parameters_compile_nothing(fft_log):
    import cupy

    x = random((4, 40), np.complex64)
    with FilteredFFT(cupy.asarray(x), axes=[-1]) as f:
        f.plan(pointwise={"fn": shift, "params": {"s": 1.0}}, epilog={"fn": offset_by, "params": {"c": 0.5}})
        f.execute()
        fft_log.clear()
        f.set_params(pointwise={"s": 3.0}, epilog={"c": -1.0})
        got = cupy.asnumpy(f.execute())
        assert compiles(fft_log) == []
    check(got, reference(x, (-1,), pointwise=lambda a, i: a * (1 - 0.03 * i[-1]), epilog=lambda a, i: a - 1.0),
          np.complex64)


@pytest.mark.parametrize("dtype", [np.complex128, np.float64])
def test_a_dask_operand_runs_the_chain_chunk_by_chunk(dtype):
    da = pytest.importorskip("dask.array")
    x = random((8, 63), dtype)
    real = np.dtype(dtype).kind == "f"
    h = random(spectrum_shape((63,), real), np.complex128)
    y = filtered(da.from_array(x, chunks=(4, 63)), axes=[-1], pointwise={"fn": mul, "data": h}, epilog=square,
                 norm="ortho").compute()
    check(y, reference(x, (-1,), pointwise=lambda a, i: a * h, epilog=lambda a, i: a * a, norm="ortho"), dtype)


def test_the_log_sees_compiles():
    """The compile check above would notice one: a new function's compile is logged."""
    messages = []
    handler = Records()
    log = logging.getLogger("fftfuse")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        def fresh(v, *, t):
            return v * (t + 0.123456789)
        filtered(random((2, 20), np.complex128), axes=[-1], pointwise={"fn": fresh, "params": {"t": 1.0}})
        messages = handler.messages
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert compiled(messages) or any("found in the cache" in m for m in messages)


def test_the_log_names_each_step_as_the_user_wrote_it(fft_log):
    filtered(random((2, 16), np.complex128), axes=[-1], pointwise={"fn": gain, "params": {"g": 1.0}})
    planned = [m for m in fft_log if m.startswith("planned ")]
    assert any("'gain'" in m for m in planned), planned  # norm's scale is fused into it
    assert not any("<locals>" in m for m in planned), planned


# -- where the planner puts norm's scales -----------------------------------------------------------

def chain_for(x, norm, prolog=None, pointwise=None, epilog=None):
    from nvmath.fft._planner import plan_chain, problem_for
    from nvmath.fft._options import FFTOptions

    strides = tuple(s // x.itemsize for s in x.strides)
    forward = problem_for("fft", x.shape, strides, str(x.dtype), (x.ndim - 1,))
    return plan_chain(forward, "cuda", FFTOptions(), norm, prolog, pointwise, epilog)


def test_a_pointwise_step_in_cpp_gets_the_inverse_scale_on_the_inverses_input():
    x = random((4, 16), np.complex64)
    pointwise = {"source": CPP_FILTER, "data": random((4, 16), np.complex64)}
    chain = chain_for(x, "backward", pointwise=pointwise)
    (p, e), (ip, ie) = chain.placed(None, pointwise, square)
    assert p is None and e is pointwise and ie is square
    assert ip is not None and ip(np.complex64(4)) == np.complex64(0.25)  # 1/16 before the inverse


def test_without_a_pointwise_step_one_scale_goes_after_the_prolog():
    x = random((4, 16), np.complex64)
    chain = chain_for(x, "ortho")
    assert chain.scales == (0.25, 0.25)
    (p, e), (ip, ie) = chain.placed(None, None, None)
    assert e is None and ip is None and ie is None and p(np.complex64(2)) == np.complex64(0.125)


def test_a_cpp_prolog_with_a_forward_scale_before_a_pointwise_step_is_refused():
    x = random((4, 16), np.complex64)
    prolog = {"source": "__device__ float2 f(void* d, unsigned long long o, void* i, void* s) {}"}
    chain = chain_for(x, "ortho", prolog=prolog, pointwise=square)
    with pytest.raises(ValueError, match="norm='ortho' cannot be fused.*pass norm=None"):
        chain.placed(prolog, square, None)
    assert chain.placed(prolog, None, None)[1][0] is not None  # all linear: the scale moves past it
