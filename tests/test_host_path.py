"""The GPU hot path on the CPU (CuPy and cuFFT faked, benchmarks/fake_gpu.py): a reused stateless
engine and a stateful FFT hand cuFFT each call's operand, output, data, stream and device, and
anything that changes the callbacks' meaning takes the full path again."""

from __future__ import annotations

import gc
import sys
import threading

import numpy as np
import pytest

import nvmath
from fake_gpu import read
from nvmath.fft import _reuse

GAIN = 2.0  # read by a callback below; the tests change it


def device_array(shape, dtype=np.complex64, seed=0):
    cupy = sys.modules["cupy"]
    rng = np.random.default_rng(seed)
    host = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if np.dtype(dtype).kind == "c" else 0)
    return cupy.asarray(host.astype(dtype))


def test_a_reused_engine_gets_each_calls_operand_and_a_new_output(fake_gpu):
    xs = [device_array((4, 64), seed=k) for k in range(3)]
    ys = [nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * 2) for x in xs]  # a new lambda each call
    assert fake_gpu.plans_made == 1 and len(fake_gpu.launches) == 3
    for x, y, launch in zip(xs, ys, fake_gpu.launches):
        assert (launch.input, launch.output, launch.direction) == (x.data.ptr, y.data.ptr, -1)
        assert y.shape == (4, 64) and y.dtype == np.complex64
    assert len({y.data.ptr for y in ys}) == 3
    y = nvmath.fft.ifft(xs[0], axes=[-1], epilog=lambda v: v * 2)
    assert fake_gpu.plans_made == 2 and fake_gpu.launches[-1].direction == 1 and fake_gpu.launches[-1].output == y.data.ptr


def test_each_calls_data_reaches_the_slot(fake_gpu):
    x = device_array((4, 64))
    filters = [device_array((4, 64), seed=k) for k in (1, 2, 1)]
    for f in filters:
        nvmath.fft.fft(x, axes=[-1], epilog={"fn": lambda v, d: v * d, "data": f})
    assert fake_gpu.plans_made == 1
    assert [next(iter(launch.caller_info.values()))[1] for launch in fake_gpu.launches] == [f.data.ptr for f in filters]


def filter_by_offset(data_out, offset, element, user_info, unused):  # cuFFT's form: it indexes the data
    data_out[offset] = element * user_info[offset]


def test_data_in_another_layout_is_copied_on_each_call(fake_gpu):
    x = device_array((4, 64))
    for seed in (1, 2):
        wide = device_array((4, 128), seed=seed)
        data = wide[:, ::2]  # the output's shape, strides the offsets do not walk
        nvmath.fft.fft(x, axes=[-1], epilog={"fn": filter_by_offset, "data": data})
        slot = next(iter(fake_gpu.launches[-1].caller_info.values()))[1]
        assert slot != data.data.ptr
        np.testing.assert_array_equal(read(slot, np.complex64, 4 * 64), data.get().reshape(-1))
    assert fake_gpu.plans_made == 1


def test_an_operand_cufft_would_overwrite_is_copied_on_each_call(fake_gpu):
    for seed in (1, 2):
        x = device_array((4, 33), seed=seed)
        nvmath.fft.irfft(x, axes=[-1], epilog=lambda v: v * 2)  # C2R overwrites its input
        launch = fake_gpu.launches[-1]
        assert launch.input != x.data.ptr
        np.testing.assert_array_equal(read(launch.input, np.complex64, 4 * 33), x.get().reshape(-1))
    assert fake_gpu.plans_made == 1


def test_outputs_in_the_optimized_layout_are_allocated_strided(fake_gpu):
    x = device_array((64, 4))
    ys = [nvmath.fft.fft(x, axes=[0], epilog=lambda v: v * 2) for _ in range(2)]  # FFT axis innermost
    for y, launch in zip(ys, fake_gpu.launches):
        assert y.shape == (64, 4) and y.strides == (8, 64 * 8) and launch.output == y.data.ptr
    assert ys[0].data.ptr != ys[1].data.ptr


def gain_by(v, *, g):  # g: a runtime parameter, in the data slot after the pointer
    return v * g


def test_each_calls_runtime_parameters_reach_the_slot(fake_gpu):
    x = device_array((4, 64), np.complex128)
    for g in (2.0, 3.0, 2.5):
        nvmath.fft.fft(x, axes=[-1], epilog={"fn": gain_by, "params": {"g": g}})
    assert fake_gpu.plans_made == 1
    slots = [next(iter(launch.slot_bytes.values())) for launch in fake_gpu.launches]
    assert [float(np.frombuffer(s[8:16], np.float64)[0]) for s in slots] == [2.0, 3.0, 2.5]


