"""Prologs and epilogs on the stateless functions and the ``FFT`` class, and ``norm=``, on every
execution (CPU, debug mode, fake GPU, GPU: the ``execution`` fixture), against float64 NumPy
references on seeded random data.

What only one side has stays with it: streams, allocators and torch tensors in test_gpu_fft.py
and test_gpu_compat.py, the CPU executor's layouts in test_cpu_executor.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import nvmath
from helpers import rand, reference, to_host, wide

GAIN = 2.0  # read by callbacks below; the tests change it

CASES = [
    # kind, shape, axes, dtype
    ("fft", (16, 64), [-1], "complex64"),
    ("fft", (4, 8, 12), [1, 2], "complex128"),
    ("fft", (2, 4, 8, 6), [1, 2, 3], "complex64"),
    ("ifft", (8, 32), [-1], "complex128"),
    ("rfft", (16, 64), [-1], "float32"),
    ("rfft", (4, 10, 8), [1, 2], "float64"),
    ("irfft", (16, 33), [-1], "complex64"),
    ("irfft", (2, 6, 4, 5), [1, 2, 3], "complex128"),
]


def single(dtype) -> bool:
    return np.dtype(dtype) in (np.dtype(np.complex64), np.dtype(np.float32))


def mul(v, d):
    return v * d


@pytest.mark.parametrize("kind,shape,axes,dtype", CASES)
@pytest.mark.parametrize("which", ["prolog", "epilog", "both"])
def test_problem_kinds_with_callbacks(execution, kind, shape, axes, dtype, which):
    x = rand(shape, dtype, 1)
    if kind == "irfft":  # the spectrum of real data: DC and Nyquist terms real, as cuFFT assumes
        s = [shape[a] for a in axes[:-1]] + [2 * (shape[-1] - 1)]
        x = np.fft.rfftn(rand(shape[:-1] + (s[-1],), np.float64, 1), axes=axes).astype(dtype)
    out_real = kind == "irfft"
    prolog = epilog = None
    want_in = wide(x)
    if which in ("prolog", "both"):
        window = rand(shape, np.float32 if single(dtype) else np.float64, 2)  # real: keeps C2R input Hermitian
        prolog = {"fn": mul, "data": execution.put(window)}
        want_in = want_in * window
    want = reference(kind, want_in, axes)
    if which in ("epilog", "both"):
        filt_dtype = (np.float32 if single(dtype) else np.float64) if out_real else (
            np.complex64 if single(dtype) else np.complex128)
        filt = rand(want.shape, filt_dtype, 3)
        epilog = {"fn": mul, "data": execution.put(filt)}
        want = want * filt
    got = getattr(nvmath.fft, kind)(execution.put(x), axes=axes, prolog=prolog, epilog=epilog,
                                   options=execution.options)
    execution.check(got, want, dtype)


def raw_filter(data_out, offset, value, user_info, unused):  # cuFFT's form: it indexes the data
    data_out[offset] = value * user_info[offset]


def test_callback_forms_agree(execution):
    x, d = rand((8, 128), "complex64", 4), rand((8, 128), "complex64", 5)
    want = np.fft.fft(wide(x), axis=-1) * d
    forms = [{"fn": mul, "data": execution.put(d)}, {"fn": raw_filter, "data": execution.put(d)}]
    if execution.on_gpu:  # LTO-IR and a device address: what cuFFT itself takes
        device_d = execution.put(d)
        forms.append({"ltoir": nvmath.fft.compile_epilog(raw_filter, "complex64", "complex64"),
                      "data": int(device_d.data.ptr)})
    for epilog in forms:
        got = nvmath.fft.fft(execution.put(x), axes=[-1], epilog=epilog, options=execution.options)
        execution.check(got, want, "complex64")
    scale = 0.25
    got = nvmath.fft.fft(execution.put(x), axes=[-1], epilog=lambda v: v * scale, options=execution.options)
    execution.check(got, np.fft.fft(wide(x), axis=-1) * scale, "complex64")


def test_stateful_plan_execute_and_reset_operand(execution):
    x, d, y = (rand((8, 64), "complex128", seed) for seed in (12, 13, 14))
    with nvmath.fft.FFT(execution.put(x), axes=[-1], options=execution.options) as f:
        f.plan(prolog={"fn": mul, "data": execution.put(d)})
        execution.check(f.execute(), np.fft.fft(x * d, axis=-1), "complex128")
        f.reset_operand(execution.put(y))
        execution.check(f.execute(direction="inverse"), np.fft.ifft(y * d, axis=-1, norm="forward"), "complex128")


def test_new_data_array_reuses_the_plan(execution, events):
    x, f1, f2 = (rand((16, 256), "complex64", seed) for seed in (8, 9, 10))
    plain = np.fft.fft(wide(x), axis=-1)
    got = nvmath.fft.fft(execution.put(x), axes=[-1], epilog={"fn": mul, "data": execution.put(f1)},
                         options=execution.options)
    execution.check(got, plain * f1, "complex64")
    before = (events.compiles, events.plans)
    for f in (f2, f1):
        got = nvmath.fft.fft(execution.put(x), axes=[-1], epilog={"fn": mul, "data": execution.put(f)},
                             options=execution.options)
        execution.check(got, plain * f, "complex64")
    assert events.compiles == before[0]
    if execution.name != "debug":  # the debug mode plans each call anew: it keeps no engines
        assert events.plans == before[1], "a new data array must not build a new plan"


def test_changed_global_is_not_served_stale(execution, monkeypatch):
    x = rand((4, 256), "complex64", 11)
    plain = np.fft.fft(wide(x), axis=-1)
    for gain in (2.0, 3.0):
        monkeypatch.setattr(__import__(__name__), "GAIN", gain)
        got = nvmath.fft.fft(execution.put(x), axes=[-1], epilog=lambda v: v * GAIN, options=execution.options)
        execution.check(got, plain * gain, "complex64")


def test_hot_path_notices_changed_globals_new_data_and_new_operands(execution, monkeypatch):
    def scaled(v):
        return v * GAIN

    for trial in range(3):  # the same code each time: later calls take the reuse path
        monkeypatch.setattr(__import__(__name__), "GAIN", 1.0 + trial)
        x, d = rand((8, 256), "complex64", 30 + trial), rand((8, 256), "complex64", 40 + trial)
        plain = np.fft.fft(wide(x), axis=-1)
        call = lambda **callbacks: nvmath.fft.fft(execution.put(x), axes=[-1], options=execution.options,  # noqa: E731
                                                  **callbacks)
        execution.check(call(epilog=scaled), plain * GAIN, "complex64")
        execution.check(call(epilog={"fn": mul, "data": execution.put(d)}), plain * d, "complex64")
        execution.check(call(prolog={"fn": mul, "data": execution.put(d.real.copy())}),
                        np.fft.fft(wide(x) * d.real, axis=-1), "complex64")


# -- norm= -------------------------------------------------------------------------------------

@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
@pytest.mark.parametrize("kind", ["fft", "ifft", "rfft", "irfft"])
def test_norm_of_each_kind(execution, kind, norm):
    x = rand((6, 10), "float64" if kind == "rfft" else "complex128", 20)
    if kind == "irfft":
        x = np.fft.rfft(rand((6, 18), "float64", 20), axis=-1)
    got = getattr(nvmath.fft, kind)(execution.put(x), axes=[-1], norm=norm, options=execution.options)
    execution.check(got, reference(kind, x, [-1], norm=norm), x.dtype)


@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_norm_with_a_value_epilog_and_user_data(execution, norm):
    x, h = rand((8, 128), "complex128", 9), rand((8, 128), "complex128", 10)
    got = nvmath.fft.ifft(execution.put(x), axes=[-1], epilog={"fn": mul, "data": execution.put(h)}, norm=norm,
                          options=execution.options)
    execution.check(got, reference("ifft", x, [-1], norm=norm) * h, "complex128")


def test_norm_with_a_cufft_form_epilog_goes_into_the_prolog(execution):
    def store_twice(data_out, offset, value, user_info, unused):
        data_out[offset] = value * 2

    x = rand(32, "complex128", 21)
    got = nvmath.fft.ifft(execution.put(x), epilog=store_twice, norm="backward", options=execution.options)
    execution.check(got, 2 * np.fft.ifft(x), "complex128")


def test_norm_with_a_prolog_only(execution):
    x = rand((3, 8), "complex64", 22)
    got = nvmath.fft.fft(execution.put(x), axes=[-1], prolog=lambda v: v * 3, norm="ortho", options=execution.options)
    execution.check(got, 3 * np.fft.fft(wide(x), axis=-1, norm="ortho"), "complex64")


def test_norm_and_direction_on_the_reused_stateless_path(execution):
    """Repeated calls reuse the planned engine: each call's data reaches the fused, scaled epilog."""
    for seed in range(3):
        x, h = rand((4, 64), "complex64", 20 + seed), rand((4, 64), "complex64", 30 + seed)
        got = nvmath.fft.fft(execution.put(x), axes=-1, epilog={"fn": mul, "data": execution.put(h)}, norm="ortho",
                             direction="inverse", options=execution.options)
        execution.check(got, np.fft.ifft(wide(x), axis=-1, norm="ortho") * h, "complex64")
        got = nvmath.fft.ifft(execution.put(x), axes=-1, epilog={"fn": raw_filter, "data": execution.put(h)},
                              norm="backward", options=execution.options)
        execution.check(got, np.fft.ifft(wide(x), axis=-1) * h, "complex64")



