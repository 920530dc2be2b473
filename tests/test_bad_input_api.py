"""Bad input to the FFT API, as a table: each row is a call, the exception it must raise, and a
fragment of the message that says what was expected. Host operands: runs anywhere."""

from __future__ import annotations

import numpy as np
import pytest

import nvmath
from nvmath.fft import FFT, DeviceCallable, ExecutionCPU, ExecutionCUDA, FFTOptions, LayoutError
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
    ("fft_type against fft", lambda: fft(X, options={"fft_type": "R2C"}), ValueError,
     "fft() runs a C2C transform but options.fft_type is 'R2C'"),
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
    # -- operands
    ("big-endian operand", lambda: fft(X.astype(">c8")), TypeError, "non-native byte order dtype '>c8'"),
    ("big-endian user data", lambda: fft(X, epilog={"fn": scale, "data": X.astype(">c8")}), TypeError,
     "epilog data has the non-native byte order"),
    ("list operand", lambda: fft([1, 2, 3]), TypeError, "operand of type list is not supported"),
    ("NumPy scalar operand", lambda: fft(np.complex64(1)), TypeError, "operand of type complex64 is not supported"),
    ("0-D operand", lambda: fft(np.array(1, np.complex64)), LayoutError, "cannot transform a 0-dimensional operand"),
    ("empty operand", lambda: fft(np.ones((0, 8), np.complex64)), LayoutError, "is empty; nothing to transform"),
    ("integer operand", lambda: fft(np.arange(8)), LayoutError, "use float32, float64, complex64 or complex128"),
    ("float16 operand", lambda: rfft(np.ones(8, np.float16)), LayoutError,
     "dtype float16 (half precision) is not supported"),
    ("object operand", lambda: fft(np.array([1, 2], dtype=object)), LayoutError, "dtype object is not supported"),
    ("rfft of complex", lambda: rfft(X), LayoutError, "rfft needs a real operand"),
    ("irfft of real", lambda: irfft(R), LayoutError, "irfft needs a complex operand"),
    ("irfft of length 1", lambda: irfft(np.ones((4, 1), np.complex64)), LayoutError, "use at least 2"),
    # -- in place
    ("in place, real operand", lambda: fft(R, options={"inplace": True}), LayoutError,
     "needs a complex operand to hold the complex result, got float32"),
    ("in place, R2C", lambda: rfft(R, options={"inplace": True}), LayoutError, "supported for C2C only"),
    ("in place, contiguous but unwalkable", lambda: fft(np.ones((2, 3, 4, 5), np.complex64), axes=[0, 2],
                                                     options={"inplace": True}), LayoutError,
     "the batch axes to form one run"),
    ("in place, overlapping", lambda: fft(np.broadcast_to(X[:1], (4, 16)), options={"inplace": True}), LayoutError,
     "its elements overlap"),
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
    # -- the stateful engine
    ("direction", lambda: planned().execute(direction="sideways"), ValueError,
     "direction='sideways' is not understood; pass FFTDirection.FORWARD"),
    ("direction number", lambda: planned().execute(direction=5), ValueError, "direction=5 is not understood"),
    ("direction of R2C", lambda: planned(R).execute(direction="inverse"), ValueError, "a R2C FFT runs forward only"),
    ("reset_operand shape", lambda: planned().reset_operand(np.ones((4, 8), np.complex64)), ValueError,
     "needs an operand like the planned one"),
    ("reset_operand dtype", lambda: planned().reset_operand(X.astype(np.complex128)), ValueError,
     "needs an operand like the planned one"),
    ("reset_operand big-endian", lambda: planned().reset_operand(X.astype(">c8")), TypeError, "non-native byte order"),
    ("reset_operand list", lambda: planned().reset_operand([1, 2]), TypeError, "operand of type list"),
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
    assert fragment in str(info.value), f"{type(info.value).__name__}: {info.value}"


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
