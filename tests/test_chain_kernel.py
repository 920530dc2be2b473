"""The chain's one-kernel route without a GPU: which chains the planner sends there (and why it
declines the others), the knobs it picks, and the kernel compiled and linked with its cuFFTDx
FFTs for sm_90 on a machine without a GPU. Its results are checked on a GPU in
``test_gpu_chain_kernel.py``."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from nvmath.fft import _chain_kernel, _planner
from nvmath.fft._options import FFTOptions
from nvmath.fft._planner import plan_chain, problem_for


class GpuData:
    """Stands for a CuPy array in the planner's eyes (its data on GPU 0); never launched."""

    __module__ = "cupy"  # as_tensor takes it for CuPy

    def __init__(self, shape, dtype=np.complex64):
        self._host = np.zeros(shape, dtype)
        self.shape, self.dtype, self.strides, self.device = self._host.shape, self._host.dtype, self._host.strides, \
            type("Device", (), {"id": 0})()


def forward(shape=(8, 1024), dtype="complex64", axes=None, strides=None):
    strides = strides or tuple(int(np.prod(shape[k + 1:])) for k in range(len(shape)))
    transform = "fft" if dtype.startswith("complex") else "rfft"
    return problem_for(transform, shape, strides, dtype, axes or (len(shape) - 1,))


@pytest.fixture
def gpu_ready(monkeypatch):
    """The planner sees a usable sm_90 GPU with libmathdx (nothing is compiled or launched), and
    route="auto" is left at its default (one kernel where it fits)."""
    monkeypatch.setattr(_chain_kernel, "unavailable", lambda: "")
    monkeypatch.setattr(_planner, "device_arch", lambda device: 90)
    monkeypatch.delenv(_planner.ONE_KERNEL_ENV, raising=False)


def test_auto_takes_one_kernel_unless_switched_off_and_one_kernel_can_be_asked_for(gpu_ready, monkeypatch):
    if HAVE_MATHDX:
        for value in (None, "1", "yes"):
            if value is not None:
                monkeypatch.setenv(_planner.ONE_KERNEL_ENV, value)
            assert plan_chain(forward(), "cuda", FFTOptions(), "backward", None, square, None).route == "one-kernel"
    monkeypatch.setenv(_planner.ONE_KERNEL_ENV, "0")
    chain = plan_chain(forward(), "cuda", FFTOptions(), "backward", None, square, None)
    assert chain.route == "two-plans" and chain.kernel is None
    assert "one kernel would fit" in chain.reason and "FFTFUSE_ONE_KERNEL=0" in chain.reason
    if HAVE_MATHDX:
        forced = plan_chain(forward(), "cuda", FFTOptions(), "backward", None, square, None, route="one-kernel")
        assert forced.route == "one-kernel"


def mul(v, d):
    return v * d


def square(v):
    return v * v


def ramp(v, b, k):
    return v * (1 + k) / (1 + b)


def gain(v, *, g):
    return v * g


def store_times(data_out, offset, value, user_info, unused):
    data_out[offset] = value * user_info[offset]


# -- the planner declines, saying why ------------------------------------------------------------

