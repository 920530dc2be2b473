"""One process of the device-FFT benchmark, written in nvmath-python 1.0's spelling (``FFT``, ``.execute``)
so that the same file runs against fftfuse's ``nvmath.device`` and against nvmath-python 1.0.

    python device_fft_worker.py small     # the one-FFT convolution of examples/device_fft_convolution.py
    python device_fft_worker.py large     # 65536 x 1024 complex64 convolution, GPU time of the kernel
    python device_fft_worker.py traits    # the traits of three descriptors on the current GPU

Prints one JSON line: the phases' wall times (seconds since the interpreter started), the
error against NumPy, and for ``large`` the kernel's median GPU time over 20 launches.
"""

import json
import sys
import time

STARTED = time.perf_counter()


def since_start():
    return time.perf_counter() - STARTED


def interpreter_start_offset():
    """Seconds between process start and this module's first line (read off /proc; 0 where unknown)."""
    try:
        import os

        with open(f"/proc/{os.getpid()}/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK") - time.perf_counter() + STARTED)
    except Exception:
        return 0.0


def main(mode):
    import numpy as np
    from numba import cuda

    from nvmath.device import FFT

    phases = {"imports": since_start()}
    if mode == "traits":
        print(json.dumps(traits(FFT, np)))
        return
    if mode == "small":
        size, batch, fpb, ept = 128, 1, 1, 2
    else:
        size, batch, fpb, ept = 1024, 65536, 4, 16
    fwd = FFT(fft_type="c2c", size=size, precision=np.float32, direction="forward", ffts_per_block=fpb,
              elements_per_thread=ept, execution="Block")
    inv = FFT(fft_type="c2c", size=size, precision=np.float32, direction="inverse", ffts_per_block=fpb,
              elements_per_thread=ept, execution="Block")
    storage_size, value_type, stride = fwd.storage_size, fwd.value_type, fwd.stride
    elements, ffts_per_block = fwd.elements_per_thread, fwd.ffts_per_block
    phases["descriptors"] = since_start()

    @cuda.jit
    def convolve(signal, filt):
        thread_data = cuda.local.array(shape=(storage_size,), dtype=value_type)
        shared_mem = cuda.shared.array(shape=(0,), dtype=value_type)
        fft_id = cuda.blockIdx.x * ffts_per_block + cuda.threadIdx.y
        if fft_id >= signal.shape[0]:
            return
        offset = cuda.threadIdx.x
        for i in range(elements):
            thread_data[i] = signal[fft_id, offset + i * stride]
        fwd.execute(thread_data, shared_mem)
        for i in range(elements):
            thread_data[i] = thread_data[i] * filt[offset + i * stride]
        inv.execute(thread_data, shared_mem)
        for i in range(elements):
            signal[fft_id, offset + i * stride] = thread_data[i]

    rng = np.random.default_rng(1)
    data = (rng.standard_normal((batch, size)) + 1j * rng.standard_normal((batch, size))).astype(np.complex64)
    filt = (rng.standard_normal(size) + 1j * rng.standard_normal(size)).astype(np.complex64)
    data_d, filt_d = cuda.to_device(data), cuda.to_device(filt)
    grid = (batch + ffts_per_block - 1) // ffts_per_block
    convolve[grid, fwd.block_dim, 0, fwd.shared_memory_size](data_d, filt_d)
    cuda.synchronize()
    phases["kernel compile+first run"] = since_start()
    out = data_d.copy_to_host()
    rows = slice(0, min(batch, 256))
    ref = np.fft.ifft(np.fft.fft(data[rows].astype(np.complex128), axis=-1) * filt, axis=-1) * size
    error = float(np.linalg.norm(out[rows] - ref) / np.linalg.norm(ref))
    phases["result"] = since_start()
    result = {"mode": mode, "phases_s": phases, "l2_error": error, "process_start_to_main_s": interpreter_start_offset()}
    if mode == "large":
        start, stop = cuda.event(), cuda.event()
        times = []
        for _ in range(20):
            start.record()
            convolve[grid, fwd.block_dim, 0, fwd.shared_memory_size](data_d, filt_d)
            stop.record()
            stop.synchronize()
            times.append(cuda.event_elapsed_time(start, stop))
        times.sort()
        result["gpu_ms_median"] = times[len(times) // 2]
        result["gpu_ms_min"] = times[0]
    import nvmath

    try:
        from fftfuse_compiler import kernel_cache, link_cache

        result["link_cache"], result["kernel_cache"] = link_cache.stats(), kernel_cache.stats()
    except ImportError:
        result["link_cache"] = result["kernel_cache"] = None

    result["nvmath"] = getattr(nvmath, "__version__", "?")
    print(json.dumps(result))


def traits(FFT, np):
    """What each implementation reports for the seed's descriptor and two with suggested knobs."""
    cases = {
        "c2c-128-f32-seed": dict(fft_type="c2c", size=128, precision=np.float32, direction="forward",
                                 ffts_per_block=1, elements_per_thread=2, execution="Block"),
        "c2c-1024-f32-suggested": dict(fft_type="c2c", size=1024, precision=np.float32, direction="forward",
                                       ffts_per_block="suggested", elements_per_thread="suggested", execution="Block"),
        "r2c-512-f64-suggested": dict(fft_type="r2c", size=512, precision=np.float64, direction="forward",
                                      ffts_per_block="suggested", elements_per_thread="suggested", execution="Block"),
    }
    out = {}
    for name, kwargs in cases.items():
        f = FFT(**kwargs)
        out[name] = {t: str(getattr(f, t, None)) for t in ("ffts_per_block", "elements_per_thread", "storage_size",
                                                          "shared_memory_size", "stride", "block_dim")}
    return out


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "small")
