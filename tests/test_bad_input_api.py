"""Bad input to the FFT API, as a table: each row is a call, the exception it must raise, and a
fragment of the message that says what was expected. Host operands: runs anywhere."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import nvmath
from nvmath.fft import FFT, DeviceCallable, ExecutionCPU, ExecutionCUDA, FFTOptions, LayoutError, NoGPUError
from nvmath.fft._cpu import CallbackIndexError

rng = np.random.default_rng(7)
X = (rng.standard_normal((4, 16)) + 1j * rng.standard_normal((4, 16))).astype(np.complex64)
R = rng.standard_normal((4, 16)).astype(np.float32)
fft, ifft, rfft, irfft = nvmath.fft.fft, nvmath.fft.ifft, nvmath.fft.rfft, nvmath.fft.irfft


def planned(operand=X, **plan):
    f = FFT(operand, axes=[-1])
    f.plan(**plan)
    return f


def scale(v, d):
    return v * d


def by_offset(data_out, offset, element, user_info, unused):  # cuFFT's form: it indexes the data itself
    data_out[offset] = element * user_info[offset]


def gain(v, *, s):
    return v * s


def always_raises(v):
    raise ValueError("negative")


def raises_or_falls_off(v):
    if v.real > 0:
        raise ValueError("positive")


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def masked(a):
    return np.ma.masked_array(a, mask=np.zeros(a.shape, bool))


def plan_with_params():
    f = FFT(X, axes=[-1])
    f.plan(epilog={"fn": gain, "params": {"s": 2}})
    return f


PAIR = np.dtype([("re", np.float64), ("im", np.float64)])  # 16 bytes: 'void128'


def raises_boom(v):
    if v.real > -1e30:
        raise ValueError("boom")
    return v


def past_the_end(data_out, offset, value, user_info, unused):
    data_out[offset] = value * user_info[offset + 64]


def before_the_start(data_out, offset, value, user_info, unused):
    data_out[offset - 1000] = value


def with_bounds_checks(call):
    """``call`` run with the CPU's bounds checks on (``FFTFUSE_BOUNDS_CHECKS=1``; off by default)."""
    def checked():
        import os

        before = os.environ.get("FFTFUSE_BOUNDS_CHECKS")
        os.environ["FFTFUSE_BOUNDS_CHECKS"] = "1"
        try:
            return call()
        finally:
            if before is None:
                del os.environ["FFTFUSE_BOUNDS_CHECKS"]
            else:
                os.environ["FFTFUSE_BOUNDS_CHECKS"] = before

    return checked


