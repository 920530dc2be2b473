"""An operand in another memory space than the execution space (CuPy faked, benchmarks/fake_gpu.py):
a GPU operand with ``execution="cpu"`` is copied to the host, transformed there with its callbacks
(their GPU data copied too), and its result comes back to its GPU, in the order of the call's
stream; ``reset_operand`` keeps the memory space. Results against float64 NumPy references on
random inputs; the host operand run on the GPU keeps returning NumPy."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import fake_gpu as fake_module
import nvmath
from helpers import rand
from nvmath.fft import ExecutionCPU, FFT, FilteredFFT, filtered

CPU_FORMS = ["cpu", {"name": "cpu", "num_threads": 1}, ExecutionCPU(num_threads=1), {"name": "CPU"}]


@pytest.fixture
def copies(fake_gpu, monkeypatch):
    """Every copy between host and (fake) device: (direction, device, stream handle current then)."""
    log = []
    cupy = sys.modules["cupy"]
    get, asarray = fake_module.ndarray.get, cupy.asarray

    def stream_now():
        return cupy.cuda.get_current_stream().ptr

    def logged_get(self, *args, **kwargs):
        log.append(("to-host", cupy.cuda.runtime.getDevice(), stream_now()))
        return get(self, *args, **kwargs)

    def logged_asarray(obj, dtype=None):
        if not isinstance(obj, fake_module.ndarray):
            log.append(("to-device", cupy.cuda.runtime.getDevice(), stream_now()))
        return asarray(obj, dtype)

    monkeypatch.setattr(fake_module.ndarray, "get", logged_get)
    monkeypatch.setattr(cupy, "asarray", logged_asarray)
    return log


def on_device(host, device=0):
    cupy = sys.modules["cupy"]
    with cupy.cuda.Device(device):
        return cupy.asarray(host)


def check(got, want, dtype, device=0):
    """``got`` is a (fake) CuPy array on ``device`` holding ``want`` to the precision of ``dtype``."""
    assert type(got).__module__ == "cupy" and got.device.id == device, (type(got), getattr(got, "device", None))
    host = got.get()
    assert host.dtype == np.dtype(dtype) and host.shape == want.shape, (host.dtype, host.shape, want.shape)
    single = np.dtype(dtype) in (np.complex64, np.float32)
    err = np.abs(host.astype(np.complex128) - want).max() / max(np.abs(want).max(), 1e-300)
    assert err < (3e-6 if single else 1e-12), err


# -- stateless ------------------------------------------------------------------------------------

@pytest.mark.parametrize("execution", CPU_FORMS, ids=["str", "dict", "ExecutionCPU", "dict-upper"])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_stateless_c2c_of_a_gpu_operand_runs_on_the_host_and_returns_to_the_gpu(fake_gpu, execution, dtype):
    h = rand((6, 40), dtype, 1)
    x = on_device(h)
    ref = np.fft.fft(h.astype(np.complex128), axis=-1)
    check(nvmath.fft.fft(x, axes=[-1], execution=execution), ref, dtype)
    check(nvmath.fft.ifft(x, axes=[-1], execution=execution), np.fft.ifft(h.astype(np.complex128), axis=-1) * 40,
          dtype)
    assert fake_gpu.launch_count == 0  # nothing reached cuFFT
    np.testing.assert_array_equal(x.get(), h)  # the operand is untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stateless_r2c_and_c2r_of_gpu_operands(fake_gpu, dtype):
    h = rand((5, 30), dtype, 2)
    x = on_device(h)
    complex_dtype = np.result_type(dtype, np.complex64)
    check(nvmath.fft.rfft(x, axes=[-1], execution="cpu"), np.fft.rfft(h.astype(np.float64), axis=-1),
          complex_dtype)
    spectrum = rand((5, 16), complex_dtype, 3)
    spectrum[:, 0] = spectrum[:, 0].real
    spectrum[:, -1] = spectrum[:, -1].real
    got = nvmath.fft.irfft(on_device(spectrum), axes=[-1], execution="cpu")
    check(got, np.fft.irfft(spectrum.astype(np.complex128), n=30, axis=-1) * 30, dtype)
    got = nvmath.fft.irfft(on_device(spectrum), axes=[-1], execution="cpu", options={"last_axis_parity": "odd"})
    check(got, np.fft.irfft(spectrum.astype(np.complex128), n=31, axis=-1) * 31, dtype)


@pytest.mark.parametrize("axes", [None, [0, 1], [1, 2], [-1]])
def test_n_d_transforms_and_strided_gpu_operands(fake_gpu, axes):
    h = rand((4, 6, 10), np.complex128, 4)
    x = on_device(h)
    numpy_axes = tuple(range(3)) if axes is None else tuple(axes)
    check(nvmath.fft.fft(x, axes=axes, execution="cpu"), np.fft.fftn(h, axes=numpy_axes), np.complex128)
    view = on_device(rand((4, 6, 20), np.complex128, 5))[:, :, ::2]  # not dense: the host copy is
    check(nvmath.fft.fft(view, axes=axes, execution="cpu"), np.fft.fftn(view.get(), axes=numpy_axes), np.complex128)
    real = rand((4, 6, 10), np.float64, 6)
    check(nvmath.fft.rfft(on_device(real), axes=axes, execution="cpu"), np.fft.rfftn(real, axes=numpy_axes),
          np.complex128)


def test_the_result_goes_back_to_the_operands_device(fake_gpu):
    h = rand((3, 32), np.complex64, 7)
    x = on_device(h, device=1)
    check(nvmath.fft.fft(x, axes=[-1], execution="cpu", norm="ortho"),
          np.fft.fft(h.astype(np.complex128), axis=-1, norm="ortho"), np.complex64, device=1)


def test_direction_and_norm(fake_gpu):
    h = rand((3, 24), np.complex128, 8)
    x = on_device(h)
    check(nvmath.fft.fft(x, axes=[-1], execution="cpu", direction="inverse", norm="backward"),
          np.fft.ifft(h, axis=-1), np.complex128)


def test_inplace_writes_the_result_into_the_gpu_operand(fake_gpu):
    h = rand((4, 16), np.complex64, 9)
    x = on_device(h)
    got = nvmath.fft.fft(x, axes=[-1], execution="cpu", options={"inplace": True}, epilog=lambda v: v * 2)
    assert got is x
    check(x, 2 * np.fft.fft(h.astype(np.complex128), axis=-1), np.complex64)


# -- callbacks, their data on the GPU --------------------------------------------------------------

def mul(v, d):
    return v * d


def window_then_gain(v, w, *, g):
    return v * w * g


@pytest.mark.parametrize("dtype", [np.complex64, np.float64])
def test_callbacks_with_gpu_data_run_on_the_host(fake_gpu, dtype):
    h = rand((4, 32), dtype, 10)
    x = on_device(h)
    complex_dtype = np.result_type(dtype, np.complex64)
    transform = nvmath.fft.fft if np.dtype(dtype).kind == "c" else nvmath.fft.rfft
    numpy_transform = np.fft.fft if np.dtype(dtype).kind == "c" else np.fft.rfft
    w = rand((32,), dtype, 11)  # broadcasts along the batch
    m = 32 if np.dtype(dtype).kind == "c" else 17
    f = rand((4, m), complex_dtype, 12)
    got = transform(x, axes=[-1], execution="cpu",
                    prolog={"fn": window_then_gain, "data": on_device(w), "params": {"g": 3.0}},
                    epilog={"fn": mul, "data": on_device(f)})
    want = numpy_transform(h.astype(np.float64 if dtype == np.float64 else np.complex128) * w * 3.0, axis=-1) * f
    check(got, want, complex_dtype)


def test_callback_data_on_another_gpu_or_the_host_is_used_too(fake_gpu):
    h = rand((2, 16), np.complex128, 13)
    f = rand((16,), np.complex128, 14)
    want = np.fft.fft(h, axis=-1) * f
    for data in (on_device(f, device=1), f):
        check(nvmath.fft.fft(on_device(h), axes=[-1], execution="cpu", epilog={"fn": mul, "data": data}), want,
              np.complex128)


def test_a_host_operand_on_the_cpu_reads_gpu_data_from_a_host_copy(fake_gpu):
    h = rand((2, 16), np.complex128, 15)
    f = rand((2, 16), np.complex128, 16)
    got = nvmath.fft.fft(h, axes=[-1], execution="cpu", epilog={"fn": mul, "data": on_device(f)})
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, np.fft.fft(h, axis=-1) * f, rtol=1e-12, atol=1e-12)


def test_cuda_form_callbacks_of_a_gpu_operand_run_on_the_host(fake_gpu):
    def by_offset(data_out, offset, element, user_info, unused):
        data_out[offset] = element * user_info[offset]

    h, f = rand((3, 8), np.complex64, 17), rand((3, 8), np.complex64, 18)
    got = nvmath.fft.fft(on_device(h), axes=[-1], execution="cpu", epilog={"fn": by_offset, "data": on_device(f)})
    check(got, np.fft.fft(h.astype(np.complex128), axis=-1) * f, np.complex64)


# -- stateful ------------------------------------------------------------------------------------

def test_stateful_plan_execute_reset_operand_and_free(fake_gpu):
    hs = [rand((4, 48), np.complex64, s) for s in (20, 21)]
    f = rand((48,), np.complex64, 22)
    with FFT(on_device(hs[0]), axes=[-1], execution=ExecutionCPU(num_threads=1)) as engine:
        engine.plan(epilog={"fn": mul, "data": on_device(f)})
        check(engine.execute(), np.fft.fft(hs[0].astype(np.complex128), axis=-1) * f, np.complex64)
        check(engine.execute(direction="inverse"), np.fft.ifft(hs[0].astype(np.complex128), axis=-1) * 48 * f,
              np.complex64)
        x1 = on_device(hs[1])
        engine.reset_operand(x1)
        assert engine.operand is x1
        check(engine.execute(), np.fft.fft(hs[1].astype(np.complex128), axis=-1) * f, np.complex64)
        engine.reset_operand(None)
        with pytest.raises(RuntimeError, match="reset_operand"):
            engine.execute()
        engine.reset_operand(on_device(hs[0]))
        check(engine.execute(), np.fft.fft(hs[0].astype(np.complex128), axis=-1) * f, np.complex64)
    with pytest.raises(RuntimeError, match="freed"):
        engine.execute()


def test_stateful_execute_without_plan_and_the_key(fake_gpu):
    h = rand((2, 20), np.float32, 23)
    engine = FFT(on_device(h), axes=[-1], execution="cpu")
    check(engine.execute(), np.fft.rfft(h.astype(np.float64), axis=-1), np.complex64)
    key = engine.get_key()
    assert key == FFT.create_key(on_device(h), axes=[-1], execution="cpu")
    assert key != FFT.create_key(h, axes=[-1], execution="cpu")  # another memory space, another key
    assert key != FFT.create_key(on_device(h), axes=[-1])  # another execution space
    engine.free()


def test_stateful_inplace_keeps_writing_into_the_operand(fake_gpu):
    h = rand((3, 16), np.complex128, 24)
    x = on_device(h)
    with FFT(x, axes=[-1], execution="cpu", options={"inplace": True}) as engine:
        engine.plan()
        assert engine.execute() is x
        check(x, np.fft.fft(h, axis=-1), np.complex128)
        assert engine.execute(direction="inverse") is x
        check(x, h * 16, np.complex128)


def test_the_debug_mode_runs_gpu_operands_through_the_same_crossing(fake_gpu):
    h, f = rand((3, 16), np.complex128, 25), rand((16,), np.complex128, 26)
    x = on_device(h)
    check(nvmath.fft.fft(x, axes=[-1], options={"debug": True}, epilog={"fn": mul, "data": on_device(f)}),
          np.fft.fft(h, axis=-1) * f, np.complex128)
    with FFT(x, axes=[-1], options={"debug": True}, stream=sys.modules["cupy"].cuda.Stream()) as engine:
        engine.plan(prolog=lambda v: v * 2)
        check(engine.execute(), 2 * np.fft.fft(h, axis=-1), np.complex128)


# -- streams ---------------------------------------------------------------------------------------

def test_copies_are_ordered_on_the_calls_stream(fake_gpu, copies):
    cupy = sys.modules["cupy"]
    h = rand((2, 16), np.complex64, 27)
    x = on_device(h, device=1)
    copies.clear()
    s = cupy.cuda.Stream()
    check(nvmath.fft.fft(x, axes=[-1], execution="cpu", stream=s), np.fft.fft(h.astype(np.complex128), axis=-1),
          np.complex64, device=1)
    assert copies[:2] == [("to-host", 1, s.ptr), ("to-device", 1, s.ptr)]
    copies.clear()
    with cupy.cuda.Device(1), cupy.cuda.Stream() as current:  # no stream: the current one
        nvmath.fft.fft(x, axes=[-1], execution="cpu")
    assert copies[:2] == [("to-host", 1, current.ptr), ("to-device", 1, current.ptr)]
    copies.clear()
    nvmath.fft.fft(x, axes=[-1], execution="cpu", stream=4321)  # a raw cudaStream_t
    assert copies[:2] == [("to-host", 1, 4321), ("to-device", 1, 4321)]
    copies.clear()
    torch_like = types.SimpleNamespace(cuda_stream=5555)  # what a PyTorch stream offers
    nvmath.fft.fft(x, axes=[-1], execution="cpu", stream=torch_like)
    assert copies[:2] == [("to-host", 1, 5555), ("to-device", 1, 5555)]


def test_a_stateful_fft_orders_each_copy_on_its_calls_stream(fake_gpu, copies):
    cupy = sys.modules["cupy"]
    h, f = rand((2, 16), np.complex64, 28), rand((2, 16), np.complex64, 29)
    made, planned, executed, reset = (cupy.cuda.Stream() for _ in range(4))
    x, d, x2 = on_device(h), on_device(f), on_device(h)
    copies.clear()
    with FFT(x, axes=[-1], execution="cpu", stream=made) as engine:
        engine.plan(epilog={"fn": mul, "data": d}, stream=planned)
        engine.execute(stream=executed)
        engine.execute()  # the FFT's own stream
        engine.reset_operand(x2, stream=reset)
    assert copies == [("to-host", 0, made.ptr), ("to-host", 0, planned.ptr), ("to-device", 0, executed.ptr),
                      ("to-device", 0, made.ptr), ("to-host", 0, reset.ptr)]


def test_a_host_operand_on_the_gpu_returns_numpy_and_copies_on_the_stream(fake_gpu, copies):
    cupy = sys.modules["cupy"]
    h = rand((4, 32), np.complex64, 30)
    s = cupy.cuda.Stream()
    copies.clear()
    got = nvmath.fft.fft(h, axes=[-1], execution="cuda", stream=s, epilog=lambda v: v * 2)
    assert isinstance(got, np.ndarray) and got.shape == h.shape and got.dtype == np.complex64
    assert len(fake_gpu.launches) == 1 and fake_gpu.launches[0].stream == s.ptr
    assert copies == [("to-device", 0, s.ptr), ("to-host", 0, s.ptr)]
    with FFT(h, axes=[-1], execution={"name": "cuda", "device_id": 1}) as engine:
        assert isinstance(engine.execute(), np.ndarray)
        assert fake_gpu.launches[-1].device == 1
        engine.reset_operand(rand((4, 32), np.complex64, 31))
        assert isinstance(engine.execute(), np.ndarray)
    got = filtered(h, execution="cuda", pointwise=lambda v: v * 2)
    assert isinstance(got, np.ndarray) and got.shape == h.shape


# -- chains ----------------------------------------------------------------------------------------

def chain_reference(h, pointwise=None, prolog=None, epilog=None):
    real = h.dtype.kind == "f"
    a = h.astype(np.float64 if real else np.complex128)
    a = prolog(a) if prolog else a
    spectrum = np.fft.rfft(a, axis=-1) if real else np.fft.fft(a, axis=-1)
    spectrum = pointwise(spectrum) if pointwise else spectrum
    y = np.fft.irfft(spectrum, n=h.shape[-1], axis=-1) if real else np.fft.ifft(spectrum, axis=-1)
    return epilog(y) if epilog else y


@pytest.mark.parametrize("dtype", [np.complex64, np.float64])
def test_chains_of_a_gpu_operand_run_on_the_host(fake_gpu, dtype, copies):
    h = rand((4, 32), dtype, 32)
    m = 32 if np.dtype(dtype).kind == "c" else 17
    f = rand((m,), np.result_type(dtype, np.complex64), 33)
    w = rand((32,), dtype, 34)
    want = chain_reference(h, lambda s: s * f, lambda a: a * w, lambda y: y * 0.5)
    steps = dict(prolog={"fn": mul, "data": on_device(w)}, pointwise={"fn": mul, "data": on_device(f)},
                 epilog=lambda v: v * 0.5)
    x = on_device(h)
    copies.clear()
    got = filtered(x, axes=[-1], execution="cpu", **steps)
    assert [c[0] for c in copies] == ["to-host"] * 3 + ["to-device"]  # operand and two data arrays in, result out
    check(got, want, dtype)
    with FilteredFFT(on_device(h), axes=[-1], execution=ExecutionCPU(num_threads=1)) as chain:
        chain.plan(**steps)
        assert chain.chain_plan.executor == "cpu"
        check(chain.execute(), want, dtype)
        h2 = rand((4, 32), dtype, 35)
        chain.reset_operand(on_device(h2))
        check(chain.execute(), chain_reference(h2, lambda s: s * f, lambda a: a * w, lambda y: y * 0.5), dtype)
        with pytest.raises(ValueError, match="memory space"):
            chain.reset_operand(h2)
    assert fake_gpu.launch_count == 0


def test_a_chain_orders_its_copies_on_the_stream(fake_gpu, copies):
    cupy = sys.modules["cupy"]
    h = rand((2, 16), np.complex128, 36)
    s = cupy.cuda.Stream()
    x = on_device(h)
    copies.clear()
    got = filtered(x, execution="cpu", stream=s, pointwise=lambda v: v * 2)
    assert copies == [("to-host", 0, s.ptr), ("to-device", 0, s.ptr)]
    check(got, 2 * h, np.complex128)


# -- what is refused, and how ---------------------------------------------------------------------

def test_reset_operand_keeps_the_memory_space_and_device(fake_gpu):
    h = rand((2, 16), np.complex64, 37)
    with FFT(on_device(h), axes=[-1], execution="cpu") as engine:
        with pytest.raises(ValueError, match=r"in GPU 0 .*got one in host memory.*create a new FFT"):
            engine.reset_operand(h)
        with pytest.raises(ValueError, match=r"in GPU 0 .*got one in GPU 1"):
            engine.reset_operand(on_device(h, device=1))
        with pytest.raises(ValueError, match=r"shape \(2, 16\)"):  # the right space, the wrong layout
            engine.reset_operand(on_device(rand((2, 8), np.complex64, 38)))
    with FFT(h, axes=[-1], execution="cuda") as engine:  # the other way round
        with pytest.raises(ValueError, match=r"in host memory .*got one in GPU 0"):
            engine.reset_operand(on_device(h))
    with FFT(on_device(h), axes=[-1]) as engine:  # the same space, as before
        with pytest.raises(ValueError, match=r"in GPU 0 .*got one in host memory"):
            engine.reset_operand(h)


@pytest.mark.parametrize("epilog, message", [
    ({"ltoir": b"\0" * 8}, "LTO-IR runs only on the GPU"),
    ({"source": "__device__ float2 f(float2 v) { return v; }"}, "CUDA C\\+\\+ callbacks run only on the GPU"),
])
def test_gpu_only_callback_forms_say_so_for_a_gpu_operand_on_the_cpu(fake_gpu, epilog, message):
    with pytest.raises(ValueError, match=message):
        nvmath.fft.fft(on_device(rand((2, 8), np.complex64, 39)), execution="cpu", epilog=epilog)


def test_streams_are_still_checked(fake_gpu):
    x = on_device(rand((2, 8), np.complex64, 40))
    with pytest.raises(ValueError, match="stream=-1 is not a cudaStream_t"):
        nvmath.fft.fft(x, execution="cpu", stream=-1)
    with pytest.raises(TypeError, match="stream of type str"):
        FFT(x, execution="cpu").execute(stream="s")
    with pytest.raises(ValueError, match="stream=5 was given, but this FFT runs on the CPU"):
        nvmath.fft.fft(rand((2, 8), np.complex64, 41), execution="cpu", stream=5)  # a host operand: no stream


def test_a_host_operand_on_the_gpu_still_refuses_host_callback_data(fake_gpu):
    h = rand((2, 8), np.complex64, 42)
    with pytest.raises(ValueError, match="host memory but the FFT runs on GPU 0"):
        nvmath.fft.fft(h, execution="cuda", epilog={"fn": mul, "data": h})


def test_dask_keeps_its_own_rule_chunks_live_where_they_run():
    da = pytest.importorskip("dask.array")
    x = da.from_array(rand((4, 16), np.complex128, 43), chunks=(2, 16))
    with pytest.raises(ValueError, match="NumPy chunks runs on the CPU"):
        nvmath.fft.fft(x, axes=[-1], execution="cuda")
    np.testing.assert_allclose(nvmath.fft.fft(x, axes=[-1], execution="cpu").compute(),
                               np.fft.fft(x.compute(), axis=-1), rtol=1e-12, atol=1e-12)
