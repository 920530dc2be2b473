"""Device FFTs (cuFFTDx) run inside numba-cuda kernels, checked against NumPy in float64."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import half_kernels
from helpers import rand

pytestmark = pytest.mark.gpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _error(got, ref):
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


def _fresh_process(argv, cache_dir, extra_env=None):
    env = dict(os.environ, FFTFUSE_CACHE_DIR=str(cache_dir), PYTHONPATH=os.pathsep.join(
        filter(None, [ROOT, os.environ.get("PYTHONPATH", "")])))
    env.update(extra_env or {})
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout


def test_convolution_example_as_written_cold_then_warm(tmp_path):
    # The example written with fft(...), FFT_fwd(thread_data, shared_mem) and cuda.jit(link=...).
    example = os.path.join(ROOT, "examples", "device_fft_convolution.py")
    for _ in range(2):  # the second process links nothing: the cache has the kernel
        assert "L2 error" in _fresh_process([example], tmp_path)


_CACHE_PROBE = r"""
import json, sys
import numpy as np
from numba import cuda
from nvmath.device import FFT
from fftfuse_compiler import kernel_cache
SCALE = float(sys.argv[1])
direction = sys.argv[2]
fft = FFT(64, np.float32, "c2c", "Block", direction=direction, ffts_per_block=1, elements_per_thread=4)
@cuda.jit
def k(x):
    t = cuda.local.array(fft.storage_size, fft.value_type)
    s = cuda.shared.array(0, fft.value_type)
    for i in range(fft.elements_per_thread):
        t[i] = x[cuda.threadIdx.x + i * fft.stride]
    fft.execute(t, s)
    for i in range(fft.elements_per_thread):
        x[cuda.threadIdx.x + i * fft.stride] = t[i] * SCALE
