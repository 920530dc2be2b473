"""The shared test helpers check what they claim: a wrong element fails ``assert_close``, the
references are NumPy's in double precision, and the ``events`` fixture sees compiles and plans."""

from __future__ import annotations

import numpy as np
import pytest

import nvmath
from helpers import assert_close, chain_reference, rand, reference


def test_rand_is_seeded_and_continues_a_generator():
    assert np.array_equal(rand((3, 4), "complex64", 5), rand((3, 4), "complex64", 5))
    rng = np.random.default_rng(1)
    assert not np.array_equal(rand(8, "float64", rng), rand(8, "float64", rng))
    assert rand(4, "complex128", 0).imag.any() and rand(4, "float32").dtype == np.float32


def test_assert_close_catches_one_wrong_element_and_a_wrong_shape():
    want = rand((16, 32), "complex128", 2)
    got = want.astype(np.complex64)
    assert_close(got, want)
    got[3, 7] += 1e-2 * np.abs(want).max()
    with pytest.raises(AssertionError, match="max relative error"):
        assert_close(got, want)
    with pytest.raises(AssertionError, match="shape"):
        assert_close(want[:, :8], want)


def test_precision_sets_the_default_bound():
    want = rand(64, "complex128", 3)
    off = want * (1 + 1e-7)
    assert_close(off.astype(np.complex64), want)
    with pytest.raises(AssertionError):
        assert_close(off, want)  # complex128: 1e-7 is far outside double precision
    assert_close(off, want, rtol=1e-6)


@pytest.mark.parametrize("kind", ["fft", "ifft", "rfft", "irfft"])
def test_reference_norms_match_numpy(kind):
    x = rand((4, 10), "float64" if kind == "rfft" else "complex128", 4)
    unnormalized = {"fft": lambda: np.fft.fft(x), "ifft": lambda: np.fft.ifft(x) * 10,
                    "rfft": lambda: np.fft.rfft(x), "irfft": lambda: np.fft.irfft(x) * 18}[kind]()
    np.testing.assert_allclose(reference(kind, x, [-1]), unnormalized, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reference(kind, x, [-1], norm="ortho"),
                               getattr(np.fft, kind)(x, norm="ortho"), rtol=1e-12, atol=1e-12)


def test_chain_reference_is_the_identity_without_steps():
    x = rand((3, 16), "complex128", 5)
    np.testing.assert_allclose(chain_reference(x, [-1]), x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(chain_reference(x.real, [-1], norm=None), 16 * x.real, rtol=1e-12, atol=1e-12)


def test_events_count_a_compile_and_a_plan(events):
    offset = float(np.random.default_rng().integers(1, 1 << 30))  # a new constant: a new compile
    x = rand((2, 8), "complex128", 6)
    nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v + offset)
    assert events.compiles == 1 and events.plans == 1
