"""Bad input to the callback compiler: each gets a specific error saying what was expected.

A catalogue: one row per bad input, with the exception type and a fragment of its message.
Nothing here needs a GPU; rows that would compile for the GPU target stop before numba runs,
and none of them may leave an entry in the cache.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

from fftfuse_cache import ArtifactStore
from fftfuse_compiler import compile_callback
from fftfuse_compiler.cpu_backend import compile_cpu
from nvmath.fft import compile_epilog


class Scaler:
    def __init__(self, gain: float) -> None:
        self.gain = gain

    def apply(self, x):
        return x * 2.0

    @staticmethod
    def twice(x):
        return x * 2.0


@cuda.jit(device=True)
def thread_scaled(x):
    return x * cuda.threadIdx.x


def with_default(x, scale=2.0):
    return x * scale


def with_defaults_raw(data_out, offset, value, user_info, unused=None):
    data_out[offset] = value


def always_raises(x):
    raise ValueError("bad element")


def raises_or_falls_off(x):
    if x.real > 0:
        raise ValueError("positive")


RAISE_LINE = always_raises.__code__.co_firstlineno + 1


def gpu(fn, cc=80, **kw):
    return lambda store: compile_callback(fn, "epilog", "complex64", compute_capability=cc, store=store, **kw)


def cpu(fn, kind="epilog", dtype="complex64"):
    return lambda store: compile_cpu(fn, kind, dtype)


def length_of_user_info(data_out, offset, value, user_info, unused):
    data_out[offset] = value * len(user_info)


def slices_user_info(data_out, offset, value, user_info, unused):
    data_out[offset] = value * user_info[offset:offset + 1][0]


def cpu_checked(fn):
    return lambda store: compile_cpu(fn, "epilog", "complex64", "complex64", store=store, checks=True)


# (id, call, expected exception, fragment of its message)
CATALOGUE = [
    ("cc 999", gpu(lambda x: x, 999), ValueError, "sm_999) is not an architecture this CUDA toolkit compiles for"),
    ("cc (8, 12)", gpu(lambda x: x, (8, 12)), ValueError, "the minor version is one digit"),
    ("cc (0, 5)", gpu(lambda x: x, (0, 5)), ValueError, "compute_capability=(0, 5) is not understood"),
    ("cc '8.12'", gpu(lambda x: x, "8.12"), ValueError, "is not understood"),
    ("cc sm_10", gpu(lambda x: x, "sm_10"), ValueError, "(sm_10) is not an architecture"),
    ("cc via nvmath API", lambda store: compile_epilog(lambda x: x, "complex64", compute_capability=999),
     ValueError, "(sm_999) is not an architecture"),
    ("bound method", gpu(Scaler(2.0).apply), TypeError, "'Scaler.apply' cannot be compiled as an FFT callback: "
     "it is a bound method"),
    ("bound method on CPU", cpu(Scaler(2.0).apply), TypeError, "it is a bound method"),
    ("default argument", gpu(with_default), TypeError, "parameters ['scale'] have default values"),
    ("default argument on CPU", cpu(with_default), TypeError, "parameters ['scale'] have default values"),
    ("default in cuFFT form", gpu(with_defaults_raw), TypeError, "parameters ['unused'] have default values"),
    ("default in a lambda", gpu(lambda x, d=1.0: x * d, user_dtype="complex64"), TypeError,
     "parameters ['d'] have default values"),
    ("cuda intrinsics on CPU", cpu(lambda x: thread_scaled(x)), TypeError,
     "uses numba.cuda, which exists only on the GPU"),
    ("raises on every path", gpu(always_raises), TypeError,
     f"'always_raises' cannot be compiled as an FFT callback: it raises on every path (line {RAISE_LINE}: raise "
     "ValueError(\"bad element\")), so it never returns the element to store"),
    ("raises on every path, prolog", lambda store: compile_callback(always_raises, "prolog", "float32",
                                                                      compute_capability=80, store=store),
     TypeError, f"it raises on every path (line {RAISE_LINE}"),
    ("raises on every path via nvmath API", lambda store: compile_epilog(always_raises, "complex64",
                                                                          compute_capability=80),
     TypeError, "so it never returns the element to store"),
    ("raises on every path on CPU", cpu(always_raises, "prolog", "float64"), TypeError,
     "never returns the element the FFT reads"),
    ("raises or returns nothing", gpu(raises_or_falls_off), TypeError,
     f"returns nothing on the paths that do not raise (line {RAISE_LINE + 5}: raise ValueError(\"positive\"))"),
    ("raises or returns nothing on CPU", cpu(raises_or_falls_off), TypeError,
     "returns nothing on the paths that do not raise"),
    ("len of a checked buffer", cpu_checked(length_of_user_info), TypeError, "take integer offsets only"),
    ("slice of a checked buffer", cpu_checked(slices_user_info), TypeError, "x[offset] and x[offset] = v"),
]


@pytest.mark.parametrize("call,error,fragment", [row[1:] for row in CATALOGUE], ids=[row[0] for row in CATALOGUE])
def test_bad_input_gets_a_specific_error(call, error, fragment, tmp_path):
    store = ArtifactStore(tmp_path / "cache")
    with pytest.raises(error) as info:
        call(store)
    assert fragment in str(info.value)
    assert list(store.entries()) == [], "nothing may be cached for bad input"


def test_staticmethod_and_cuda_helper_on_cpu_are_fine():
    # What the errors above point to instead.
    out = np.zeros(1, np.complex64)
    compile_cpu(Scaler.twice, "epilog", "complex64").wrapper(out, 0, np.complex64(1 + 2j), out, None)
    assert out[0] == 2 + 4j

    @cuda.jit(device=True)
    def halve(x):
        return x * 0.5

    compile_cpu(lambda x: halve(x), "epilog", "complex64").wrapper(out, 0, np.complex64(1 + 2j), out, None)
    assert out[0] == 0.5 + 1j