def gain_epilog(v):
    return v * GAIN


def test_a_changed_global_or_closure_value_takes_the_full_path(fake_gpu, monkeypatch):
    x = device_array((4, 64))
    nvmath.fft.fft(x, axes=[-1], epilog=gain_epilog)
    nvmath.fft.fft(x, axes=[-1], epilog=gain_epilog)
    monkeypatch.setattr(sys.modules[__name__], "GAIN", 3.0)
    nvmath.fft.fft(x, axes=[-1], epilog=gain_epilog)  # new constant: new LTO-IR, new plan
    assert fake_gpu.plans_made == 2
    plans = [launch.plan for launch in fake_gpu.launches]
    assert plans[0] == plans[1] != plans[2]

    def scaled(gain):
        return lambda v: v * gain

    for gain in (4.0, 5.0, 4.0, 4.0):
        nvmath.fft.fft(x, axes=[-1], epilog=scaled(gain))
    plans = [launch.plan for launch in fake_gpu.launches[3:]]
    assert plans[0] == plans[2] == plans[3] != plans[1]


def times_gain(v, d):
    return v * d * GAIN


def test_defaults_or_code_given_to_a_reused_function_take_the_full_path(fake_gpu, plans, monkeypatch):
    x, h = device_array((4, 64)), device_array((4, 64), seed=1)

    def mul(v, d):  # reads its arguments alone: the key's code object stands for it, no fingerprint taken
        return v * d

    def call():
        return nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": h})

    call(), call()
    assert len(plans) == 1
    mul.__defaults__ = (2.0,)  # the full path refuses defaults: the kept engine must not run instead
    with pytest.raises(TypeError, match="default values"):
        call()
    mul.__defaults__ = None
    mul.__code__ = times_gain.__code__  # now it reads GAIN: planned again, then once per GAIN value
    call(), call()
    monkeypatch.setattr(sys.modules[__name__], "GAIN", 3.0)
    call()
    assert len(plans) == 4 and len({launch.plan for launch in fake_gpu.launches}) == 3


@pytest.mark.parametrize("spelling", ["function", "fn_data"])
def test_defaults_given_later_to_a_function_reused_without_a_fingerprint_are_seen(fake_gpu, plans, spelling):
    """A function computing from its code alone is reused without fingerprinting it (its key holds
    its code and that it has no defaults): defaults given to the same function object later must
    not find its engine."""
    x, h = device_array((4, 64)), device_array((4, 64), seed=1)

    def halve_it(v):
        return v * 0.5

    def mul(v, d):
        return v * d

    fn = halve_it if spelling == "function" else mul
    epilog = fn if spelling == "function" else {"fn": mul, "data": h}
    call = lambda: nvmath.fft.fft(x, axes=[-1], epilog=epilog)  # noqa: E731
    call(), call()
    assert len(plans) == 1
    fn.__kwdefaults__ = {"unused": 2.0}  # read by no one, but the function is fingerprinted from now on
    call(), call()
    assert len(plans) == 2
    fn.__kwdefaults__, fn.__defaults__ = None, (2.0,)  # the full path refuses positional defaults
    with pytest.raises(TypeError, match="default values"):
        call()


def test_a_functions_reuse_key_holds_what_code_alone_asks_beyond_the_code():
    """``fingerprints_hold`` skips the fingerprint of a function planned from its code alone: that
    is sound only while equal keys mean equal ``code_alone`` answers."""
    from fftfuse_compiler.fingerprint import code_alone

    from nvmath.fft._callbacks import callback_reuse_key

    def alone(v):
        return v * 0.5

    def reads(v):
        return v * GAIN

    def with_default(v, s=2.0):
        return v * s

    def keyword(v, *, s):
        return v * s

    functions = [alone, reads, with_default, keyword, lambda v: v * 0.5]
    variants = []
    for fn in functions:
        for defaults, kwdefaults in ((None, None), ((1.0,), None), (None, {"s": 1.0})):
            copy = type(fn)(fn.__code__, fn.__globals__, fn.__name__, None, fn.__closure__)
            copy.__defaults__, copy.__kwdefaults__ = defaults, kwdefaults
            variants.append(copy)
    for a in variants:
        for b in variants:
            for spell in (lambda f: f, lambda f: {"fn": f, "data": np.ones(4)}):
                if callback_reuse_key(spell(a), "epilog", "numpy") == callback_reuse_key(spell(b), "epilog", "numpy"):
                    assert code_alone(a) == code_alone(b), (a, b)
    assert callback_reuse_key(alone, "epilog", "numpy") != callback_reuse_key(variants[1], "epilog", "numpy")