DECLINED = [
    (dict(target="cpu"), "one kernel is a GPU route"),
    (dict(problem=forward(dtype="float16")), "R2C chain on float16 runs as two plans"),
    (dict(problem=forward((8, 1000), "float32")), "length 1000"),
    (dict(problem=forward((4, 8, 16), "float64", axes=(1, 2))), "last axis alone"),
    # The pointwise step of a real operand sees the half spectrum: an (n,) filter is not its row.
    (dict(problem=forward(dtype="float32"), pointwise={"fn": mul, "data": GpuData((1024,))}),
     r"pointwise's data of shape \(1024,\).*of shape \(513,\)"),
    (dict(problem=forward(dtype="float32"), prolog={"fn": mul, "data": GpuData((513,), np.float32)}),
     r"prolog's data of shape \(513,\)"),
    (dict(problem=forward(dtype="float32"), epilog={"fn": mul, "data": GpuData((8, 513), np.float32)}),
     r"epilog's data of shape \(8, 513\)"),
    (dict(problem=forward((4, 16, 32), axes=(1, 2))), "last axis alone"),
    (dict(problem=forward((64, 8), axes=(0,))), "last axis alone"),
    (dict(problem=forward((8, 512), strides=(1024, 2))), "C-contiguous"),
    (dict(problem=forward((8, 40))), "length 40"),
    (dict(problem=forward((2, 8192))), "length 8192"),
    (dict(problem=forward((8, 8))), "length 8"),
    (dict(pointwise={"source": "__device__ void f() {}"}), "pointwise is CUDA C++"),
    (dict(prolog={"ltoir": b"\0" * 16}), "prolog is LTO-IR"),
    (dict(epilog={"fn": gain, "params": {"g": 2.0}}), "runtime parameters"),
    (dict(epilog={"fn": store_times, "data": GpuData((8, 1024))}), "cuFFT's own form"),
    (dict(pointwise={"fn": mul, "data": np.ones(1024, np.complex64)}), "host memory"),
    (dict(pointwise={"fn": mul, "data": GpuData((8, 1))}), r"data of shape \(8, 1\)"),
]


@pytest.mark.parametrize("change,reason", DECLINED)
def test_the_planner_declines_one_kernel_saying_why(change, reason, gpu_ready):
    problem = change.pop("problem", forward())
    target = change.pop("target", "cuda")
    steps = {k: change.get(k) for k in ("prolog", "pointwise", "epilog")}
    chain = plan_chain(problem, target, FFTOptions(), "backward", **steps)
    assert chain.route == "two-plans"
    assert re.search(reason, chain.reason), chain.reason
    assert f"why: {chain.reason}" in chain.describe()
    with pytest.raises(ValueError, match="route='one-kernel' cannot run this chain"):
        plan_chain(problem, target, FFTOptions(), "backward", **steps, route="one-kernel")


def test_without_a_usable_gpu_the_reason_says_so(monkeypatch):
    monkeypatch.setattr(_chain_kernel, "unavailable", lambda: "numba-cuda finds no usable GPU")
    chain = plan_chain(forward(), "cuda", FFTOptions(), "backward", None, square, None)
    assert chain.route == "two-plans" and chain.reason == "numba-cuda finds no usable GPU"


def test_tuning_without_a_usable_gpu_says_why(monkeypatch):
    from nvmath.fft import tune_chains

    monkeypatch.setattr(_chain_kernel, "unavailable", lambda: "numba-cuda finds no usable GPU")
    with pytest.raises(RuntimeError, match="tune_chains measures the one kernel on a GPU.*finds no usable GPU"):
        tune_chains(lengths=[64])


def test_two_plans_asked_for_is_never_one_kernel(gpu_ready):
    chain = plan_chain(forward(), "cuda", FFTOptions(), "backward", None, square, None, route="two-plans")
    assert chain.route == "two-plans" and "asked for" in chain.reason


def test_a_route_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="'auto', 'one-kernel', 'two-plans'"):
        plan_chain(forward(), "cpu", FFTOptions(), "backward", None, None, None, route="fused")


def test_a_dask_operand_cannot_be_forced_into_one_kernel():
    da = pytest.importorskip("dask.array")
    from nvmath.fft import filtered

    with pytest.raises(ValueError, match="Dask operand"):
        filtered(da.ones((4, 64), chunks=(2, 64), dtype=np.complex64), route="one-kernel")


def test_on_the_cpu_filtered_runs_two_plans_and_one_kernel_is_refused():
    from nvmath.fft import FilteredFFT

    x = np.ones((4, 64), np.complex64)
    with FilteredFFT(x) as f:
        f.plan(pointwise=square)
        assert f.route == "two-plans" and "GPU route" in f.chain_plan.reason
        with pytest.raises(ValueError, match="one kernel is a GPU route"):
            f.plan(pointwise=square, route="one-kernel")