def test_options_and_execution_given_on_every_call_reuse_the_engine(execution, events):
    """Code written for nvmath-python passes ``options=`` and ``execution=`` on every call, often as
    new objects: equal values reuse the first call's engine (before, each such call planned anew)."""
    if execution.name == "debug":
        pytest.skip("the debug mode plans each call anew")
    space = "cuda" if execution.name in ("gpu", "fake_gpu") else "cpu"
    named = nvmath.fft.ExecutionCUDA if space == "cuda" else nvmath.fft.ExecutionCPU
    x = rand((8, 64), "complex64", 50)
    plain = np.fft.fft(wide(x), axis=-1)
    settings = [
        lambda: {"execution": space},
        lambda: {"execution": named()},
        lambda: {"options": {"blocking": True, "float_literals": "element"}},
        lambda: {"options": nvmath.fft.FFTOptions(user_data_copy=True), "execution": space.upper()},
    ]
    for make in settings:
        for seed in range(3):
            h = rand((8, 64), "complex64", 60 + seed)
            got = nvmath.fft.fft(execution.put(x), axes=[-1], epilog={"fn": mul, "data": execution.put(h)}, **make())
            execution.check(got, plain * h, "complex64")
            if seed == 0:
                planned = events.plans
        assert events.plans == planned, f"{make()}: equal settings planned again"