x = (np.arange(64) % 7 + 1j).astype(np.complex64)
d = cuda.to_device(x)
k[1, fft.block_dim, 0, fft.shared_memory_size](d)
f = np.fft.fft if direction == "forward" else lambda v: np.fft.ifft(v) * 64
err = float(np.linalg.norm(d.copy_to_host() - f(x) * SCALE) / np.linalg.norm(f(x) * SCALE))
print(json.dumps({"error": err, **kernel_cache.stats()}))
"""


def test_the_cache_serves_the_same_kernel_and_never_a_changed_one(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(_CACHE_PROBE)
    cache_dir = tmp_path / "cache"

    def run(scale, direction):
        return json.loads(_fresh_process([str(probe), str(scale), direction], cache_dir).strip().splitlines()[-1])

    first = run(2.0, "forward")
    assert first["misses"] == 1 and first["error"] < 1e-5
    again = run(2.0, "forward")
    assert again["hits"] == 1 and again["error"] < 1e-5
    changed_global = run(3.0, "forward")  # same source, another global value
    assert changed_global["misses"] == 1 and changed_global["error"] < 1e-5
    changed_descriptor = run(2.0, "inverse")
    assert changed_descriptor["misses"] == 1 and changed_descriptor["error"] < 1e-5


@pytest.mark.parametrize("precision,dtype,tol", [(np.float32, np.complex64, 1e-5), (np.float64, np.complex128, 1e-12)])
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_block_c2c_register_data(precision, dtype, tol, direction):
    from numba import cuda

    from nvmath.device import FFT

    fft = FFT(256, precision, "c2c", "Block", direction=direction, ffts_per_block="suggested",
              elements_per_thread="suggested")
    assert fft.value_type is np.dtype(dtype).type
    batch = 3 * fft.ffts_per_block

    @cuda.jit
    def kernel(x):
        t = cuda.local.array(fft.storage_size, fft.value_type)
        s = cuda.shared.array(0, fft.value_type)
        row = cuda.blockIdx.x * fft.ffts_per_block + cuda.threadIdx.y
        for i in range(fft.elements_per_thread):
            t[i] = x[row, cuda.threadIdx.x + i * fft.stride]
        fft.execute(t, s)
        for i in range(fft.elements_per_thread):
            x[row, cuda.threadIdx.x + i * fft.stride] = t[i]

    x = rand((batch, 256), dtype)
    d = cuda.to_device(x)
    kernel[batch // fft.ffts_per_block, fft.block_dim, 0, fft.shared_memory_size](d)
    xr = x.astype(np.complex128)
    ref = np.fft.fft(xr, axis=-1) if direction == "forward" else np.fft.ifft(xr, axis=-1) * 256
    assert _error(d.copy_to_host(), ref) < tol


def test_block_c2c_shared_memory_data():
    from numba import cuda

    from nvmath.device import FFT

    fft = FFT(128, np.float32, "c2c", "Block", direction="forward", ffts_per_block=2)
    fpb = fft.ffts_per_block

    @cuda.jit
    def kernel(x):
        s = cuda.shared.array(0, fft.value_type)  # the data of the block's FFTs, one after another
        n = fft.size
        tid = cuda.threadIdx.x + cuda.threadIdx.y * cuda.blockDim.x
        threads = cuda.blockDim.x * cuda.blockDim.y
        for k in range(tid, fpb * n, threads):
            s[k] = x[cuda.blockIdx.x * fpb + k // n, k % n]
        cuda.syncthreads()
        fft.execute(s)
        cuda.syncthreads()
        for k in range(tid, fpb * n, threads):
            x[cuda.blockIdx.x * fpb + k // n, k % n] = s[k]

    x = rand((4 * fpb, 128), np.complex64)
    d = cuda.to_device(x)
    smem = max(fft.shared_memory_size, fpb * 128 * 8)
    kernel[4, fft.block_dim, 0, smem](d)
    assert _error(d.copy_to_host(), np.fft.fft(x.astype(np.complex128), axis=-1)) < 1e-5


def test_thread_execution():
    from numba import cuda

    from nvmath.device import FFT

    fft = FFT(16, np.float64, "c2c", "Thread", direction="forward")
    assert fft.block_dim is None and fft.shared_memory_size is None and fft.storage_size == 16

    @cuda.jit
    def kernel(x):
        t = cuda.local.array(fft.storage_size, fft.value_type)
        row = cuda.threadIdx.x
        for i in range(fft.elements_per_thread):
            t[i] = x[row, i]
        fft(t)
        for i in range(fft.elements_per_thread):
            x[row, i] = t[i]

    x = rand((32, 16), np.complex128)
    d = cuda.to_device(x)
    kernel[1, 32](d)
    assert _error(d.copy_to_host(), np.fft.fft(x, axis=-1)) < 1e-12


def test_r2c_then_c2r_round_trip():
    from numba import cuda

    from nvmath.device import FFT

    n = 128
    r2c = FFT(n, np.float32, "r2c", "Block", ffts_per_block=1, elements_per_thread=4)
    c2r = FFT(n, np.float32, "c2r", "Block", ffts_per_block=1, elements_per_thread=4)
    assert r2c.direction == "forward" and c2r.direction == "inverse"
    half = n // 2 + 1

    @cuda.jit
    def kernel(x, spectrum):
        t = cuda.local.array(r2c.storage_size, r2c.value_type)
        s = cuda.shared.array(0, r2c.value_type)
        real = t.view(np.float32)
        tid = cuda.threadIdx.x
        for i in range(r2c.elements_per_thread):
            real[i] = x[tid + i * r2c.stride]
        r2c.execute(t, s)
        for i in range(r2c.storage_size):
            k = tid + i * r2c.stride
            if k < half:
                spectrum[k] = t[i]
        c2r.execute(t, s)
        for i in range(c2r.elements_per_thread):
            x[tid + i * c2r.stride] = real[i]

    x = rand((n,), np.float32)
    d, spec = cuda.to_device(x), cuda.device_array(half, np.complex64)
    smem = max(r2c.shared_memory_size, c2r.shared_memory_size)
    kernel[1, r2c.block_dim, 0, smem](d, spec)
    assert _error(spec.copy_to_host(), np.fft.rfft(x.astype(np.float64))) < 1e-5
    assert _error(d.copy_to_host(), x.astype(np.float64) * n) < 1e-5


def test_wrong_element_type_is_a_typing_error_naming_value_type():
    from numba import cuda
    from numba.core.errors import TypingError

    from nvmath.device import FFT

    fft = FFT(64, np.float32, "c2c", "Block", direction="forward")

    @cuda.jit
    def kernel(x):
        t = cuda.local.array(fft.storage_size, np.complex128)
        s = cuda.shared.array(0, fft.value_type)
        fft.execute(t, s)

    with pytest.raises(TypingError, match="value_type"):
        kernel[1, fft.block_dim, 0, fft.shared_memory_size](cuda.to_device(np.zeros(64, np.complex64)))


# The seed example's kernel (plain cuda.jit(link=...), a closure over the FFTs and their traits),
# with the filter scaled by a constant it closes over.
_SEED_PROBE = r"""
import json, sys
import numpy as np
from numba import cuda
from nvmath.device import fft
from fftfuse_compiler import kernel_cache, link_cache