CASES = [
    # -- axes
    ("axes float", lambda: fft(X, axes=[1.7]), TypeError, "axes must be integers, got 1.7"),
    ("axes bool", lambda: fft(X, axes=[True]), TypeError, "axes must be integers, got True"),
    ("axes float scalar", lambda: fft(X, axes=1.0), TypeError, "an int or a sequence of ints such as [-1]"),
    ("axes string", lambda: fft(X, axes="1"), TypeError, "an int or a sequence of ints such as [-1]"),
    ("axes out of range", lambda: fft(X, axes=[2]), LayoutError, "out of range for an operand of 2 dimensions"),
    ("axes repeated", lambda: fft(X, axes=[1, -1]), LayoutError, "repeat an axis"),
    ("axes empty", lambda: fft(X, axes=[]), LayoutError, "cuFFT runs 1-D to 3-D transforms"),
    ("axes 4-D", lambda: fft(np.ones((2,) * 5, np.complex64), axes=[0, 1, 2, 3]), LayoutError,
     "gives a 4-D FFT"),
    ("FFT axes float", lambda: FFT(X, axes=(0.0,)), TypeError, "axes must be integers, got 0.0"),
    # -- options
    ("num_threads negative", lambda: fft(X, options={"num_threads": -3}), ValueError, "num_threads must be a positive integer"),
    ("num_threads zero", lambda: fft(X, options=FFTOptions(num_threads=0)), ValueError, "a positive integer (or None), got 0"),
    ("num_threads float", lambda: fft(X, options={"num_threads": 2.5}), ValueError, "num_threads must be a positive integer"),
    ("ExecutionCPU threads", lambda: fft(X, execution=ExecutionCPU(num_threads=-3)), ValueError,
     "ExecutionCPU.num_threads must be a positive integer"),
    ("execution dict threads", lambda: fft(X, execution={"name": "cpu", "num_threads": 0}), ValueError,
     "execution['num_threads'] must be a positive integer"),
    ("fft_type unknown", lambda: FFT(X, options={"fft_type": "Z2Z"}), ValueError, "fft_type must be one of None, 'C2C'"),
    ("fft_type unknown, stateless", lambda: fft(X, options={"fft_type": "Z2Z"}), ValueError, "got 'Z2Z'"),
    ("fft_type lower case", lambda: FFT(X, options={"fft_type": "c2c"}), ValueError, "got 'c2c'"),
    ("fft_type R2C of a complex operand", lambda: fft(X, options={"fft_type": "R2C"}), LayoutError,
     "options.fft_type='R2C' transforms a real operand, got complex64"),
    ("fft_type C2R of a real operand", lambda: ifft(R, options={"fft_type": "C2R"}), LayoutError,
     "options.fft_type='C2R' transforms a complex operand, got float32"),
    ("fft_type C2R against fft's direction", lambda: fft(X, options={"fft_type": "C2R"}), ValueError,
     "fft() runs forward, and a C2R transform runs inverse only"),
    ("fft_type R2C against ifft's direction", lambda: ifft(R, options={"fft_type": "R2C"}), ValueError,
     "ifft() runs inverse, and a R2C transform runs forward only"),
    ("fft_type against rfft", lambda: rfft(R, options={"fft_type": "C2R"}), ValueError,
     "rfft() runs a R2C transform but options.fft_type is 'C2R'"),
    ("C2R in place through ifft", lambda: ifft(X, options={"fft_type": "C2R", "inplace": True}), LayoutError,
     "in-place transforms are supported for C2C only, not C2R"),
    ("fft_type against irfft", lambda: irfft(X, options={"fft_type": "C2C"}), ValueError,
     "irfft() runs a C2R transform"),
    ("R2C of complex", lambda: FFT(X, options={"fft_type": "R2C"}), LayoutError, "rfft needs a real operand"),
    ("inplace not bool", lambda: fft(X, options={"inplace": "yes"}), TypeError, "inplace must be True or False"),
    ("debug not bool", lambda: fft(X, options={"debug": "on"}), TypeError, "debug must be True or False"),
    ("patient_jit not bool", lambda: fft(X, options={"patient_jit": 1}), TypeError, "patient_jit must be True or False"),
    ("user_data_copy not bool", lambda: fft(X, options={"user_data_copy": None}), TypeError,
     "user_data_copy must be True or False"),
    ("last_axis_parity", lambda: irfft(X, options={"last_axis_parity": "three"}), ValueError,
     "last_axis_parity must be one of 'even', 'odd'"),
    ("result_layout", lambda: fft(X, options={"result_layout": "dense"}), ValueError,
     "result_layout must be one of 'optimized', 'natural'"),
    ("float_literals", lambda: fft(X, options={"float_literals": "single"}), ValueError,
     "float_literals must be one of 'element', 'double'"),
    ("blocking", lambda: fft(X, options={"blocking": "sometimes"}), ValueError, "blocking must be one of True"),
    ("blocking 1", lambda: fft(X, options={"blocking": 1}), ValueError, "blocking must be one of True"),
    ("device_id negative", lambda: fft(X, options={"device_id": -1}), ValueError, "device_id must be a non-negative integer"),
    ("unknown option", lambda: fft(X, options={"bogus": 1}), TypeError, "unknown FFT options ['bogus']"),
    ("options of a wrong type", lambda: fft(X, options=3), TypeError, "options must be an FFTOptions or a dict"),
    ("logger a string", lambda: fft(X, epilog=lambda v: v * 2, options={"logger": "x"}), TypeError,
     ("FFTOptions.logger must be a logging.Logger", "got str 'x'")),
    ("logger a string, no compile", lambda: FFT(X, options=FFTOptions(logger=print)), TypeError,
     "must be a logging.Logger (e.g. logging.getLogger('myapp')) or None"),
    # -- execution and streams
    ("execution name", lambda: fft(X, execution="tpu"), ValueError, "use 'cuda' or 'cpu'"),
    ("execution number", lambda: fft(X, execution=3), ValueError, "use 'cuda' or 'cpu'"),
    ("execution dict key", lambda: fft(X, execution={"name": "cpu", "threads": 2}), TypeError,
     "execution has unknown keys ['threads']"),
    ("ExecutionCUDA device", lambda: ExecutionCUDA(device_id=-1), ValueError, "ExecutionCUDA.device_id must be a non-negative integer"),
    ("stream string", lambda: fft(X, stream="s"), TypeError, "stream of type str is not understood"),
    ("stream negative", lambda: FFT(X, stream=-1), ValueError, "stream=-1 is not a cudaStream_t"),
    ("execute stream object", lambda: planned().execute(stream=object()), TypeError, "stream of type object"),
    ("plan stream bool", lambda: planned().plan(stream=True), TypeError, "stream of type bool"),
    ("stream on the CPU", lambda: fft(X, stream=5), ValueError,
     ("stream=5 was given, but this FFT runs on the CPU", "Drop stream=", "execution='cuda'")),
    ("stream on the CPU, FFT", lambda: FFT(X, execution="cpu", stream=7), ValueError, "stream=7 was given"),
    ("stream on the CPU, plan", lambda: planned(stream=5), ValueError, "runs on the CPU, which has no CUDA streams"),
    ("stream on the CPU, execute", lambda: planned().execute(stream=5), ValueError, "stream=5 was given"),
    ("release_workspace not bool", lambda: planned().execute(release_workspace="maybe"), TypeError,
     "release_workspace must be True or False, got 'maybe'"),
    ("release_workspace not bool, unplanned", lambda: FFT(X).execute(release_workspace=1), TypeError,
     "release_workspace must be True or False, got 1"),
    # -- operands
    ("big-endian operand", lambda: fft(X.astype(">c8")), TypeError, "non-native byte order dtype '>c8'"),
    ("big-endian user data", lambda: fft(X, epilog={"fn": scale, "data": X.astype(">c8")}), TypeError,
     "epilog data has the non-native byte order"),
    ("list operand", lambda: fft([1, 2, 3]), TypeError, "operand of type list is not supported"),
    ("NumPy scalar operand", lambda: fft(np.complex64(1)), TypeError, "operand of type complex64 is not supported"),
    ("0-D operand", lambda: fft(np.array(1, np.complex64)), LayoutError, "cannot transform a 0-dimensional operand"),
    ("empty operand", lambda: fft(np.ones((0, 8), np.complex64)), LayoutError, "is empty; nothing to transform"),
    ("integer operand", lambda: fft(np.arange(8)), LayoutError, "use float32, float64, complex64 or complex128"),
    ("float16 operand of a length cuFFT cannot transform", lambda: rfft(np.ones(12, np.float16)), LayoutError,
     "half-precision (float16) FFTs need power-of-two lengths"),
    ("object operand", lambda: fft(np.array([1, 2], dtype=object)), LayoutError, "dtype object is not supported"),
    ("masked operand", lambda: fft(masked(X)), TypeError,
     ("operand is a NumPy masked array", "mask dropped", "x.filled(0)")),
    ("masked operand, FFT", lambda: FFT(masked(X)), TypeError, "operand is a NumPy masked array"),
    ("rfft of complex", lambda: rfft(X), LayoutError, "rfft needs a real operand"),
    ("irfft of real", lambda: irfft(R), LayoutError, "irfft needs a complex operand"),
    ("irfft of length 1", lambda: irfft(np.ones((4, 1), np.complex64)), LayoutError,
     ("pass at least 2 elements", "or last_axis_parity='odd' for a result of length 2*m-1")),
    # -- in place
    ("in place, real operand", lambda: fft(R, options={"inplace": True}), LayoutError,
     "needs a complex operand to hold the complex result, got float32"),
    ("in place, R2C", lambda: rfft(R, options={"inplace": True}), LayoutError, "supported for C2C only"),
    ("in place, contiguous but unwalkable", lambda: fft(np.ones((2, 3, 4, 5), np.complex64), axes=[0, 2],
                                                     options={"inplace": True}), LayoutError,
     "the batch axes to form one run"),
    ("in place, overlapping", lambda: fft(np.broadcast_to(X[:1], (4, 16)), options={"inplace": True}), LayoutError,
     "its elements overlap"),
    ("in place, read-only", lambda: fft(read_only(X), options={"inplace": True}), ValueError,
     ("inplace=True writes the result into the operand", "read-only", "x.copy()", "inplace=False")),
    ("in place, read-only, FFT", lambda: FFT(read_only(X), axes=[-1], options={"inplace": True}), ValueError,
     "this operand is read-only"),
    ("in place, reset to read-only", lambda: FFT(X.copy(), axes=[-1], options={"inplace": True}).reset_operand(
        read_only(X)), ValueError, "this operand is read-only"),
    # -- callbacks
    ("prolog of a wrong type", lambda: fft(X, prolog=5), TypeError, "prolog must be a Python function"),
    ("callback dict key", lambda: fft(X, epilog={"fn": scale, "extra": 1}), TypeError, "unknown keys ['extra']"),
    ("callback fn and ltoir", lambda: ifft(X, prolog={"fn": scale, "ltoir": b"x"}), TypeError, "exactly one of 'fn'"),
    ("callback data only", lambda: fft(X, prolog={"data": X}), TypeError, "exactly one of 'fn'"),
    ("callback fn not callable", lambda: fft(X, prolog={"fn": 3}), TypeError, "prolog['fn'] must be callable"),
    ("callback ltoir str", lambda: fft(X, prolog={"ltoir": "abc"}), ValueError, "ltoir must be bytes (from compile_prolog"),
    ("raw pointer with fn", lambda: fft(X, prolog={"fn": scale, "data": 1234}), TypeError,
     "pass the data as an array"),
    ("LTO-IR on the CPU", lambda: fft(X, prolog=DeviceCallable(ltoir=b"abc")), ValueError,
     "LTO-IR runs only on the GPU"),
    ("user data too small", lambda: fft(X, epilog={"fn": scale, "data": np.ones(3, np.complex64)}), ValueError,
     "does not broadcast to the result shape (4, 16)"),
    ("user data too large", lambda: fft(X, epilog={"fn": scale, "data": np.ones((2, 4, 16), np.complex64)}),
     ValueError, "data of shape (2, 4, 16) does not broadcast"),
    ("user data list", lambda: fft(X, epilog={"fn": scale, "data": [1, 2]}), TypeError,
     "epilog data of type list is not supported"),
    ("callback arity", lambda: fft(X, epilog=lambda a, b, c, d, e, g: a), TypeError, "it takes 6 parameters"),
    ("callback variadic", lambda: fft(X, epilog=lambda *a: a[0]), TypeError, "are variadic; use plain positional"),
    ("user data strides, no copy", lambda: fft(X, epilog={"fn": by_offset, "data": np.asfortranarray(X)},
                                               options={"user_data_copy": False}), ValueError,
     "allow the copy (user_data_copy=True)"),
    ("callback without its data", lambda: fft(X, epilog=scale), TypeError, "f(x, d) needs data= as well"),
    ("data to a one-argument callback", lambda: fft(X, axes=[-1], epilog={"fn": lambda v: v * 2, "data": X}),
     TypeError, ("takes only the element (form f(x)), but data= was given too", "f(x, d)", "drop data=")),
    ("data to a one-argument prolog", lambda: FFT(X, axes=[-1]).plan(prolog={"fn": lambda v: v, "data": X[0]}),
     TypeError, "cannot be compiled as an FFT callback: it takes only the element"),
    ("masked user data", lambda: fft(X, axes=[-1], epilog={"fn": scale, "data": masked(X)}), TypeError,
     ("epilog data is a NumPy masked array", "mask dropped")),
    ("float16 user data", lambda: fft(X, axes=[-1], epilog={"fn": scale, "data": np.ones(16, np.float16)}), TypeError,
     ("epilog data has dtype float16 (half precision)", "int64", "float32, float64, complex64, complex128",
      "data.astype('float32')")),
    ("float16 user data, prolog", lambda: fft(X, axes=[-1], prolog={"fn": scale, "data": np.float16(2)}), TypeError,
     "prolog data has dtype float16"),
    ("structured user data", lambda: fft(X, axes=[-1], epilog={"fn": scale, "data": np.zeros(16, PAIR)}), TypeError,
     ("epilog data has a structured dtype (void128: fields ['re', 'im'])", "complex128", "data['re']")),
    ("object user data", lambda: fft(X, axes=[-1], epilog={"fn": scale, "data": np.ones(16, object)}), TypeError,
     ("epilog data has dtype object (Python objects)", "complex64", "np.asarray(data, dtype='complex128')")),
    ("string user data", lambda: fft(X, axes=[-1], epilog={"fn": scale, "data": np.array(["a"] * 16)}), TypeError,
     ("epilog data has dtype str32, which FFT callbacks cannot read", "bool, int8")),
    ("parameter beyond int64", lambda: fft(X, axes=[-1], epilog={"fn": gain, "params": {"s": 2**70}}),
     OverflowError, ("runtime parameter 's' = 1180591620717411303424 is out of range for int64",
                     "[-9223372036854775808, 9223372036854775807]", "pass a float")),
    ("parameter below int64", lambda: fft(X, axes=[-1], epilog={"fn": gain, "params": {"s": -2**63 - 1}}),
     OverflowError, "runtime parameter 's' = -9223372036854775809 is out of range for int64"),
    ("set_params beyond int64", lambda: plan_with_params().set_params(epilog={"s": 2**64}), TypeError,
     "parameter 's' was planned as int64"),
    ("epilog that always raises", lambda: fft(X, axes=[-1], epilog=always_raises), TypeError,
     ("epilog 'always_raises' cannot be compiled", "it raises on every path", 'raise ValueError("negative")',
      "never returns the element to store")),
    ("prolog that always raises", lambda: fft(X, axes=[-1], prolog=always_raises), TypeError,
     ("prolog 'always_raises'", "it raises on every path")),
    ("epilog that raises or returns nothing", lambda: fft(X, axes=[-1], epilog=raises_or_falls_off), TypeError,
     ("returns nothing on the paths that do not raise", 'raise ValueError("positive")')),
    # -- the stateful engine
    ("direction", lambda: planned().execute(direction="sideways"), ValueError,
     "direction='sideways' is not understood; pass FFTDirection.FORWARD"),
    ("direction number", lambda: planned().execute(direction=5), ValueError, "direction=5 is not understood"),
    ("direction of R2C", lambda: planned(R).execute(direction="inverse"), ValueError, "direction 'inverse' was asked of a R2C FFT, which runs forward only"),
    ("reset_operand shape", lambda: planned().reset_operand(np.ones((4, 8), np.complex64)), ValueError,
     "needs an operand like the planned one"),
    ("reset_operand dtype", lambda: planned().reset_operand(X.astype(np.complex128)), ValueError,
     "needs an operand like the planned one"),
    ("reset_operand big-endian", lambda: planned().reset_operand(X.astype(">c8")), TypeError, "non-native byte order"),
    ("reset_operand list", lambda: planned().reset_operand([1, 2]), TypeError, "operand of type list"),
    ("reset_operand masked", lambda: planned().reset_operand(masked(X)), TypeError, "operand is a NumPy masked array"),
    ("reset_operand transposed", lambda: planned().reset_operand(np.ones((16, 4), np.complex64).T), ValueError,
     "needs an operand like the planned one"),
    ("plan with a positional callback", lambda: FFT(X).plan(scale), TypeError, "positional argument"),
    # -- callbacks failing at run time on the CPU: raised in the caller, never printed and skipped
    ("epilog raises at run time", lambda: fft(X, axes=[-1], epilog=raises_boom), ValueError, "boom"),
    ("epilog divides a complex by zero", lambda: fft(X, axes=[-1], epilog=lambda v: v / 0), ZeroDivisionError,
     "complex division by zero"),
    ("epilog divides an integer by zero", lambda: fft(X, axes=[-1], epilog=lambda v: v * (1 // 0)),
     ZeroDivisionError, "by zero"),
    ("prolog takes an integer modulo zero", lambda: fft(X, axes=[-1], prolog=lambda x: x * (5 % 0)),
     ZeroDivisionError, "by zero"),
    ("cuFFT form reads user_info without data", lambda: fft(X, axes=[-1], epilog=by_offset), ValueError,
     "reads its user_info parameter, but no data was given"),
    ("cuFFT form without data, planned", lambda: planned(epilog={"fn": by_offset}), ValueError,
     "Pass the data it indexes: epilog={'fn': by_offset, 'data': array}"),
    ("user_info read past its end", with_bounds_checks(lambda: fft(X, axes=[-1], epilog={"fn": past_the_end,
                                                                                          "data": X})),
     CallbackIndexError, "read user_info at offset 64, outside its 64 elements"),
    ("data_out written before its start", with_bounds_checks(lambda: fft(X, axes=[-1], epilog=before_the_start)),
     CallbackIndexError, "wrote data_out at offset -1000, outside its 64 elements"),
]


@pytest.mark.parametrize("call,exc,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_a_specific_error(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    for part in (fragment,) if isinstance(fragment, str) else fragment:
        assert part in str(info.value), f"{type(info.value).__name__}: {info.value}"


def test_the_catalogue_is_large_and_distinct():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


def test_good_variants_of_the_refused_inputs_still_run():
    want = np.fft.fft(X.astype(np.complex128), axis=-1)
    for kwargs in ({"axes": [np.int64(-1)]}, {"axes": (1,)}, {"axes": 1}, {"options": {"num_threads": 1}},
                   {"execution": ExecutionCPU(num_threads=2)}, {"options": {"fft_type": "C2C"}}, {"stream": 0}):
        np.testing.assert_allclose(fft(X, **{"axes": [-1], **kwargs}), want, rtol=1e-4, atol=1e-4)
    swapped = X.astype(">c8").astype(X.dtype.newbyteorder("="))  # the fix the error suggests
    np.testing.assert_allclose(fft(swapped, axes=[-1]), want, rtol=1e-4, atol=1e-4)


def test_good_variants_of_the_newly_refused_inputs_still_run():
    want = np.fft.fft(X.astype(np.complex128), axis=-1)
    d = np.random.default_rng(3).standard_normal(16)
    close = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fft(X, axes=[-1], epilog={"fn": scale, "data": d.astype(np.float32)}), want * d, **close)
    np.testing.assert_allclose(fft(X, axes=[-1], epilog={"fn": scale, "data": np.ma.getdata(masked(d))}), want * d,
                               **close)
    np.testing.assert_allclose(fft(X, axes=[-1], epilog={"fn": gain, "params": {"s": 2**62}}), want * 2.0**62,
                               rtol=1e-4)
    np.testing.assert_allclose(fft(X, axes=[-1], epilog={"fn": gain, "params": {"s": float(2**70)}}),
                               want * 2.0**70, rtol=1e-4)
    np.testing.assert_allclose(fft(masked(X).filled(0), axes=[-1]), want, **close)
    np.testing.assert_allclose(fft(X, axes=[-1], options={"logger": logging.getLogger("fftfuse.test")}), want,
                               **close)
    np.testing.assert_allclose(fft(X, axes=[-1], epilog=lambda v: v * 2), want * 2, **close)
    inplace = read_only(X).copy()  # the fix the error suggests
    assert fft(inplace, axes=[-1], options={"inplace": True}) is inplace
    np.testing.assert_allclose(inplace, want, **close)
    f = planned()
    np.testing.assert_allclose(f.execute(release_workspace=True), want, **close)
    np.testing.assert_allclose(f.execute(stream=0, release_workspace=np.bool_(False)), want, **close)


# -- a GPU execution where there is no GPU: CuPy's own error says "driver version is insufficient"

def _no_driver(*args, **kwargs):
    from cupy_backends.cuda.api.runtime import CUDARuntimeError

    raise CUDARuntimeError(35)  # cudaErrorInsufficientDriver, what CuPy raises on a machine without a driver


def _broken_device(monkeypatch, device_count):
    cupy = pytest.importorskip("cupy")
    monkeypatch.setattr(cupy.cuda, "Device", _no_driver)
    monkeypatch.setattr(cupy.cuda.runtime, "getDeviceCount", device_count)


@pytest.mark.parametrize("execution", ["cuda", ExecutionCUDA(), {"name": "cuda"}])
def test_gpu_execution_without_a_gpu_says_no_gpu_was_found(monkeypatch, execution):
    _broken_device(monkeypatch, _no_driver)
    with pytest.raises(NoGPUError) as info:
        fft(X, execution=execution)
    message = str(info.value)
    for part in (f"execution={execution!r} needs a CUDA GPU, but no CUDA GPU was found", "cudaErrorInsufficientDriver",
                 "execution='cpu'"):
        assert part in message, message
    assert isinstance(info.value, RuntimeError)  # what CuPy's error was: code catching that still does
    assert np.allclose(fft(X, execution="cpu"), np.fft.fftn(X), atol=1e-3)  # the way out it names


def test_gpu_execution_on_a_gpu_that_is_not_there_names_the_count(monkeypatch):
    _broken_device(monkeypatch, lambda: 2)
    with pytest.raises(ValueError, match=r"asks for GPU 5, but this machine has 2 \(device ids 0 to 1\)"):
        fft(X, execution=ExecutionCUDA(device_id=5))


def test_gpu_errors_on_a_working_gpu_are_left_as_they_are(monkeypatch):
    _broken_device(monkeypatch, lambda: 1)
    from cupy_backends.cuda.api.runtime import CUDARuntimeError

    with pytest.raises(CUDARuntimeError):
        fft(X, execution="cuda")


def test_the_real_machine_without_a_gpu_says_so():
    from conftest import gpu_available

    pytest.importorskip("cupy")
    if gpu_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(NoGPUError, match="no CUDA GPU was found"):
        fft(X, execution="cuda")
