"""Kernels that compute half-precision device FFTs, written once for the tests that link them
without a GPU (``test_device_fft.py``) and the tests that run them (``test_gpu_device_fft.py``).
Each builder takes the FFT objects and returns the kernel's Python function (``cuda.jit`` it to run).
"""

import numpy as np


def block_c2c(f):
    """Pairs of rows of ``re``/``im`` (float16): each row of threads transforms two FFTs, loaded
    into float16x4 values (real, real, imaginary, imaginary) and stored back lane by lane."""
    from numba import cuda

    from nvmath.device import float16x4

    def kernel(re, im):
        data = cuda.local.array(f.storage_size, f.value_type)
        shared = cuda.shared.array(0, f.value_type)
        row = 2 * (cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y)
        for i in range(f.elements_per_thread):
            k = cuda.threadIdx.x + i * f.stride
            data[i] = float16x4(re[row, k], re[row + 1, k], im[row, k], im[row + 1, k])
        f.execute(data, shared)
        for i in range(f.elements_per_thread):
            k = cuda.threadIdx.x + i * f.stride
            v = data[i]
            re[row, k] = v.x
            re[row + 1, k] = v.y
            im[row, k] = v.z
            im[row + 1, k] = v.w

    return kernel


def thread_c2c(f):
    """Records of np_float16x4 (one row of FFT elements per thread), read as float16x4 in the kernel."""
    from numba import cuda

    from nvmath.device import float16x4, float16x4_type

    def kernel(x):
        rows = x.view(float16x4_type)
        data = cuda.local.array(f.storage_size, float16x4)
        t = cuda.grid(1)
        if t < rows.shape[0]:
            for i in range(f.elements_per_thread):
                data[i] = rows[t, i]
            f.execute(data)
            for i in range(f.elements_per_thread):
                rows[t, i] = data[i]

    return kernel


def real_round_trip(r2c, c2r):
    """r2c of pairs of float32 rows (float16x2 values in a view of the thread data), the half
    spectrum out as float16 (real, imaginary) pairs, then c2r back into the rows."""
    from numba import cuda

    from nvmath.device import float16x2, float16x2_type

    half = r2c.size // 2 + 1

    def kernel(x, spectrum):
        data = cuda.local.array(r2c.storage_size, r2c.value_type)
        shared = cuda.shared.array(0, r2c.value_type)
        real = data.view(float16x2_type)
        row = 2 * (cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y)
        for i in range(r2c.elements_per_thread):
            k = cuda.threadIdx.x + i * r2c.stride
            real[i] = float16x2(x[row, k], x[row + 1, k])
        r2c.execute(data, shared)
        for i in range(r2c.storage_size):
            k = cuda.threadIdx.x + i * r2c.stride
            if k < half:
                v = data[i]
                spectrum[row, k, 0] = v.x
                spectrum[row, k, 1] = v.z
                spectrum[row + 1, k, 0] = v.y
                spectrum[row + 1, k, 1] = v.w
        cuda.syncthreads()
        c2r.execute(data, shared)
        for i in range(c2r.elements_per_thread):
            k = cuda.threadIdx.x + i * c2r.stride
            pair = real[i]
            x[row, k] = pair.x
            x[row + 1, k] = pair.y

    return kernel


def shared_c2c(f):
    """The shared-memory API: one pair of FFTs held in shared memory as float16x4, built from two
    complex64 rows with float16x2(c) (real, imaginary) and float16x4(float16x2, float16x2)."""
    from numba import cuda

    from nvmath.device import float16x2, float16x4, float16x4_type

    def kernel(x):
        s = cuda.shared.array(0, float16x4_type)
        for k in range(cuda.threadIdx.x, f.size, cuda.blockDim.x):
            a, b = float16x2(x[0, k]), float16x2(x[1, k])
            s[k] = float16x4(float16x2(a.x, b.x), float16x2(a.y, b.y))
        cuda.syncthreads()
        f.execute(s)
        cuda.syncthreads()
        for k in range(cuda.threadIdx.x, f.size, cuda.blockDim.x):
            v = s[k]
            x[0, k] = complex(np.float32(v.x), np.float32(v.z))
            x[1, k] = complex(np.float32(v.y), np.float32(v.w))

    return kernel