def main(scale):
    size, ffts_per_block, batch_size = 128, 1, 1
    kw = dict(fft_type="c2c", size=size, precision=np.float32, ffts_per_block=ffts_per_block,
              elements_per_thread=2, execution="Block", compiler="numba")
    FFT_fwd, FFT_inv = fft(direction="forward", **kw), fft(direction="inverse", **kw)
    value_type, storage_size = FFT_fwd.value_type, FFT_fwd.storage_size
    fft_stride, ept = FFT_fwd.stride, FFT_fwd.elements_per_thread

    @cuda.jit(link=FFT_fwd.files + FFT_inv.files)
    def f(signal, filter):
        thread_data = cuda.local.array(shape=(storage_size,), dtype=value_type)
        shared_mem = cuda.shared.array(shape=(0,), dtype=value_type)
        fft_id = (cuda.blockIdx.x * ffts_per_block) + cuda.threadIdx.y
        if fft_id >= batch_size:
            return
        offset = cuda.threadIdx.x
        for i in range(ept):
            thread_data[i] = signal[fft_id, offset + i * fft_stride]
        FFT_fwd(thread_data, shared_mem)
        for i in range(ept):
            thread_data[i] = thread_data[i] * filter[fft_id, offset + i * fft_stride] * scale
        FFT_inv(thread_data, shared_mem)
        for i in range(ept):
            signal[fft_id, offset + i * fft_stride] = thread_data[i]

    rng = np.random.default_rng(7)
    data = (rng.standard_normal((1, size)) + 1j * rng.standard_normal((1, size))).astype(np.complex64)
    filt = (rng.standard_normal((1, size)) + 1j * rng.standard_normal((1, size))).astype(np.complex64)
    d = cuda.to_device(data)
    f[1, FFT_fwd.block_dim, 0, FFT_fwd.shared_memory_size](d, cuda.to_device(filt))
    got = d.copy_to_host()
    ref = np.fft.ifft(np.fft.fft(data, axis=-1) * filt * scale, axis=-1) * size
    return got, float(np.linalg.norm(got - ref) / np.linalg.norm(ref))

got, error = main(np.float32(sys.argv[1]))
print(json.dumps({"error": error, "result": [[float(v.real), float(v.imag)] for v in got.ravel()],
                  "kernel_cache": kernel_cache.stats(), "link_cache": link_cache.stats()}))