def test_data_kinds():
    kind = _chain_kernel.data_kind
    assert kind((1024,), (1,), (8, 1024)) == "row"
    assert kind((1, 1, 1024), (1024, 1024, 1), (2, 8, 1024)) == "row"
    assert kind((8, 1024), (1024, 1), (8, 1024)) == "full"
    assert kind((8, 1024), (1, 8), (8, 1024)) is None  # transposed: not C-contiguous
    assert kind((1024,), (2,), (8, 1024)) is None  # strided
    assert kind((2, 1, 1024), (1024, 1024, 1), (2, 4, 1024)) is None  # broadcast over an inner axis


# -- the one kernel: knobs, description, source, compiled without a GPU ------------------------------

try:
    from nvmath.device import _mathdx

    _mathdx.version()
    HAVE_MATHDX = True
except (RuntimeError, OSError):
    HAVE_MATHDX = False

needs_mathdx = pytest.mark.skipif(not HAVE_MATHDX, reason="libmathdx (the dx extra) is not installed")


@needs_mathdx
def test_the_planner_takes_one_kernel_where_everything_fits(gpu_ready):
    steps = dict(prolog={"fn": mul, "data": GpuData((1024,), np.float32)}, pointwise=ramp,
                 epilog={"fn": mul, "data": GpuData((8, 1024))})
    chain = plan_chain(forward(), "cuda", FFTOptions(), "ortho", **steps)
    assert chain.route == "one-kernel" and chain.executor == "cufftdx"
    k = chain.kernel
    assert (k.length, k.precision, k.ffts_per_block, k.elements_per_thread, k.arch) == (1024, "float32", 2, 16, 90)
    assert [s.data for s in k.steps] == ["row", None, "full"]
    assert [s.form for s in k.steps] == ["value_data", "value_index", "value_data"]
    text = chain.describe()
    assert "route: one-kernel" in text and "2 FFTs per block, 16 elements per thread" in text
    assert "block (64, 2, 1)" in text and "sm_90" in text and "pointwise ramp" in text
    forced = plan_chain(forward(), "cuda", FFTOptions(), "ortho", **steps, route="one-kernel")
    assert forced.route == "one-kernel" and "asked for" in forced.reason