def test_options_a_rerun_would_not_honour_plan_each_call(execution, events):
    if execution.name == "debug":
        pytest.skip("the debug mode plans each call anew")
    for seed in range(3):
        x = rand((4, 32), "complex64", 70 + seed)
        want = 2 * np.fft.fft(wide(x), axis=-1)  # before the call: on the CPU the operand is x itself
        before = events.plans
        operand = execution.put(x)
        got = nvmath.fft.fft(operand, axes=[-1], epilog=lambda v: v * 2, options={"inplace": True})
        execution.check(operand, want, "complex64")
        assert got is operand and events.plans == before + 1


def test_stateful_norm_is_for_the_planned_direction(execution):
    x = rand(16, "complex128", 23)
    with nvmath.fft.FFT(execution.put(x), options=execution.options) as f:
        f.plan(norm="forward")
        execution.check(f.execute(), np.fft.fft(x, norm="forward"), "complex128")
        with pytest.raises(ValueError, match="plan again"):
            f.execute(direction="inverse")


# -- the reused stateless path: each call's data and input ------------------------------------

def test_reruns_lay_out_each_calls_data_anew(execution):
    x = rand((32, 256), "complex64", 1)
    plain = np.fft.fft(wide(x), axis=-1)
    for seed in (2, 3, 2):  # later calls reuse the first call's engine
        w = rand((32, 256), "complex64", seed)
        d = execution.put(np.asfortranarray(w))  # not the layout the offsets walk: copied on each call
        got = nvmath.fft.fft(execution.put(x), axes=[-1], epilog={"fn": raw_filter, "data": d},
                             options=execution.options)
        execution.check(got, plain * w, "complex64")


def test_reruns_copy_each_calls_input(execution):
    for seed in (4, 5, 6):
        xh = rand((16, 129), "complex128", seed)  # cuFFT's C2R overwrites its input: it reads a copy
        operand = execution.put(xh)
        got = nvmath.fft.irfft(operand, axes=[-1], epilog=lambda v: v * 0.5, options=execution.options)
        execution.check(got, np.fft.irfft(xh, n=256, axis=-1, norm="forward") * 0.5, "float64")
        assert np.array_equal(to_host(operand), xh), "the caller's operand changed"
        rh = rand((16, 256), "float32", seed)  # promoted to complex: a copy too
        got = nvmath.fft.fft(execution.put(rh), axes=[-1], epilog=lambda v: v * 2, options=execution.options)
        execution.check(got, np.fft.fft(wide(rh), axis=-1) * 2, "complex64")
