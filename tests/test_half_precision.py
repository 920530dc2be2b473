"""Half precision (float16, complex32) on the CPU and on the fake GPU (benchmarks/fake_gpu.py).

NumPy and CuPy spell complex32 as float16 (real, imaginary) pairs in a last axis of length 2;
PyTorch's complex32 tensors are read as themselves (a small stand-in for PyTorch below checks
the conversions; tests/test_gpu_half_precision.py runs the real thing). Results are compared
with float64 NumPy references: half precision keeps about three decimal digits, so the
tolerance is a relative error of 1e-2 of the reference's norm.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import nvmath
from nvmath.fft import FFT, LayoutError
from nvmath.fft._cufft import CUDA_C_16F, CUDA_C_32F, CUDA_R_16F, CUDA_R_32F

RNG = np.random.default_rng(16)
TOL = 1e-2


def pairs(z: np.ndarray) -> np.ndarray:
    """complex -> float16 (real, imaginary) pairs."""
    return np.stack([z.real, z.imag], axis=-1).astype(np.float16)


def unpair(p: np.ndarray) -> np.ndarray:
    """float16 pairs -> complex128."""
    p = np.asarray(p, dtype=np.float64)
    return p[..., 0] + 1j * p[..., 1]


def crandn(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


# -- R2C, C2C and C2R on the CPU, against float64 ---------------------------------------------

def test_rfft_of_float16_gives_complex32_pairs():
    x = RNG.standard_normal((4, 256)).astype(np.float16)
    y = nvmath.fft.rfft(x, axes=[-1])
    assert y.dtype == np.float16 and y.shape == (4, 129, 2)
    assert rel_err(unpair(y), np.fft.rfft(x.astype(np.float64), axis=-1)) < TOL


@pytest.mark.parametrize("transform", ["fft", "ifft"])
def test_fft_and_ifft_of_float16_pairs(transform):
    p = pairs(crandn(8, 256))
    y = getattr(nvmath.fft, transform)(p, axes=[-1])
    assert y.dtype == np.float16 and y.shape == (8, 256, 2)
    want = np.fft.fft(unpair(p), axis=-1) if transform == "fft" else 256 * np.fft.ifft(unpair(p), axis=-1)
    assert rel_err(unpair(y), want) < TOL


def test_irfft_of_pairs_gives_float16():
    x = RNG.standard_normal((3, 256))
    p = pairs(np.fft.rfft(x, axis=-1) / 16)
    y = nvmath.fft.irfft(p, axes=[-1])
    assert y.dtype == np.float16 and y.shape == (3, 256)
    assert rel_err(y.astype(np.float64), np.fft.irfft(unpair(p), n=256, axis=-1) * 256) < TOL


def test_stateful_fft_type_c2c_reads_pairs_and_c2r_gives_half():
    p = pairs(crandn(2, 64, 32))
    with FFT(p, axes=[0, 1], options={"fft_type": "C2C"}) as f:
        y = f.execute()
    assert y.shape == (2, 64, 32, 2)
    assert rel_err(unpair(y), np.fft.fftn(unpair(p), axes=(0, 1))) < TOL
    spectrum = pairs(np.fft.rfft(RNG.standard_normal((4, 128)), axis=-1) / 8)
    with FFT(spectrum, axes=[-1], options={"fft_type": "C2R"}) as f:
        r = f.execute()
    assert r.dtype == np.float16 and r.shape == (4, 128)


def test_2d_rfft_and_a_real_axis_of_stride_other_than_one():
    x = RNG.standard_normal((64, 32, 3)).astype(np.float16)
    y = nvmath.fft.rfft(x, axes=[0, 1])  # the halved axis (1) is not the innermost: read from a copy
    assert y.shape == (64, 17, 3, 2)
    assert rel_err(unpair(y), np.fft.rfftn(x.astype(np.float64), axes=(0, 1))) < TOL


def test_c2r_over_an_outer_axis():
    spectrum = np.fft.rfft(RNG.standard_normal((128, 5)), axis=0) / 8
    y = nvmath.fft.irfft(pairs(spectrum), axes=[0])
    assert y.dtype == np.float16 and y.shape == (128, 5)
    assert rel_err(y.astype(np.float64), np.fft.irfft(unpair(pairs(spectrum)), n=128, axis=0) * 128) < TOL


def test_inplace_c2c_overwrites_the_pairs():
    p = pairs(crandn(4, 128))
    want = np.fft.fft(unpair(p), axis=-1)
    r = nvmath.fft.fft(p, axes=[-1], options={"inplace": True})
    assert r is p
    assert rel_err(unpair(p), want) < TOL


def test_norm_and_repeated_stateless_calls():
    xs = [RNG.standard_normal((2, 512)).astype(np.float16) for _ in range(3)]
    for x in xs:  # the second and third calls reuse the engine
        y = nvmath.fft.rfft(x, axes=[-1], norm="ortho")
        assert rel_err(unpair(y), np.fft.rfft(x.astype(np.float64), axis=-1, norm="ortho")) < TOL


def test_half_result_matches_single_precision_within_half_tolerance():
    x = RNG.standard_normal((16, 1024)).astype(np.float16)
    half = unpair(nvmath.fft.rfft(x, axes=[-1]))
    single = nvmath.fft.rfft(x.astype(np.float32), axes=[-1])
    assert rel_err(half, single) < 2e-3  # only the final rounding to half differs


# -- callbacks on the CPU: the element in single precision, the result rounded to half -----------

def test_callback_sees_single_precision():
    p = pairs(crandn(4, 256))
    # 70000 is beyond float16's range (65504): in half precision the product would be inf.
    y = nvmath.fft.fft(p, axes=[-1], epilog=lambda v: v * 70000.0 / 70000.0)
    assert np.isfinite(y).all()
    assert rel_err(unpair(y), np.fft.fft(unpair(p), axis=-1)) < TOL


def test_prolog_window_and_epilog_filter_with_data():
    x = RNG.standard_normal((4, 256)).astype(np.float16)
    window = np.hanning(256).astype(np.float32)
    filt = crandn(129).astype(np.complex64)
    y = nvmath.fft.rfft(x, axes=[-1], prolog={"fn": lambda v, w: v * w, "data": window},
                        epilog={"fn": lambda v, f: v * f, "data": filt})
    want = np.fft.rfft(x.astype(np.float64) * window, axis=-1) * filt
    assert rel_err(unpair(y), want) < TOL


def test_stateful_callback_in_cufft_form_reads_offsets_of_the_half_buffer():
    p = pairs(crandn(2, 64))

    def store(data_out, offset, value, user_info, unused):
        data_out[offset] = value * user_info[offset]

    scale = np.linspace(0.5, 1.5, 128).astype(np.float32)
    with FFT(p, axes=[-1], options={"fft_type": "C2C"}) as f:  # without it, FFT reads float16 as real
        f.plan(epilog={"fn": store, "data": scale})
        y = f.execute()
    assert rel_err(unpair(y), np.fft.fft(unpair(p), axis=-1) * scale.reshape(2, 64)) < TOL


def test_reset_operand_takes_new_pairs():
    a, b = pairs(crandn(4, 128)), pairs(crandn(4, 128))
    with FFT(a, axes=[-1], options={"fft_type": "C2C"}) as f:
        f.plan(epilog=lambda v: v * 2)
        first = f.execute()
        f.reset_operand(b)
        second = f.execute()
        with pytest.raises(ValueError, match="reset_operand needs an operand like the planned one"):
            f.reset_operand(b[..., :64, :])
    assert rel_err(unpair(first), 2 * np.fft.fft(unpair(a), axis=-1)) < TOL
    assert rel_err(unpair(second), 2 * np.fft.fft(unpair(b), axis=-1)) < TOL


def test_debug_mode_runs_the_callback_in_python_on_single_precision_elements():
    seen = []

    def epilog(v):
        seen.append(type(v).__name__)
        return v * 2

    p = pairs(crandn(2, 16))
    y = nvmath.fft.fft(p, axes=[-1], epilog=epilog, options={"debug": True})
    assert set(seen) == {"complex64"}
    assert rel_err(unpair(y), 2 * np.fft.fft(unpair(p), axis=-1)) < TOL


# -- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize("call, lengths", [
    (lambda: nvmath.fft.rfft(np.ones((4, 100), np.float16), axes=[-1]), "(100,)"),
    (lambda: nvmath.fft.fft(pairs(crandn(96)), axes=[0]), "(96,)"),
    (lambda: nvmath.fft.irfft(pairs(crandn(6)), axes=[0]), "(10,)"),  # output length 2 * (6 - 1)
    (lambda: nvmath.fft.rfft(np.ones((12, 16), np.float16), axes=[0, 1]), "(12, 16)"),
])
def test_lengths_other_than_powers_of_two_are_refused(call, lengths):
    with pytest.raises(LayoutError, match=rf"power-of-two lengths.*{lengths.replace('(', '[(]').replace(')', '[)]')}"):
        call()


def test_odd_length_error_suggests_the_padded_length():
    with pytest.raises(LayoutError, match="e.g. 128.*float32"):
        nvmath.fft.rfft(np.ones(100, np.float16))


@pytest.mark.parametrize("shape", [(4, 256), (4, 256, 3)])
def test_fft_of_float16_needs_pairs(shape):
    with pytest.raises(LayoutError, match="float16 pairs in a last axis of length 2.*rfft"):
        nvmath.fft.fft(np.ones(shape, np.float16), axes=[1])


def test_pairs_must_be_adjacent():
    p = np.ones((2, 64, 4), np.float16)[..., ::2]  # last axis of length 2, but stride 2 elements
    with pytest.raises(LayoutError, match="unit stride"):
        nvmath.fft.fft(p, axes=[1])


def test_float16_callback_data_is_still_refused():
    p = pairs(crandn(64))
    with pytest.raises(TypeError, match="float16"):
        nvmath.fft.fft(p, axes=[0], epilog={"fn": lambda v, d: v * d, "data": np.ones(64, np.float16)})


def test_bfloat16_is_still_refused():
    from nvmath.fft._tensor import as_tensor

    fake = type("Tensor", (), {"__module__": "torch", "dtype": "torch.bfloat16"})
    with pytest.raises(TypeError, match="bfloat16.*float16"):
        as_tensor(fake())


# -- PyTorch complex32 and float16 (a stand-in for torch: only the calls the library makes) ------

class _FakeTorchTensor:
    __module__ = "torch"

    def __init__(self, array: np.ndarray, dtype: str):
        self.array, self.dtype = array, f"torch.{dtype}"
        self.device = types.SimpleNamespace(type="cpu", index=None)
        self.requires_grad = False

    def detach(self):
        return self

    def numpy(self):
        return self.array


@pytest.fixture
def torch(monkeypatch):
    fake = types.ModuleType("torch")
    fake.view_as_real = lambda t: _FakeTorchTensor(t.array, "float16")
    fake.view_as_complex = lambda t: _FakeTorchTensor(t.array, "complex32")
    fake.from_numpy = lambda a: _FakeTorchTensor(a, a.dtype.name)
    monkeypatch.setitem(sys.modules, "torch", fake)
    return fake


def test_torch_complex32_in_and_out(torch):
    p = pairs(crandn(4, 128))
    y = nvmath.fft.fft(_FakeTorchTensor(p, "complex32"), axes=[-1])
    assert isinstance(y, _FakeTorchTensor) and y.dtype == "torch.complex32"
    assert rel_err(unpair(y.array), np.fft.fft(unpair(p), axis=-1)) < TOL


def test_torch_float16_rfft_gives_complex32_and_fft_promotes(torch):
    x = RNG.standard_normal((2, 64)).astype(np.float16)
    y = nvmath.fft.rfft(_FakeTorchTensor(x, "float16"), axes=[-1])
    assert y.dtype == "torch.complex32" and y.array.shape == (2, 33, 2)
    assert rel_err(unpair(y.array), np.fft.rfft(x.astype(np.float64), axis=-1)) < TOL
    # A real torch.float16 operand of fft() is real data, promoted to complex32 (as float32 is).
    z = nvmath.fft.fft(_FakeTorchTensor(x, "float16"), axes=[-1])
    assert z.dtype == "torch.complex32"
    assert rel_err(unpair(z.array), np.fft.fft(x.astype(np.float64), axis=-1)) < TOL


def test_torch_complex32_callback_data_is_refused(torch):
    p = pairs(crandn(64))
    with pytest.raises(TypeError, match="complex32.*callbacks cannot read.*complex64"):
        nvmath.fft.fft(p, axes=[0], epilog={"fn": lambda v, d: v * d, "data": _FakeTorchTensor(p, "complex32")})


# -- the fake GPU: cuFFT's half types, and what is refused before cuFFT ------------------------

def device(array: np.ndarray):
    return sys.modules["cupy"].asarray(array)


@pytest.mark.parametrize("transform, operand, types_, out_shape", [
    ("rfft", lambda: np.ones((4, 256), np.float16), (CUDA_R_16F, CUDA_C_16F, CUDA_C_16F), (4, 129, 2)),
    ("fft", lambda: pairs(crandn(4, 256)), (CUDA_C_16F, CUDA_C_16F, CUDA_C_16F), (4, 256, 2)),
    ("ifft", lambda: pairs(crandn(4, 256)), (CUDA_C_16F, CUDA_C_16F, CUDA_C_16F), (4, 256, 2)),
    ("irfft", lambda: pairs(crandn(4, 129)), (CUDA_C_16F, CUDA_R_16F, CUDA_C_16F), (4, 256)),
])
def test_cufft_plans_half_types(fake_gpu, transform, operand, types_, out_shape):
    x = device(operand())
    y = getattr(nvmath.fft, transform)(x, axes=[-1])
    plan = fake_gpu.plans[-1]
    assert (plan["input_type"], plan["output_type"], plan["execution_type"]) == types_
    assert plan["shape"] == (256,) and plan["batch"] == 4  # the logical (real-side) length
    assert y.shape == out_shape and y.dtype == np.float16
    launch = fake_gpu.launches[-1]
    assert launch.output == y.data.ptr
    assert (launch.input == x.data.ptr) == (transform != "irfft")  # cuFFT's C2R overwrites: it reads a copy


def test_cufft_half_r2c_reads_and_c2r_writes_the_real_side_at_unit_stride(fake_gpu):
    nvmath.fft.rfft(device(np.ones((256, 4), np.float16)), axes=[0])
    assert fake_gpu.plans[-1]["istride"] == 1
    y = nvmath.fft.irfft(device(pairs(crandn(129, 4))), axes=[0])
    assert fake_gpu.plans[-1]["ostride"] == 1 and y.shape == (256, 4)


def computing(fake, monkeypatch):
    """Make the fake cuFFT transform: a 1-D C2C plan of dense rows (complex64) computes NumPy's FFT
    from its input address to its output address (its callbacks are not applied)."""
    import fake_gpu as fake_module
    from nvmath.fft import _cufft

    plans, launch = {}, _cufft.xt_exec  # the fake's, which records the launch

    def exec_(plan, inp, out, direction):
        launch(plan, inp, out, direction)
        record = plans.get(plan) or next(r for r in reversed(fake.plans) if r["handle"] == plan)
        plans[plan] = record
        assert record["input_type"] == record["output_type"] == CUDA_C_32F and record["istride"] == 1
        n, batch = record["shape"][0], record["batch"]
        x = fake_module.read(inp, np.complex64, n * batch).reshape(batch, n)
        y = (np.fft.fft(x, axis=-1) if direction == -1 else n * np.fft.ifft(x, axis=-1)).astype(np.complex64)
        mem = fake_module.Memory.live[out >> 32 << 32]
        at = out - mem.address
        mem.host[at:at + y.nbytes] = y.view(np.uint8).reshape(-1)

    monkeypatch.setattr(_cufft, "xt_exec", exec_)


@pytest.mark.parametrize("kwargs", [{"epilog": lambda v: v * 2}, {"prolog": lambda v: v * 2}, {"norm": "ortho"}])
def test_callbacks_on_a_half_gpu_fft_run_its_single_precision_twin(fake_gpu, monkeypatch, kwargs):
    computing(fake_gpu, monkeypatch)
    p = pairs(crandn(4, 64))
    x = device(p)
    y = nvmath.fft.fft(x, axes=[-1], **kwargs)
    plan = fake_gpu.plans[-1]
    assert (plan["input_type"], plan["output_type"], plan["execution_type"]) == (CUDA_C_32F,) * 3
    launch = fake_gpu.launches[-1]
    assert list(launch.caller_info) == [0 if "prolog" in kwargs else 4]  # LD_COMPLEX / ST_COMPLEX
    assert launch.input != x.data.ptr and launch.output != y.data.ptr  # single-precision copies
    assert y.shape == (4, 64, 2) and y.dtype == np.float16
    # The fake cuFFT applies no callback: what comes back is the FFT of the promoted input, rounded.
    want = np.fft.fft(unpair(p).astype(np.complex64), axis=-1)
    assert np.array_equal(y.get(), pairs(want))


def test_r2c_prolog_on_the_gpu_is_a_single_precision_real_load(fake_gpu):
    nvmath.fft.rfft(device(np.ones((4, 64), np.float16)), axes=[-1], prolog=lambda v: v * 2)
    plan = fake_gpu.plans[-1]
    assert (plan["input_type"], plan["output_type"]) == (CUDA_R_32F, CUDA_C_32F)
    assert list(fake_gpu.launches[-1].caller_info) == [2]  # LD_REAL


def test_a_stateful_half_fft_on_the_gpu_with_a_callback_keeps_the_operand(fake_gpu, monkeypatch):
    computing(fake_gpu, monkeypatch)
    p = pairs(crandn(2, 32))
    x = device(p)
    with FFT(x, axes=[-1], options={"fft_type": "C2C", "inplace": True}) as f:
        f.plan(epilog=lambda v: v)
        r = f.execute()
    assert r is x
    assert np.array_equal(x.get(), pairs(np.fft.fft(unpair(p).astype(np.complex64), axis=-1)))


def test_norm_that_scales_nothing_keeps_cuffts_half_types(fake_gpu):
    x = device(pairs(crandn(4, 64)))
    nvmath.fft.fft(x, axes=[-1], norm="backward")  # forward with "backward": no scale, no callback
    assert fake_gpu.plans[-1]["input_type"] == CUDA_C_16F


def test_gpu_older_than_sm53_is_refused(fake_gpu, monkeypatch):
    monkeypatch.setattr(sys.modules["cupy"].cuda.Device, "compute_capability", "52")
    with pytest.raises(ValueError, match="compute capability 5.3.*sm_52"):
        nvmath.fft.rfft(device(np.ones((4, 64), np.float16)), axes=[-1])


def test_host_float16_operand_on_the_gpu_comes_back_as_numpy(fake_gpu):
    y = nvmath.fft.rfft(np.ones((4, 64), np.float16), axes=[-1], execution="cuda")
    assert isinstance(y, np.ndarray) and y.dtype == np.float16 and y.shape == (4, 33, 2)
    assert fake_gpu.plans[-1]["input_type"] == CUDA_R_16F


# -- what is not transformed in half precision yet ------------------------------------------------

def test_dask_float16_is_refused_with_the_reason():
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="half-precision.*Dask.*astype"):
        nvmath.fft.rfft(da.ones((4, 64), dtype=np.float16, chunks=(2, 64)), axes=[-1])


def test_filtered_chain_of_float16():
    x = RNG.standard_normal((4, 256)).astype(np.float16)
    gain = np.linspace(0, 1, 129).astype(np.complex64)
    y = nvmath.fft.filtered(x, axes=[-1], pointwise={"fn": lambda v, g: v * g, "data": gain})
    want = np.fft.irfft(np.fft.rfft(x.astype(np.float64), axis=-1) * gain, n=256, axis=-1)
    assert y.dtype == np.float16 and y.shape == (4, 256)
    assert rel_err(y.astype(np.float64), want) < TOL