@needs_mathdx
@pytest.mark.parametrize("fft_type", ["c2c", "r2c"])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_knobs_for_every_length_fit_cufftdx_and_the_shared_memory(precision, fft_type):
    n = 16
    while n <= 4096:
        fpb, ept = _chain_kernel.choose_knobs(n, precision, 90, fft_type)
        fwd, inv = _chain_kernel._device_ffts(n, precision, fpb, ept, 90, fft_type)
        assert (fwd.fft_type, inv.fft_type) == ((fft_type, fft_type) if fft_type == "c2c" else ("r2c", "c2r"))
        assert fwd.elements_per_thread == ept and fwd.ffts_per_block == fpb
        assert fwd.shared_memory_size <= _chain_kernel.SHARED_MEMORY_LIMIT
        assert np.prod(fwd.block_dim) <= 1024 and fwd.stride * ept == n
        assert (inv.block_dim, inv.stride) == (fwd.block_dim, fwd.stride)
        # The spectrum (half of it for R2C) lies in the registers the kernel walks: tx + e * stride.
        spectrum = n if fft_type == "c2c" else n // 2 + 1
        assert fwd.output_length == spectrum and -(-spectrum // fwd.stride) <= fwd.storage_size
        n *= 2
    assert _chain_kernel.choose_knobs(1024, "float32", 90, fft_type) == (2, 16)  # the measured best at 1024


@needs_mathdx
def test_knobs_asked_for_are_taken_where_cufftdx_has_them(monkeypatch):
    monkeypatch.setenv("FFTFUSE_CHAIN_KNOBS", "32x8")
    assert _chain_kernel.choose_knobs(64, "float32", 90) == (32, 8)
    monkeypatch.setenv("FFTFUSE_CHAIN_KNOBS", "1x3")  # no such implementation: the rule's
    assert _chain_kernel.choose_knobs(1024, "float32", 90) == (2, 16)
    monkeypatch.setenv("FFTFUSE_CHAIN_KNOBS", "fast")
    with pytest.raises(ValueError, match="FFTFUSE_CHAIN_KNOBS='fast'.*e.g. 32x8"):
        _chain_kernel.choose_knobs(64, "float32", 90)


@needs_mathdx
def test_knobs_measured_on_this_architecture_are_kept_and_taken(tmp_path, monkeypatch):
    from fftfuse_cache import ArtifactStore, default_store

    from nvmath.fft import _chain_knobs, _tuning

    store = default_store()
    _chain_knobs.forget_knobs()
    assert _chain_kernel.choose_knobs(1024, "float32", 90) == _chain_kernel.rule_knobs(1024, "float32", 90) == (2, 16)
    _chain_knobs.keep_knobs(1024, "float32", 90, (4, 16), {"2x16": 0.42, "4x16": 0.41}, store=store)
    assert _chain_kernel.choose_knobs(1024, "float32", 90) == (4, 16)
    _chain_knobs.forget_knobs()  # a new process: read from the store
    assert _chain_kernel.choose_knobs(1024, "float32", 90) == (4, 16)
    assert _chain_kernel.choose_knobs(1024, "float32", 80) == (2, 16)  # another architecture: the rule
    assert _chain_kernel.choose_knobs(1024, "float64", 90) == _chain_kernel.rule_knobs(1024, "float64", 90)
    monkeypatch.setenv("FFTFUSE_CHAIN_KNOBS", "1x16")  # asked for: taken over the measured pair
    assert _chain_kernel.choose_knobs(1024, "float32", 90) == (1, 16)
    monkeypatch.delenv("FFTFUSE_CHAIN_KNOBS")
    # A record of a pair cuFFTDx does not implement (another libmathdx's) is dropped: the rule answers.
    other = ArtifactStore(tmp_path / "cache")
    _chain_knobs.keep_knobs(512, "float32", 90, (1, 3), {}, store=other)
    _chain_knobs.forget_knobs()
    assert _chain_knobs.tuned_knobs(512, "float32", 90, lambda f, e: _chain_kernel.fits_one_kernel(512, "float32", f, e, 90),
                                    store=other) is None
    assert other.get(_chain_knobs.knobs_key(512, "float32", 90)) is None
    _chain_knobs.forget_knobs()
    # What the tuner tries: the rule's pair first, every pair one kernel can launch.
    for n in (16, 64, 1024, 4096):
        pairs = _tuning.candidates(n, "float32", 90)
        assert pairs[0] == _chain_kernel.rule_knobs(n, "float32", 90) and len(pairs) == len(set(pairs)) > 1
        assert all(_chain_kernel.fits_one_kernel(n, "float32", *p, 90) for p in pairs)


@needs_mathdx
def test_knobs_and_scales_and_code_make_the_kernel_key(gpu_ready):
    def config(norm="backward", pointwise=square, shape=(8, 1024)):
        return plan_chain(forward(shape), "cuda", FFTOptions(), norm, None, pointwise, None).kernel

    def cube(v):
        return v * v * v

    assert config() == config() and hash(config()) == hash(config())
    assert config() != config("ortho")  # the scales are constants of the kernel
    assert config() != config(pointwise=cube)
    assert config() == config(shape=(64, 1024))  # the batch is the launch's, not the kernel's


@needs_mathdx
def test_the_source_holds_only_what_the_steps_need(gpu_ready):
    plain = plan_chain(forward(), "cuda", FFTOptions(), None, None, None, None).kernel
    source, scales = _chain_kernel.kernel_source(plain)
    assert "F0" not in source and "F1" not in source and "S1" not in source and scales == (1.0, 1.0)
    assert "t[e] = x[row, k]" in source and "y[row, k] = t[e]" in source
    assert "t[e] = t[e]" not in source  # the identity pass between the transforms is left out
    scaled = plan_chain(forward(), "cuda", FFTOptions(), "backward", None, None, None).kernel
    source, scales = _chain_kernel.kernel_source(scaled)
    assert "t[e] = t[e] * S0" in source and "S1" not in source and scales == (1 / 1024, 1.0)  # one scale
    indexed = plan_chain(forward((2, 3, 1024)), "cuda", FFTOptions(), "backward", None, ramp_3d, None).kernel
    source, scales = _chain_kernel.kernel_source(indexed)
    assert "i1 = r % 3" in source and "F1(t[e], i0, i1, k)" in source and scales == (1.0, 1 / 1024)


def ramp_3d(v, a, b, k):
    return v * (1 + k) / (1 + a + b)


@needs_mathdx
def test_the_kernel_compiles_and_links_with_its_ffts_without_a_gpu(gpu_ready):
    # One compile of the full kernel (libmathdx, numba, nvJitLink: about 10 s on an empty cache).
    w = np.hanning(1024).astype(np.float32)
    steps = dict(prolog={"fn": mul, "data": w}, pointwise=ramp_3d, epilog={"fn": mul, "data": np.ones((2, 3, 1024),
                                                                                                        np.complex64)})
    config, reason = _chain_kernel.kernel_config(forward((2, 3, 1024)), 90, (1.0, 1 / 1024), True, **steps)
    assert reason == "" and [s.data for s in config.steps] == ["row", None, "full"]
    ptx = _chain_kernel.linked_ptx(config, (9, 0))
    assert ".entry" in ptx and ".extern .func" not in ptx  # every cuFFTDx symbol resolved


@needs_mathdx
def test_a_double_precision_kernel_compiles_without_a_gpu(gpu_ready):
    config, reason = _chain_kernel.kernel_config(forward((4, 256), "complex128"), 90, (1.0, 1 / 256), False,
                                                 None, square, None)
    assert reason == "" and config.precision == "float64" and config.dtype == "complex128"
    ptx = _chain_kernel.linked_ptx(config, (9, 0))
    assert ".entry" in ptx and ".extern .func" not in ptx


# -- a real operand: R2C, the pointwise step on the half spectrum, C2R, in the one kernel -------------

def test_each_step_sees_the_shape_of_its_side_of_the_transform():
    assert _chain_kernel.step_shapes(forward((2, 3, 1024), "float32")) == ((2, 3, 1024), (2, 3, 513), (2, 3, 1024))
    assert _chain_kernel.step_shapes(forward((2, 64))) == ((2, 64),) * 3


@needs_mathdx
@pytest.mark.parametrize("dtype,precision", [("float32", "float32"), ("float64", "float64")])
def test_the_planner_takes_one_kernel_for_a_real_operand(gpu_ready, dtype, precision):
    steps = dict(prolog={"fn": mul, "data": GpuData((1024,), dtype)},
                 pointwise={"fn": mul, "data": GpuData((513,), np.complex64)},
                 epilog={"fn": mul, "data": GpuData((8, 1024), dtype)})
    chain = plan_chain(forward(dtype=dtype), "cuda", FFTOptions(), "backward", **steps)
    assert chain.route == "one-kernel" and chain.executor == "cufftdx"
    k = chain.kernel
    assert (k.fft_type, k.length, k.precision, k.dtype, k.spectrum_dtype) == (
        "r2c", 1024, precision, dtype, "complex64" if precision == "float32" else "complex128")
    assert k.spectrum_length == 513 and k.step_lengths() == (1024, 513, 1024)
    assert [s.data for s in k.steps] == ["row", "row", "full"]
    assert k.scales == (1.0, 1 / 1024)  # norm's n is the real side's, as the two plans' is
    text = chain.describe()
    assert "chain R2C/C2R" in text and "route: one-kernel" in text and "cuFFTDx Block r2c/c2r n=1024" in text
    assert "rfft in registers" in text and "irfft in registers" in text
    full_spectrum = dict(steps, pointwise={"fn": mul, "data": GpuData((8, 513), np.complex64)})
    k = plan_chain(forward(dtype=dtype), "cuda", FFTOptions(), "backward", **full_spectrum).kernel
    assert [s.data for s in k.steps] == ["row", "full", "full"]


@needs_mathdx
def test_the_kernel_key_tells_a_real_operand_from_a_complex_one(gpu_ready):
    def config(dtype):
        return plan_chain(forward(dtype=dtype), "cuda", FFTOptions(), "backward", None, square, None).kernel

    real = config("float32")
    assert real.fft_type == "r2c" and config("complex64").fft_type == "c2c"
    assert real == config("float32") and hash(real) == hash(config("float32"))
    assert real != dataclasses.replace(real, fft_type="c2c")  # all else alike: another kernel


@needs_mathdx
def test_a_real_operands_source_holds_real_rows_and_walks_the_half_spectrum(gpu_ready):
    indexed = plan_chain(forward((2, 3, 1024), "float32"), "cuda", FFTOptions(), "backward", None, ramp_3d,
                         None).kernel
    source, scales = _chain_kernel.kernel_source(indexed)
    assert "v = t.view(RT)" in source and "v[e] = x[row, k]" in source and "y[row, k] = v[e]" in source
    assert "for e in range(SE)" in source and "if k < H:" in source
    assert "t[e] = EC(F1(t[e], i0, i1, k)) * S1" in source and scales == (1.0, 1 / 1024)
    layout = _chain_kernel._layout(indexed)
    assert (layout["N"], layout["H"]) == (1024, 513) and layout["SE"] * layout["ST"] >= 513
    plain = plan_chain(forward((8, 1024), "float32"), "cuda", FFTOptions(), None, None, None, None).kernel
    source, _ = _chain_kernel.kernel_source(plain)
    assert "FWD(t, s)\n    INV(t, s)" in source  # nothing between the transforms
    windowed = plan_chain(forward((8, 1024), "float32"), "cuda", FFTOptions(), "backward",
                          {"fn": mul, "data": GpuData((1024,), np.float32)}, None, square).kernel
    source, scales = _chain_kernel.kernel_source(windowed)
    assert "v[e] = E(F0(x[row, k], d0[k]))" in source and "y[row, k] = E(F2(v[e]))" in source
    assert "t[e] = t[e] * S0" in source and scales == (1 / 1024, 1.0)  # one scale, on the spectrum


def window_ramp(v, d, b, k):
    return v * d * (1 + k) / (1 + b)


REAL_KERNELS = [  # (shape, dtype, steps): lengths, precisions, data kinds and forms
    ((37, 16), "float32", dict(pointwise={"fn": mul, "data": np.ones(9, np.complex64)})),
    ((5, 256), "float64", dict(prolog={"fn": mul, "data": np.hanning(256)}, pointwise=ramp,
                               epilog={"fn": window_ramp, "data": np.ones(256)})),
    ((2, 3, 1024), "float32", dict(prolog={"fn": mul, "data": np.ones((2, 3, 1024), np.float32)},
                                   pointwise={"fn": mul, "data": np.ones((2, 3, 513), np.complex64)},
                                   epilog=ramp_3d)),
    ((4, 4096), "float64", dict(pointwise={"fn": window_ramp, "data": np.ones(2049)}, epilog=square)),
]


@needs_mathdx
@pytest.mark.parametrize("shape,dtype,steps", REAL_KERNELS, ids=lambda v: str(v) if isinstance(v, tuple) else None)
def test_a_real_operands_kernel_compiles_and_links_without_a_gpu(gpu_ready, shape, dtype, steps):
    n = shape[-1]
    steps = {k: steps.get(k) for k in ("prolog", "pointwise", "epilog")}
    config, reason = _chain_kernel.kernel_config(forward(shape, dtype), 90, (1.0, 1 / n), dtype == "float32",
                                                 **steps)
    assert reason == "" and config.fft_type == "r2c" and config.dtype == dtype
    for plan, value in zip(config.steps, steps.values()):  # each step's data read as the kind it is
        assert (plan is None) == (value is None) and isinstance(value, dict) == bool(plan and plan.data)
    ptx = _chain_kernel.linked_ptx(config, (9, 0))
    assert ".entry" in ptx and ".extern .func" not in ptx  # the r2c and c2r symbols resolved


# -- the plumbing of FilteredFFT and filtered, with CuPy faked and the kernel recorded -----------------

class RecordingKernel:
    """Stands for ``OneKernel``: records what each run is handed and returns a new array."""

    made: list = []

    def __init__(self, config, device_id):
        self.config, self.device_id, self.runs = config, device_id, []
        RecordingKernel.made.append(self)

    def run(self, operand, data, stream=None):
        import cupy

        self.runs.append((operand, data, stream))
        return cupy.empty(operand.shape, operand.dtype)


@pytest.fixture
def recorded(monkeypatch, gpu_ready, fake_gpu):
    """The fake GPU (with its own plan cache: no fake plan outlives the test) and a kernel that
    records what it is made with."""
    from nvmath.fft import _chain

    monkeypatch.setattr(_planner, "device_arch", lambda device: 90)
    monkeypatch.setattr(_chain, "OneKernel", RecordingKernel)
    monkeypatch.setattr(RecordingKernel, "made", [])
    yield RecordingKernel.made


@needs_mathdx
def test_a_planned_chain_hands_the_kernel_its_operand_and_each_steps_data(recorded):
    import cupy

    from nvmath.fft import FilteredFFT

    x, y = cupy.asarray(np.ones((8, 256), np.complex64)), cupy.asarray(np.zeros((8, 256), np.complex64))
    h = cupy.asarray(np.ones(256, np.complex64))
    with FilteredFFT(x, axes=[-1]) as f:
        f.plan(pointwise={"fn": mul, "data": h}, epilog=square)
        assert f.route == "one-kernel" and len(recorded) == 1 and recorded[0].device_id == 0
        first = f.execute()
        f.reset_operand(y)
        f.execute()
        with pytest.raises(ValueError, match="no runtime parameters"):
            f.set_params(pointwise={"g": 1.0})
    runs = recorded[0].runs
    assert [r[0] is a for r, a in zip(runs, (x, y))] == [True, True]
    assert all(r[1][0] is None and r[1][1] is h and r[1][2] is None for r in runs)
    assert first.shape == x.shape and first is not x


@needs_mathdx
def test_stateless_calls_rerun_one_kernel_with_each_calls_arrays(recorded):
    import cupy

    from nvmath.fft import filtered
    from nvmath.fft._chain import stateless_chains

    calls = [(cupy.asarray(np.ones((8, 256), np.complex64)), cupy.asarray(np.ones(256, np.complex64)))
             for _ in range(3)]
    for x, h in calls:
        filtered(x, axes=[-1], pointwise={"fn": mul, "data": h})
    assert len(recorded) == 1  # planned once, then rerun
    runs = recorded[0].runs
    assert all(r[0] is x and r[1][1] is h for r, (x, h) in zip(runs, calls))
    (kept, _), = stateless_chains.mine().values()
    assert kept._operand is None and kept._kernel_data == (None, None, None)  # holds none of the call's arrays
    filtered(calls[0][0], axes=[-1], pointwise={"fn": mul, "data": calls[0][1]}, route="two-plans")
    assert len(recorded) == 1  # another route: another key, and no kernel


@needs_mathdx
def test_a_planned_real_chain_runs_one_kernel_into_a_real_result(recorded, caplog):
    import logging

    import cupy

    from nvmath.fft import FilteredFFT

    x = cupy.asarray(np.ones((8, 256), np.float32))
    h = cupy.asarray(np.ones(129, np.complex64))
    with FilteredFFT(x, axes=[-1]) as f:
        with caplog.at_level(logging.INFO, logger="fftfuse.fft"):
            f.plan(pointwise={"fn": mul, "data": h}, epilog=square)
        assert any("float32 n=(256,) batch=8 rfft->irfft: route one-kernel on cufftdx" in r.getMessage()
                   for r in caplog.records), caplog.text
        assert f.route == "one-kernel" and recorded[0].config.fft_type == "r2c"
        assert "cuFFTDx Block r2c/c2r n=256" in f.describe()
        got = f.execute()
    (run,) = recorded[0].runs
    assert run[0] is x and run[1][1] is h
    assert got.shape == x.shape and got.dtype == np.float32
