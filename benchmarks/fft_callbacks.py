"""Fused FFT callbacks on the GPU, side by side: this project, nvmath-python, CuPy unfused.

Each implementation runs in its own process (nvmath-python is also named ``nvmath``):

    python benchmarks/fft_callbacks.py --impl ours   --json ours.json
    python benchmarks/fft_callbacks.py --impl nvmath --json ref.json   # with nvmath-python on PYTHONPATH
    python benchmarks/fft_callbacks.py --impl cupy   --json cupy.json
    python benchmarks/fft_callbacks.py --report ours.json ref.json cupy.json --json table.json

GPU time: ``CALLS`` back-to-back calls between two CUDA events (so host launch cost is hidden),
median over ``REPEATS``; host time per call is measured separately on a tiny problem.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

CALLS, REPEATS = 20, 7

from gpu_timing import gpu_ms as timed  # noqa: E402  (benchmarks/, beside this script)


def gpu_ms(run, calls=CALLS, repeats=REPEATS):
    return timed(run, calls, repeats, warmup=1)


def host_us(run, calls=2000, warmup=50):
    """Host time per call: ``calls`` back-to-back calls in five rounds, median and best."""
    import cupy as cp

    for _ in range(warmup):
        run()
    cp.cuda.Device().synchronize()
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls // 5):
            run()
        samples.append((time.perf_counter() - t) / (calls // 5) * 1e6)
        cp.cuda.Device().synchronize()
    return {"median_us": statistics.median(samples), "min_us": min(samples)}


def inputs():
    import cupy as cp

    B, N = 65536, 1024
    rng = cp.random.default_rng(0)
    x = (rng.standard_normal((B, N), dtype=cp.float32) + 1j * rng.standard_normal((B, N), dtype=cp.float32)).astype(cp.complex64)
    filt = (rng.standard_normal((B, N), dtype=cp.float32) + 1j * rng.standard_normal((B, N), dtype=cp.float32)).astype(cp.complex64)
    window = cp.asarray(cp.hanning(N).astype(cp.float32)[None, :].repeat(B, 0))
    xr = rng.standard_normal((131072, 1024), dtype=cp.float32)
    x2 = (rng.standard_normal((256, 512, 512), dtype=cp.float32) + 0j).astype(cp.complex64)
    return dict(x=x, filt=filt, window=window, xr=xr, x2=x2, N=N)


# -- callbacks in array terms: (N,) data broadcast over the batch, the index form ----------------
# Full-size counterparts: filter_epilog and window_prolog (a full-size phase array costs what the
# full-size filter does). nvmath-python runs the same arithmetic written by hand on the offset.
ARRAY_TERMS_CASES = ["filter_epilog_broadcast", "window_prolog_broadcast", "phase_ramp_index",
                     "phase_ramp_index_runtime_shift", "phase_ramp_index_fastmath",
                     "phase_ramp_index_fastmath_runtime_shift", "phase_ramp_table_broadcast"]
SHIFT = 3.25  # the phase ramp's shift, in samples


def array_terms_inputs(d):
    import cupy as cp
    import numpy as np

    N = d["N"]
    rng = cp.random.default_rng(1)
    filt_n = (rng.standard_normal(N, dtype=cp.float32) + 1j * rng.standard_normal(N, dtype=cp.float32)).astype(cp.complex64)
    window_n = cp.hanning(N).astype(cp.float32)
    ramp_n = cp.exp(2j * np.pi * cp.arange(N) * SHIFT / N).astype(cp.complex64)
    return filt_n, window_n, ramp_n


def array_terms_ours(d, out):
    import math

    import numpy as np
    import nvmath

    import numba

    fft, x, N = nvmath.fft, d["x"], d["N"]
    filt_n, window_n, ramp_n = array_terms_inputs(d)
    w0 = np.float32(2 * math.pi * SHIFT / N)
    step = np.float32(2 * math.pi / N)
    turns, per_sample, tau = np.float32(SHIFT / N), np.float32(1 / N), np.float32(2 * math.pi)

    def ramp(v, b, k):
        a = w0 * np.float32(k)
        return v * (math.cos(a) + 1j * math.sin(a))

    def ramp_shift(v, b, k, *, shift):
        a = step * np.float32(k) * shift
        return v * (math.cos(a) + 1j * math.sin(a))

    # The same ramps with the hardware's approximate sine and cosine (see NOTES.md): the angle is
    # reduced to [-pi, pi] first, where their error is below float32's own error in the angle.
    @numba.njit(fastmath=True)
    def ramp_fast(v, b, k):
        t = np.float32(k) * turns
        a = tau * (t - np.float32(math.floor(t + np.float32(0.5))))
        return v * (math.cos(a) + 1j * math.sin(a))

    @numba.njit(fastmath=True)
    def ramp_fast_shift(v, b, k, *, shift):
        t = np.float32(k) * per_sample * shift
        a = tau * (t - np.float32(math.floor(t + np.float32(0.5))))
        return v * (math.cos(a) + 1j * math.sin(a))

    out["filter_epilog_broadcast"] = gpu_ms(lambda: fft.fft(x, axes=[-1], epilog={"fn": lambda v, f: v * f, "data": filt_n}))
    out["window_prolog_broadcast"] = gpu_ms(lambda: fft.fft(x, axes=[-1], prolog={"fn": lambda v, w: v * w, "data": window_n}))
    out["phase_ramp_index"] = gpu_ms(lambda: fft.fft(x, axes=[-1], epilog=ramp))
    out["phase_ramp_index_runtime_shift"] = gpu_ms(
        lambda: fft.fft(x, axes=[-1], epilog={"fn": ramp_shift, "params": {"shift": SHIFT}}))
    out["phase_ramp_index_fastmath"] = gpu_ms(lambda: fft.fft(x, axes=[-1], epilog=ramp_fast))
    out["phase_ramp_index_fastmath_runtime_shift"] = gpu_ms(
        lambda: fft.fft(x, axes=[-1], epilog={"fn": ramp_fast_shift, "params": {"shift": SHIFT}}))
    # A fixed ramp needs no trigonometry in the callback: an (N,) table, read like the filter.
    out["phase_ramp_table_broadcast"] = gpu_ms(lambda: fft.fft(x, axes=[-1], epilog={"fn": lambda v, r: v * r, "data": ramp_n}))
    with fft.FFT(x, axes=[-1]) as stateful:
        stateful.plan(epilog={"fn": ramp_shift, "params": {"shift": SHIFT}})
        shifts = iter(range(10**9))

        def new_shift():
            stateful.set_params(epilog={"shift": float(next(shifts) % 7)})
            stateful.execute()

        out["phase_ramp_new_shift_every_call_stateful"] = gpu_ms(new_shift)
    small = x[:1].copy()
    out["host_stateless_runtime_shift_1x1024"] = host_us(
        lambda: fft.fft(small, axes=[-1], epilog={"fn": ramp_shift, "params": {"shift": SHIFT}}))


def array_terms_nvmath(d, out):
    import math

    import numpy as np
    import nvmath

    fft, x, N = nvmath.fft, d["x"], d["N"]
    filt_n, window_n, _ = array_terms_inputs(d)
    n = np.uint64(N)  # offset is unsigned: a signed N would make offset % N a float
    w0 = np.float32(2 * math.pi * SHIFT / N)
    j = np.complex64(1j)

    def filter_cb(data_out, offset, value, user_info, unused):
        data_out[offset] = value * user_info[offset % n]

    def window_cb(data_in, offset, user_info, unused):
        return data_in[offset] * user_info[offset % n]

    def ramp_cb(data_out, offset, value, user_info, unused):
        a = w0 * np.float32(offset % n)
        data_out[offset] = value * (math.cos(a) + j * math.sin(a))

    cases = {
        "filter_epilog_broadcast": {"epilog": {"ltoir": fft.compile_epilog(filter_cb, "complex64", "complex64"),
                                               "data": filt_n.data.ptr}},
        "window_prolog_broadcast": {"prolog": {"ltoir": fft.compile_prolog(window_cb, "complex64", "float32"),
                                               "data": window_n.data.ptr}},
        "phase_ramp_index": {"epilog": {"ltoir": fft.compile_epilog(ramp_cb, "complex64", "complex64")}},
    }
    for name, callbacks in cases.items():
        f = fft.FFT(x, axes=[-1])
        f.plan(**callbacks)
        out[name] = gpu_ms(f.execute)


def array_terms_cupy(d, out):
    import cupy as cp

    x = d["x"]
    filt_n, window_n, ramp_n = array_terms_inputs(d)
    out["filter_epilog_broadcast"] = gpu_ms(lambda: cp.fft.fft(x, axis=-1) * filt_n)
    out["window_prolog_broadcast"] = gpu_ms(lambda: cp.fft.fft(x * window_n, axis=-1))
    out["phase_ramp_index"] = gpu_ms(lambda: cp.fft.fft(x, axis=-1) * ramp_n)


def run_array_terms_only(d, impl):
    """The plain FFT and the array-terms cases of ``impl``, alone."""
    import cupy as cp

    out = {}
    if impl == "cupy":
        out["plain"] = gpu_ms(lambda: cp.fft.fft(d["x"], axis=-1))
        array_terms_cupy(d, out)
        return out
    import nvmath

    if impl == "ours":
        out["plain"] = gpu_ms(lambda: nvmath.fft.fft(d["x"], axes=[-1]))
        array_terms_ours(d, out)
    else:
        f = nvmath.fft.FFT(d["x"], axes=[-1])
        f.plan()
        out["plain"] = gpu_ms(f.execute)
        array_terms_nvmath(d, out)
    return out


def array_terms_targets(ours):
    """The array-terms targets: (N,) filter and window <= 1.05 x plain, phase ramp <= 1.10 x plain."""
    plain = ours.get("plain", {}).get("median_ms")
    out = []
    for name, limit in (("filter_epilog_broadcast", 1.05), ("window_prolog_broadcast", 1.05), ("phase_ramp_index", 1.10),
                        ("phase_ramp_index_fastmath", 1.10)):
        value = ours.get(name, {}).get("median_ms")
        if value and plain:
            out.append({"what": f"{name} / our plain FFT", "value": value / plain, "limit": limit,
                        "met": value / plain <= limit})
    return out


def run_ours(d):
    import cupy as cp
    import nvmath

    fft = nvmath.fft
    x, filt, window, xr, x2, N = (d[k] for k in ("x", "filt", "window", "xr", "x2", "N"))
    scale = 1.0 / N
    f32 = cp.float32(scale)  # see NOTES.md: precision of Python float literals
    out = {}
    fused_filter = lambda: fft.fft(x, axes=[-1], epilog={"fn": lambda v, f: v * f, "data": filt})  # noqa: E731
    fused_filter()  # planned, then measured before other cases leave blocks in the pool
    out["peak_memory_bytes"] = peak_memory(fused_filter)
    out["plain"] = gpu_ms(lambda: fft.fft(x, axes=[-1]))
    out["scale_epilog"] = gpu_ms(lambda: fft.fft(x, axes=[-1], epilog=lambda v: v * f32))
    out["filter_epilog"] = gpu_ms(lambda: fft.fft(x, axes=[-1], epilog={"fn": lambda v, f: v * f, "data": filt}))
    out["window_prolog"] = gpu_ms(lambda: fft.fft(x, axes=[-1], prolog={"fn": lambda v, w: v * w, "data": window}))
    out["convolution"] = gpu_ms(lambda: fft.ifft(fft.fft(x, axes=[-1], epilog={"fn": lambda v, f: v * f, "data": filt}), axes=[-1]))
    out["r2c_plain"] = gpu_ms(lambda: fft.rfft(xr, axes=[-1]))
    out["r2c_scale_epilog"] = gpu_ms(lambda: fft.rfft(xr, axes=[-1], epilog=lambda v: v * f32))
    # The same filter with user_info the data pointer itself (LTO-IR bytes, nvmath-python's
    # form): the plan is bound to that pointer, but the callback skips the slot load.
    def raw_filter(data_out, offset, value, user_info, unused):
        data_out[offset] = value * user_info[offset]

    direct = fft.compile_epilog(raw_filter, "complex64", "complex64")
    with fft.FFT(x, axes=[-1]) as stateful:
        stateful.plan(epilog={"ltoir": direct, "data": int(filt.data.ptr)})
        out["filter_epilog_raw_pointer_stateful"] = gpu_ms(stateful.execute)
    with fft.FFT(x, axes=[-1]) as stateful:
        stateful.plan(epilog={"fn": lambda v, f: v * f, "data": filt})
        out["filter_epilog_stateful"] = gpu_ms(stateful.execute)
    # Python float literals: computed in complex64 (default) or complex128 ("double").
    out["scale_epilog_python_float"] = gpu_ms(lambda: fft.fft(x, axes=[-1], epilog=lambda v: v * 0.0009765625))
    double = {"float_literals": "double"}
    out["scale_epilog_python_float_double"] = gpu_ms(
        lambda: fft.fft(x, axes=[-1], options=double, epilog=lambda v: v * 0.0009765625))
    patient = {"patient_jit": True}
    out["r2c_scale_epilog_patient_jit"] = gpu_ms(lambda: fft.rfft(xr, axes=[-1], options=patient, epilog=lambda v: v * f32))
    out["filter_epilog_patient_jit"] = gpu_ms(
        lambda: fft.fft(x, axes=[-1], options=patient, epilog={"fn": lambda v, f: v * f, "data": filt}))
    out["2d_plain"] = gpu_ms(lambda: fft.fft(x2, axes=[1, 2]))
    out["2d_scale_epilog"] = gpu_ms(lambda: fft.fft(x2, axes=[1, 2], epilog=lambda v: v * f32))
    # A changed data array must not plan again: time a call that alternates two arrays.
    other = filt.copy()
    flip = [filt, other]
    state = {"i": 0}

    def alternate():
        state["i"] ^= 1
        fft.fft(x, axes=[-1], epilog={"fn": lambda v, f: v * f, "data": flip[state["i"]]})

    out["filter_epilog_alternating_data"] = gpu_ms(alternate)
    small = x[:1].copy()
    out["host_stateless_epilog_1x1024"] = host_us(lambda: fft.fft(small, axes=[-1], epilog=lambda v: v * f32))
    with fft.FFT(small, axes=[-1]) as plan:
        plan.plan(epilog=lambda v: v * f32)
        out["host_stateful_execute_1x1024"] = host_us(plan.execute)
    from nvmath.fft import _gpu

    out["work_area_bytes_per_plan"] = sorted({int(p._work.nbytes) for p in _gpu.plan_cache._plans.values()})
    array_terms_ours(d, out)
    out.update(run_inlining(d))
    out.update(run_abi_variants(d))
    return out


def run_abi_variants(d):
    """The same Python callbacks as numba's C ABI alone (no thunk: an indirect call in cuFFT's
    kernel) and through fftfuse_compiler.thunk, both as LTO-IR with the data pointer itself (stateful)."""
    import cupy as cp
    import nvmath
    from numba import cuda, types

    from fftfuse_compiler.dtypes import callback_symbol

    fft = nvmath.fft
    x, filt, window = d["x"], d["filt"], d["window"]
    c8, f4 = types.complex64, types.float32
    scale = cp.float32(1 / 1024)

    def scale_cb(data_out, offset, value, user_info, unused):
        data_out[offset] = value * scale

    def filter_cb(data_out, offset, value, user_info, unused):
        data_out[offset] = value * user_info[offset]

    def window_cb(data_in, offset, user_info, unused):
        return data_in[offset] * user_info[offset]

    cases = {  # name: (function, kind, user type, data)
        "scale_epilog": (scale_cb, "epilog", c8, None),
        "filter_epilog": (filter_cb, "epilog", c8, filt),
        "window_prolog": (window_cb, "prolog", f4, window),
    }
    out = {}
    for name, (fn, kind, user, data) in cases.items():
        if kind == "prolog":
            sig = c8(types.CPointer(c8), types.uint64, types.CPointer(user), types.voidptr)
        else:
            sig = types.void(types.CPointer(c8), types.uint64, c8, types.CPointer(user), types.voidptr)
        cc = cp.cuda.Device().compute_capability
        plain_abi, _ = cuda.compile(fn, sig, device=True, abi="c", abi_info={"abi_name": callback_symbol(kind, "complex64")},
                                    output="ltoir", cc=(int(cc[:-1]), int(cc[-1])))
        thunk = (fft.compile_prolog if kind == "prolog" else fft.compile_epilog)(fn, "complex64", str(user))
        for variant, ltoir in (("numba_c_abi", plain_abi), ("thunk", thunk)):
            spec = {"ltoir": ltoir, "data": int(data.data.ptr) if data is not None else None}
            with fft.FFT(x, axes=[-1]) as f:
                f.plan(**{kind: spec})
                out[f"{variant}_{name}_stateful"] = gpu_ms(f.execute)
    return out


# ---------------------------------------------------------------------------------------------
# Inlining: each case as a Python callback and as the same CUDA C++ callback, in one process
# ---------------------------------------------------------------------------------------------

CPP = {
    "scale": r"""