@pytest.mark.parametrize("other", ["strides", "dtype", "shape", "device"])
def test_data_of_another_layout_or_device_never_reuses_the_engine(fake_gpu, plans, other):
    cupy = sys.modules["cupy"]
    x, h = device_array((4, 64)), device_array((4, 64), seed=1)
    assert (h.shape, h.strides, h.dtype) == ((4, 64), (512, 8), np.complex64)
    for _ in range(2):
        nvmath.fft.fft(x, axes=[-1], epilog={"fn": times_data, "data": h})
    assert len(plans) == 1
    # Each differs from h in one of shape, strides (in bytes), dtype and device alone.
    if other == "strides":
        data = device_array((4, 128), seed=2)[:, ::2]
    elif other == "dtype":
        data = device_array((4, 64), np.float64, seed=2)
    elif other == "shape":
        data = device_array((1, 64), seed=2)  # broadcasts along the batch
    else:
        with cupy.cuda.Device(1):
            data = device_array((4, 64), seed=2)
        with pytest.raises(ValueError, match="on GPU 1 but the operand is on GPU 0"):
            nvmath.fft.fft(x, axes=[-1], epilog={"fn": times_data, "data": data})
        return
    for _ in range(2):
        nvmath.fft.fft(x, axes=[-1], epilog={"fn": times_data, "data": data})
    assert len(plans) == 2 and fake_gpu.launches[-1].plan != fake_gpu.launches[0].plan
    nvmath.fft.fft(x, axes=[-1], epilog={"fn": times_data, "data": h})  # the first engine is still kept
    assert len(plans) == 2 and fake_gpu.launches[-1].plan == fake_gpu.launches[0].plan


def test_each_calls_stream_is_used(fake_gpu):
    cupy = sys.modules["cupy"]
    x = device_array((4, 64))
    s1, s2 = cupy.cuda.Stream(), cupy.cuda.Stream()

    def call(stream=None):  # one code object: the calls after the first reuse its engine
        return nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * 2, stream=stream)

    call(s1)
    with s2:
        call()  # CuPy's current stream, not the first call's
    call(12345)
    call()
    assert [launch.stream for launch in fake_gpu.launches] == [s1.ptr, s2.ptr, 12345, 0]
    assert fake_gpu.plans_made == 1 and len(_reuse.stateless_engines.mine()) == 1


def test_each_operand_runs_on_its_device(fake_gpu):
    cupy = sys.modules["cupy"]
    x0 = device_array((4, 64))
    with cupy.cuda.Device(1):
        x1 = device_array((4, 64))
    for x in (x0, x1, x0, x1):
        nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * 2)
        assert cupy.cuda.runtime.getDevice() == 0  # the caller's device is current again
    with cupy.cuda.Device(1):
        nvmath.fft.fft(x0, axes=[-1], epilog=lambda v: v * 2)
        assert cupy.cuda.runtime.getDevice() == 1
    assert [launch.device for launch in fake_gpu.launches] == [0, 1, 0, 1, 0]
    assert fake_gpu.plans_made == 2 and fake_gpu.launches[0].plan == fake_gpu.launches[2].plan != fake_gpu.launches[1].plan


def test_debug_mode_switched_on_between_calls_is_honoured(fake_gpu, monkeypatch):
    x = device_array((2, 16), np.complex128)

    def call():  # one code object: the second call would reuse the first one's engine
        return nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * 2)

    call()
    monkeypatch.setenv("FFTFUSE_DEBUG", "1")
    y = call()  # on the CPU, as plain Python
    assert len(fake_gpu.launches) == 1
    np.testing.assert_allclose(y.get(), 2 * np.fft.fft(x.get(), axis=-1), rtol=1e-12, atol=1e-12)