"""


def test_kernel_cache_loads_the_seed_kernel_in_a_fresh_process_and_never_a_changed_one(tmp_path):
    probe = tmp_path / "seed_probe.py"
    probe.write_text(_SEED_PROBE)
    cache_dir = tmp_path / "cache"

    def run(scale):
        return json.loads(_fresh_process([str(probe), str(scale)], cache_dir).strip().splitlines()[-1])

    first = run(1.0)
    assert first["kernel_cache"]["misses"] == 1 and first["error"] < 1e-5
    again = run(1.0)  # a fresh process: the kernel comes from the store, neither typed nor linked
    assert again["kernel_cache"]["hits"] == 1 and again["kernel_cache"]["misses"] == 0
    assert again["link_cache"] == {"hits": 0, "misses": 0}
    assert again["error"] < 1e-5 and np.allclose(again["result"], first["result"], rtol=0, atol=1e-6)
    changed = run(2.0)  # another closure value: compiled again, and its own result
    assert changed["kernel_cache"]["hits"] == 0 and changed["kernel_cache"]["misses"] == 1
    assert changed["error"] < 1e-5 and not np.allclose(changed["result"], first["result"])


# --- half precision: cuFFTDx computes two FFTs at once, one float16x4 (real, real, imaginary,
# imaginary) per element of the pair; the inputs are rounded to float16 first, and the reference
# is NumPy's float64 FFT of exactly those values.

HALF_TOL = 1e-2


def _as_half(x):
    """``x`` rounded to float16 (real and imaginary parts), back in float64/complex128."""
    if np.iscomplexobj(x):
        return x.real.astype(np.float16).astype(np.float64) + 1j * x.imag.astype(np.float16).astype(np.float64)
    return x.astype(np.float16).astype(np.float64)


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_half_precision_block_c2c(direction):
    from numba import cuda

    from nvmath.device import FFT, float16x4_type

    n = 128
    fft = FFT(n, np.float16, "c2c", "Block", direction=direction, ffts_per_block=4, elements_per_thread=8)
    assert fft.value_type is float16x4_type and fft.implicit_type_batching == 2
    assert fft.block_dim.y * 2 == fft.ffts_per_block  # each row of threads computes a pair of FFTs
    blocks = 3
    batch = blocks * fft.ffts_per_block

    kernel = cuda.jit(half_kernels.block_c2c(fft))

    x = _as_half(rand((batch, n), np.complex128, seed=11))
    re, im = cuda.to_device(x.real.astype(np.float16)), cuda.to_device(x.imag.astype(np.float16))
    kernel[blocks, fft.block_dim, 0, fft.shared_memory_size](re, im)
    got = re.copy_to_host().astype(np.float64) + 1j * im.copy_to_host().astype(np.float64)
    ref = np.fft.fft(x, axis=-1) if direction == "forward" else np.fft.ifft(x, axis=-1) * n
    assert _error(got, ref) < HALF_TOL


def test_half_precision_thread_c2c_on_records_of_np_float16x4():
    from numba import cuda

    from nvmath.device import FFT
    from nvmath.device.types import np_float16x4

    n, threads = 16, 40
    fft = FFT(n, np.float16, "c2c", "Thread", direction="forward")
    assert fft.storage_size == n and fft.block_dim is None

    kernel = cuda.jit(half_kernels.thread_c2c(fft))  # reads the records as float16x4 vectors

    x = _as_half(rand((2 * threads, n), np.complex128, seed=12))  # thread t: FFTs 2t and 2t + 1
    host = np.empty((threads, n), np_float16x4)
    host["x"], host["y"], host["z"], host["w"] = x[0::2].real, x[1::2].real, x[0::2].imag, x[1::2].imag
    d = cuda.to_device(host)
    kernel[2, 32](d)
    out = d.copy_to_host()
    got = np.empty_like(x)
    got[0::2] = out["x"].astype(np.float64) + 1j * out["z"].astype(np.float64)
    got[1::2] = out["y"].astype(np.float64) + 1j * out["w"].astype(np.float64)
    assert _error(got, np.fft.fft(x, axis=-1)) < HALF_TOL


def test_half_precision_r2c_then_c2r_round_trip():
    from numba import cuda

    from nvmath.device import FFT, float16x2_type

    n = 128
    r2c = FFT(n, np.float16, "r2c", "Block", ffts_per_block=2, elements_per_thread=8)
    c2r = FFT(n, np.float16, "c2r", "Block", ffts_per_block=2, elements_per_thread=8)
    assert r2c.input_type is c2r.output_type is float16x2_type
    half = n // 2 + 1
    blocks = 3
    batch = blocks * r2c.ffts_per_block

    kernel = cuda.jit(half_kernels.real_round_trip(r2c, c2r))

    x = _as_half(rand((batch, n), np.float64, seed=13))
    d, spectrum = cuda.to_device(x.astype(np.float32)), cuda.device_array((batch, half, 2), np.float16)
    smem = max(r2c.shared_memory_size, c2r.shared_memory_size)
    kernel[blocks, r2c.block_dim, 0, smem](d, spectrum)
    s = spectrum.copy_to_host().astype(np.float64)
    assert _error(s[..., 0] + 1j * s[..., 1], np.fft.rfft(x, axis=-1)) < HALF_TOL
    assert _error(d.copy_to_host().astype(np.float64), x * n) < HALF_TOL  # c2r is unnormalised


def test_half_precision_block_c2c_shared_memory_data():
    from numba import cuda

    from nvmath.device import FFT

    n = 64
    fft = FFT(n, np.float16, "c2c", "Block", direction="forward", ffts_per_block=2)  # one pair

    kernel = cuda.jit(half_kernels.shared_c2c(fft))

    x = _as_half(rand((2, n), np.complex128, seed=14))
    d = cuda.to_device(x.astype(np.complex64))
    kernel[1, fft.block_dim, 0, max(fft.shared_memory_size, n * 8)](d)
    assert _error(d.copy_to_host(), np.fft.fft(x, axis=-1)) < HALF_TOL