__device__ void scale(void* out, unsigned long long offset, float2 v, void* info, void* shared) {
    ((float2*)out)[offset] = make_float2(v.x * 0.0009765625f, v.y * 0.0009765625f);
}""",
    "scale_z": r"""
__device__ void scale(void* out, unsigned long long offset, double2 v, void* info, void* shared) {
    ((double2*)out)[offset] = make_double2(v.x * 0.0009765625, v.y * 0.0009765625);
}""",
    "filter": r"""
__device__ void apply_filter(void* out, unsigned long long offset, float2 v, void* info, void* shared) {
    float2 f = ((float2*)info)[offset];
    ((float2*)out)[offset] = make_float2(v.x * f.x - v.y * f.y, v.x * f.y + v.y * f.x);
}""",
    "window": r"""
__device__ float2 window(void* in, unsigned long long offset, void* info, void* shared) {
    float2 x = ((float2*)in)[offset];
    float w = ((float*)info)[offset];
    return make_float2(x.x * w, x.y * w);
}""",
    "real_window": r"""
__device__ float window(void* in, unsigned long long offset, void* info, void* shared) {
    return ((float*)in)[offset] * ((float*)info)[offset];
}""",
}

INLINING_CASES = ["scale_epilog", "filter_epilog", "window_prolog", "convolution", "r2c_scale_epilog",
                  "2d_scale_epilog", "z128_scale_epilog", "r2c_window_prolog"]
PLAIN_OF = {"scale_epilog": "plain", "filter_epilog": "plain", "window_prolog": "plain", "convolution": "plain",
            "r2c_scale_epilog": "r2c_plain", "2d_scale_epilog": "2d_plain", "z128_scale_epilog": "z128_plain",
            "r2c_window_prolog": "r2c_plain"}


def run_inlining(d):
    """Python callbacks (stateless, data through the slot) next to the same CUDA C++ callbacks
    (``{"source": ...}``, the same path): ``py_<case>`` and ``cpp_<case>`` in ms."""
    import cupy as cp
    import nvmath

    fft = nvmath.fft
    x, filt, window, xr, x2 = (d[k] for k in ("x", "filt", "window", "xr", "x2"))
    f32 = cp.float32(1 / 1024)
    z = x[: x.shape[0] // 2].astype(cp.complex128)  # same bytes as the complex64 cases
    wr = cp.asarray(cp.hanning(xr.shape[-1]).astype(cp.float32)[None, :].repeat(xr.shape[0], 0))
    py = {
        "scale_epilog": lambda: fft.fft(x, axes=[-1], epilog=lambda v: v * f32),
        "filter_epilog": lambda: fft.fft(x, axes=[-1], epilog={"fn": lambda v, f: v * f, "data": filt}),
        "window_prolog": lambda: fft.fft(x, axes=[-1], prolog={"fn": lambda v, w: v * w, "data": window}),
        "convolution": lambda: fft.ifft(fft.fft(x, axes=[-1], epilog={"fn": lambda v, f: v * f, "data": filt}), axes=[-1]),
        "r2c_scale_epilog": lambda: fft.rfft(xr, axes=[-1], epilog=lambda v: v * f32),
        "2d_scale_epilog": lambda: fft.fft(x2, axes=[1, 2], epilog=lambda v: v * f32),
        "z128_scale_epilog": lambda: fft.fft(z, axes=[-1], epilog=lambda v: v * 0.0009765625),
        "r2c_window_prolog": lambda: fft.rfft(xr, axes=[-1], prolog={"fn": lambda v, w: v * w, "data": wr}),
    }
    cpp = {
        "scale_epilog": lambda: fft.fft(x, axes=[-1], epilog={"source": CPP["scale"]}),
        "filter_epilog": lambda: fft.fft(x, axes=[-1], epilog={"source": CPP["filter"], "data": filt}),
        "window_prolog": lambda: fft.fft(x, axes=[-1], prolog={"source": CPP["window"], "data": window}),
        "convolution": lambda: fft.ifft(fft.fft(x, axes=[-1], epilog={"source": CPP["filter"], "data": filt}), axes=[-1]),
        "r2c_scale_epilog": lambda: fft.rfft(xr, axes=[-1], epilog={"source": CPP["scale"]}),
        "2d_scale_epilog": lambda: fft.fft(x2, axes=[1, 2], epilog={"source": CPP["scale"]}),
        "z128_scale_epilog": lambda: fft.fft(z, axes=[-1], epilog={"source": CPP["scale_z"]}),
        "r2c_window_prolog": lambda: fft.rfft(xr, axes=[-1], prolog={"source": CPP["real_window"], "data": wr}),
    }
    out = {"z128_plain": gpu_ms(lambda: fft.fft(z, axes=[-1]))}
    # Interleaved, so drift of the card's clock over the run lands on both columns alike.
    for case in INLINING_CASES:
        out[f"py_{case}"] = gpu_ms(py[case])
        out[f"cpp_{case}"] = gpu_ms(cpp[case])
    for case in INLINING_CASES:
        out[f"py_{case}_again"] = gpu_ms(py[case])
        out[f"cpp_{case}_again"] = gpu_ms(cpp[case])
    return out


def report_inlining(ours):
    """Per case: Python callback, the same C++ callback, ours / C++ and ours / our plain FFT."""
    med = lambda k: (ours.get(k) or {}).get("median_ms")  # noqa: E731
    rows = []
    if med("py_scale_epilog") is None:
        return rows
    print(f"\n{'case (inlining)':22s} {'python ms':>10s} {'C++ ms':>9s} {'plain ms':>9s} {'py/C++':>8s} {'py/plain':>9s}")
    for case in INLINING_CASES:
        # Best of the two interleaved passes: the lower one is the least disturbed.
        py = min(v for v in (med(f"py_{case}"), med(f"py_{case}_again")) if v is not None)
        cc = min(v for v in (med(f"cpp_{case}"), med(f"cpp_{case}_again")) if v is not None)
        plain = med(PLAIN_OF[case])
        if case == "convolution":
            plain = 2 * plain  # two FFTs
        row = {"case": case, "python_ms": py, "cpp_ms": cc, "plain_ms": plain,
               "python_over_cpp": py / cc, "python_over_plain": py / plain if plain else None}
        rows.append(row)
        print(f"{case:22s} {py:10.4f} {cc:9.4f} {plain or 0:9.4f} {row['python_over_cpp']:8.3f} "
              f"{row['python_over_plain'] or 0:9.3f}")
    for case in ("scale_epilog", "filter_epilog", "window_prolog"):
        a, b = med(f"numba_c_abi_{case}_stateful"), med(f"thunk_{case}_stateful")
        if a and b:
            print(f"{case:22s} numba C ABI alone {a:.4f} ms, through the thunk {b:.4f} ms (stateful, data pointer)")
    return rows


def run_nvmath(d):
    import cupy as cp
    import nvmath
    from numba import cuda  # noqa: F401  (nvmath's compile helpers need numba.cuda)

    fft = nvmath.fft
    x, filt, window, xr, x2, N = (d[k] for k in ("x", "filt", "window", "xr", "x2", "N"))
    scale = cp.float32(1.0 / N)

    def scale_cb(data_out, offset, value, user_info, unused):
        data_out[offset] = value * scale

    def filter_cb(data_out, offset, value, user_info, unused):
        data_out[offset] = value * user_info[offset]

    def window_cb(data_in, offset, user_info, unused):
        return data_in[offset] * user_info[offset]

    t = time.perf_counter()
    e_scale = fft.compile_epilog(scale_cb, "complex64", "complex64")
    first_compile = time.perf_counter() - t
    e_filter = fft.compile_epilog(filter_cb, "complex64", "complex64")
    p_window = fft.compile_prolog(window_cb, "complex64", "float32")
    out = {"first_compile_s": first_compile}
    fused_filter = lambda: fft.fft(x, axes=[-1], epilog={"ltoir": e_filter, "data": filt.data.ptr})  # noqa: E731
    fused_filter()
    out["peak_memory_bytes"] = peak_memory(fused_filter)
    out["plain"] = gpu_ms(lambda: fft.fft(x, axes=[-1]))

    def stateful(operand, axes, epilog=None, prolog=None, direction="forward", options=None):
        f = fft.FFT(operand, axes=axes, options=options)
        f.plan(epilog=epilog, prolog=prolog)
        return f

    cases = {
        "scale_epilog": stateful(x, [-1], epilog={"ltoir": e_scale}),
        "filter_epilog": stateful(x, [-1], epilog={"ltoir": e_filter, "data": filt.data.ptr}),
        "window_prolog": stateful(x, [-1], prolog={"ltoir": p_window, "data": window.data.ptr}),
        "2d_plain": stateful(x2, [1, 2]),
        "2d_scale_epilog": stateful(x2, [1, 2], epilog={"ltoir": e_scale}),
        "r2c_plain": stateful(xr, [-1]),
        "r2c_scale_epilog": stateful(xr, [-1], epilog={"ltoir": e_scale}),
    }
    for name, f in cases.items():
        out[name] = gpu_ms(f.execute)
    forward = cases["filter_epilog"]
    inverse = fft.FFT(forward.execute(), axes=[-1])
    inverse.plan()

    def convolution():
        inverse.reset_operand(forward.execute())
        return inverse.execute(direction="inverse")

    out["convolution"] = gpu_ms(convolution)
    small = x[:1].copy()
    out["host_stateless_epilog_1x1024"] = host_us(lambda: fft.fft(small, axes=[-1], epilog={"ltoir": e_scale}), calls=100)
    f = stateful(small, [-1], epilog={"ltoir": e_scale})
    out["host_stateful_execute_1x1024"] = host_us(f.execute)
    array_terms_nvmath(d, out)
    return out


def run_cupy(d):
    import cupy as cp

    x, filt, window, xr, x2, N = (d[k] for k in ("x", "filt", "window", "xr", "x2", "N"))
    scale = cp.float32(1.0 / N)
    out = {}
    dst = cp.empty_like(x)
    out["copy_floor"] = gpu_ms(lambda: cp.copyto(dst, x))
    out["plain"] = gpu_ms(lambda: cp.fft.fft(x, axis=-1))
    out["scale_epilog"] = gpu_ms(lambda: cp.fft.fft(x, axis=-1) * scale)
    out["filter_epilog"] = gpu_ms(lambda: cp.fft.fft(x, axis=-1) * filt)
    out["window_prolog"] = gpu_ms(lambda: cp.fft.fft(x * window, axis=-1))
    out["convolution"] = gpu_ms(lambda: cp.fft.ifft(cp.fft.fft(x, axis=-1) * filt, axis=-1))
    out["r2c_plain"] = gpu_ms(lambda: cp.fft.rfft(xr, axis=-1))
    out["r2c_scale_epilog"] = gpu_ms(lambda: cp.fft.rfft(xr, axis=-1) * scale)
    out["2d_plain"] = gpu_ms(lambda: cp.fft.fftn(x2, axes=(1, 2)))
    out["2d_scale_epilog"] = gpu_ms(lambda: cp.fft.fftn(x2, axes=(1, 2)) * scale)
    small = x[:1].copy()
    out["host_plain_1x1024"] = host_us(lambda: cp.fft.fft(small, axis=-1))
    array_terms_cupy(d, out)
    return out


def peak_memory(run):
    import cupy as cp

    import gc

    pool = cp.get_default_memory_pool()
    cp.cuda.Device().synchronize()
    gc.collect()  # else arrays of earlier cases, freed by a collection during run(), count as ours
    pool.free_all_blocks()
    # Held bytes, not used bytes: a chunk that a small live array keeps partly used cannot be
    # released, and its free remainder is not this call's memory.
    base = pool.total_bytes()
    run()
    cp.cuda.Device().synchronize()
    return pool.total_bytes() - base


def machine():
    import cupy as cp

    props = cp.cuda.runtime.getDeviceProperties(0)
    return {"gpu": props["name"].decode(), "host": platform.node(), "python": platform.python_version(),
            "cupy": cp.__version__, "commit": os.environ.get("GIT_COMMIT", "unknown")}


def report(paths):
    runs = {}
    for p in paths:
        with open(p) as fh:
            r = json.load(fh)
        runs[r["impl"]] = r
    ours, ref, cupy = runs.get("ours", {}), runs.get("nvmath", {}), runs.get("cupy", {})
    rows = []
    names = ["plain", "scale_epilog", "filter_epilog", "window_prolog", "convolution", "r2c_plain",
             "r2c_scale_epilog", "2d_plain", "2d_scale_epilog", "filter_epilog_alternating_data",
             "scale_epilog_python_float", "scale_epilog_python_float_double", "r2c_scale_epilog_patient_jit",
             "filter_epilog_patient_jit", "filter_epilog_stateful", "filter_epilog_raw_pointer_stateful",
             *ARRAY_TERMS_CASES, "phase_ramp_new_shift_every_call_stateful"]
    print(f"{'case':34s} {'ours ms':>9s} {'nvmath ms':>10s} {'cupy ms':>9s} {'ours/nvmath':>12s} {'ours/cupy':>10s}")
    for n in names:
        o, r, c = (x.get(n, {}).get("median_ms") for x in (ours, ref, cupy))
        row = {"case": n, "ours_ms": o, "nvmath_ms": r, "cupy_ms": c,
               "ours_over_nvmath": o / r if o and r else None, "ours_over_cupy": o / c if o and c else None}
        rows.append(row)
        fmt = lambda v, w=9: f"{v:{w}.3f}" if v is not None else " " * (w - 1) + "-"  # noqa: E731
        print(f"{n:34s} {fmt(o)} {fmt(r, 10)} {fmt(c)} {fmt(row['ours_over_nvmath'], 12)} {fmt(row['ours_over_cupy'], 10)}")
    floor = cupy.get("copy_floor", {}).get("median_ms")
    if floor and ours.get("scale_epilog"):
        print(f"copy floor {floor:.3f} ms; scale epilog reaches {floor / ours['scale_epilog']['median_ms']:.0%} of it")
    for key in ("host_stateless_epilog_1x1024", "host_stateful_execute_1x1024", "host_plain_1x1024",
                "host_stateless_runtime_shift_1x1024"):
        for impl, r in runs.items():
            if key in r:
                print(f"{key:34s} {impl:7s} {r[key]['median_us']:10.1f} us")
    for impl, r in runs.items():
        if "peak_memory_bytes" in r:
            print(f"peak pool memory, fused filter fft, {impl:7s} {r['peak_memory_bytes'] / 2**20:10.1f} MiB")
    inlining = report_inlining(ours)
    targets = performance_targets(ours, ref) + array_terms_targets(ours)
    for t in targets:
        print(f"target {t['what']:44s} {t['value']:10.3f} vs {t['limit']:8.3f} {'met' if t['met'] else 'MISSED'}")
    return {"rows": rows, "inlining": inlining, "copy_floor_ms": floor, "targets": targets, "runs": runs}


def performance_targets(ours, ref):
    """The performance issue's targets, each as measured value vs limit."""
    med = lambda r, k: r.get(k, {}).get("median_ms")  # noqa: E731
    checks = [
        ("scale epilog / our plain FFT", med(ours, "scale_epilog"), med(ours, "plain"), 1.03, "ratio"),
        ("filter epilog ms", med(ours, "filter_epilog"), 1, 0.65, "abs"),
        ("window prolog ms", med(ours, "window_prolog"), 1, 0.70, "abs"),
        ("convolution ms", med(ours, "convolution"), 1, 1.0, "abs"),
        ("R2C + scale epilog ms", med(ours, "r2c_scale_epilog"), 1, 0.50, "abs"),
        ("2-D scale epilog / our plain 2-D", med(ours, "2d_scale_epilog"), med(ours, "2d_plain"), 1.03, "ratio"),
        ("host us, stateless fft(x, epilog=...)", ours.get("host_stateless_epilog_1x1024", {}).get("median_us"), 1, 30, "abs"),
        ("host us, stateful execute()", ours.get("host_stateful_execute_1x1024", {}).get("median_us"), 1, 15, "abs"),
        ("peak MiB, ours / nvmath-python", ours.get("peak_memory_bytes"), ref.get("peak_memory_bytes"), 1.0, "ratio"),
    ]
    out = []
    for what, value, base, limit, _ in checks:
        if value is None or not base:
            continue
        v = value / base
        out.append({"what": what, "value": v, "limit": limit, "met": v <= limit})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", choices=["ours", "nvmath", "cupy"])
    ap.add_argument("--report", nargs="+")
    ap.add_argument("--json")
    ap.add_argument("--only", choices=["array_terms"], help="run the plain FFT and these cases only")
    args = ap.parse_args(argv)
    if args.report:
        result = report(args.report)
    else:
        d = inputs()
        runs = {"ours": run_ours, "nvmath": run_nvmath, "cupy": run_cupy}
        if args.only == "array_terms":
            runs = {"ours": run_array_terms_only, "nvmath": run_array_terms_only, "cupy": run_array_terms_only}
        measured = runs[args.impl](d, args.impl) if args.only else runs[args.impl](d)
        result = {"impl": args.impl, "machine": machine(), **measured}
        print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