def test_stateful_execute_follows_reset_operand_and_replanning(fake_gpu):
    cupy = sys.modules["cupy"]
    x, x2, f = device_array((4, 64)), device_array((4, 64), seed=1), device_array((4, 64), seed=2)
    with nvmath.fft.FFT(x, axes=[-1]) as fft:
        fft.plan(epilog={"fn": lambda v, d: v * d, "data": f})
        y = fft.execute()
        ((info, _),) = fake_gpu.launches[-1].caller_info.values()
        assert info == f.data.ptr  # a stateful plan owns its data: the pointer itself
        assert (fake_gpu.launches[-1].input, fake_gpu.launches[-1].output) == (x.data.ptr, y.data.ptr)
        fft.reset_operand(x2)
        s = cupy.cuda.Stream()
        y2 = fft.execute(stream=s)
        assert (fake_gpu.launches[-1].input, fake_gpu.launches[-1].output, fake_gpu.launches[-1].stream) == (
            x2.data.ptr, y2.data.ptr, s.ptr)
        first = fake_gpu.launches[-1].plan
        f2 = device_array((4, 64), seed=3)
        fft.plan(epilog={"fn": lambda v, d: v * d, "data": f2})  # new data: a new plan, and its pointer
        fft.execute(direction="inverse")
        ((info, _),) = fake_gpu.launches[-1].caller_info.values()
        assert fake_gpu.launches[-1].plan != first and fake_gpu.launches[-1].direction == 1 and info == f2.data.ptr
    with pytest.raises(RuntimeError, match="freed"):
        fft.execute()


def test_stateful_set_params_reaches_the_next_launch(fake_gpu):
    x = device_array((4, 64), np.complex128)
    with nvmath.fft.FFT(x, axes=[-1]) as fft:
        fft.plan(epilog={"fn": gain_by, "params": {"g": 2.0}})
        fft.execute()
        fft.set_params(epilog={"g": 5.0})
        fft.execute()
    slots = [next(iter(launch.slot_bytes.values())) for launch in fake_gpu.launches]
    assert [float(np.frombuffer(s[8:16], np.float64)[0]) for s in slots] == [2.0, 5.0]


# -- every spelling of a callback takes the hot path ------------------------------------------------
def halve(v):
    return v * 0.5


def times_data(v, d):
    return v * d


@pytest.fixture
def plans(monkeypatch):
    """How many times the planner ran (each a full-path call)."""
    from nvmath.fft import _api

    made = []
    real = _api.make_plan

    def counting(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_api, "make_plan", counting)
    return made


def epilog_ltoir(fn=halve, data=None):
    return nvmath.fft.compile_epilog(fn, "complex64", data, compute_capability=90)


def spellings(x):
    """Per spelling: a function making this call's epilog argument (new objects each call)."""
    h = device_array(x.shape, seed=5)
    ltoir = epilog_ltoir()
    DeviceCallable = nvmath.fft.DeviceCallable
    return {
        "function": lambda: halve,
        "lambda": lambda: (lambda v: v * 0.5),
        "fn_data": lambda: {"fn": times_data, "data": h},
        "fn_data_via_parser": lambda: {"fn": times_data, "data": h, "params": None},
        "ltoir": lambda: {"ltoir": ltoir},
        "ltoir_equal_copy": lambda: {"ltoir": bytes(bytearray(ltoir))},  # a new object, equal bytes
        "ltoir_bytearray": lambda: {"ltoir": bytearray(ltoir)},
        "ltoir_size": lambda: {"ltoir": ltoir, "size": len(ltoir)},
        "ltoir_pointer": lambda: {"ltoir": ltoir, "data": h.data.ptr},
        "device_callable": lambda: DeviceCallable(ltoir=ltoir, data=h.data.ptr),
        "device_callable_fn": lambda: DeviceCallable(fn=times_data, data=h),
        "bare_bytes": lambda: ltoir,
    }


SPELLINGS = ["function", "lambda", "fn_data", "fn_data_via_parser", "ltoir", "ltoir_equal_copy", "ltoir_bytearray",
             "ltoir_size", "ltoir_pointer", "device_callable", "device_callable_fn", "bare_bytes"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_is_planned_once_then_reused(fake_gpu, plans, spelling):
    x = device_array((2, 64))
    make = spellings(x)[spelling]
    for _ in range(4):
        nvmath.fft.fft(x, axes=[-1], epilog=make())
    assert len(plans) == 1 and fake_gpu.plans_made == 1 and len(fake_gpu.launches) == 4
    assert len({launch.plan for launch in fake_gpu.launches}) == 1


def test_spellings_of_one_callback_and_pointer_share_the_plan(fake_gpu, plans):
    x = device_array((2, 64))
    h = device_array((2, 64), seed=5)
    ltoir = epilog_ltoir()
    for epilog in ({"ltoir": ltoir, "data": h.data.ptr}, nvmath.fft.DeviceCallable(ltoir=ltoir, data=h.data.ptr),
                   {"ltoir": bytes(bytearray(ltoir)), "data": h.data.ptr, "size": len(ltoir)}):
        nvmath.fft.fft(x, axes=[-1], epilog=epilog)
    assert len({launch.plan for launch in fake_gpu.launches}) == 1 and fake_gpu.plans_made == 1


def only_ltoir(fake_gpu, launch):
    ((code, ltoir),) = fake_gpu.ltoir[launch.plan].items()
    return ltoir


def test_changed_ltoir_content_never_reuses_a_plan(fake_gpu, plans):
    x = device_array((2, 64))
    half, quarter = epilog_ltoir(halve), epilog_ltoir(lambda v: v * 0.25)
    assert half != quarter
    # Temporary bytes objects, dropped after each call: a freed object's id may come back for the other content.
    for content in (half, quarter, half, quarter, quarter):
        nvmath.fft.fft(x, axes=[-1], epilog={"ltoir": bytes(bytearray(content))})
        assert only_ltoir(fake_gpu, fake_gpu.launches[-1]) == content
    assert len(plans) == 2


def test_a_bytearray_or_device_callable_changed_in_place_is_planned_again(fake_gpu, plans):
    x = device_array((2, 64))
    half, quarter = epilog_ltoir(halve), epilog_ltoir(lambda v: v * 0.25)
    buffer = bytearray(half)
    callable_ = nvmath.fft.DeviceCallable(ltoir=half)
    for epilog in (buffer, callable_):
        nvmath.fft.fft(x, axes=[-1], epilog={"ltoir": epilog} if epilog is buffer else epilog)
        assert only_ltoir(fake_gpu, fake_gpu.launches[-1]) == half
    buffer[:] = quarter
    callable_.ltoir, callable_.size = quarter, len(quarter)
    for epilog in (buffer, callable_):
        nvmath.fft.fft(x, axes=[-1], epilog={"ltoir": epilog} if epilog is buffer else epilog)
        assert only_ltoir(fake_gpu, fake_gpu.launches[-1]) == quarter


def test_each_ltoir_data_pointer_is_the_one_its_plan_gets(fake_gpu, plans):
    x = device_array((2, 64))
    ltoir = epilog_ltoir(times_data, "complex64")
    pointers = [device_array((2, 64), seed=k).data.ptr for k in (1, 2)]
    for ptr in (pointers[0], pointers[1], pointers[0], pointers[1]):
        nvmath.fft.fft(x, axes=[-1], epilog={"ltoir": ltoir, "data": ptr})
        ((info, _),) = fake_gpu.launches[-1].caller_info.values()
        assert info == ptr  # user_info is the pointer itself, fixed in the plan
    assert len(plans) == 2


def test_ltoir_data_copied_for_the_call_is_not_kept_in_a_plan(fake_gpu, plans):
    x = device_array((64, 4))  # axes=[0]: the output's layout is not the data's
    ltoir = epilog_ltoir(times_data, "complex64")
    h = device_array((64, 4), seed=3)
    for _ in range(2):
        nvmath.fft.fft(x, axes=[0], epilog={"ltoir": ltoir, "data": h})
        ((info, _),) = fake_gpu.launches[-1].caller_info.values()
        assert info != h.data.ptr
        np.testing.assert_array_equal(read(info, np.complex64, 64 * 4).reshape(4, 64).T, h.get())
    assert len(plans) == 2  # the copy's address is fixed in the plan: each call plans for its own


@pytest.mark.parametrize("spelling", ["ltoir_pointer", "device_callable", "device_callable_fn", "fn_data"])
def test_a_stateless_chain_reuses_its_plans_for_every_spelling(fake_gpu, plans, spelling, monkeypatch):
    from nvmath.fft import _chain

    monkeypatch.setattr(_chain.stateless_chains, "local", threading.local())
    x = device_array((2, 64))
    make = spellings(x)[spelling]
    try:
        for _ in range(3):
            nvmath.fft.filtered(x, axes=[-1], pointwise=make())
        assert len(plans) == 2 and len(fake_gpu.launches) == 6  # one forward and one inverse plan
        assert len(_chain.stateless_chains.mine()) == 1
    finally:
        _chain.stateless_chains.mine().clear()  # its plans go while the fake is in place
        gc.collect()


def test_a_bool_axis_is_refused_after_the_integer_axis_was_reused():
    """``True`` is an index to ``operator.index`` (1): the reuse key must not take it for axis 1."""
    import nvmath

    x = np.ones((4, 8), np.complex64)
    for _ in range(2):
        nvmath.fft.fft(x, axes=[1])
    with pytest.raises(TypeError, match="a bool"):
        nvmath.fft.fft(x, axes=[True])
