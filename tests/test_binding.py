"""The callbacks' data bound to a plan (``_binding``), the call-arguments object every run passes
its executor (``_executor.CallArgs``) and where a result goes (``ResultPlace``, in the Plan)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nvmath.fft import FFT, _binding
from nvmath.fft._binding import bind
from nvmath.fft._executor import CallArgs, CallData
from nvmath.fft._memory_space import SAME, TO_GPU, TO_HOST, ResultPlace
from nvmath.fft._options import FFTOptions
from nvmath.fft._planner import make_plan, problem_for

RNG = np.random.default_rng(3)


def cplx(shape):
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(np.complex128)


def mul(v, d):
    return v * d


def gain(v, *, g):
    return v * g


def _plan(x, epilog, **kw):
    problem = problem_for("fft", x.shape, tuple(s // x.itemsize for s in x.strides), str(x.dtype), (1,))
    return make_plan(problem, "cpu", FFTOptions(), None, epilog, **kw)


@pytest.mark.parametrize("route, inplace, place", [
    (SAME, False, ResultPlace.WRAP), (TO_GPU, False, ResultPlace.MOVE), (TO_HOST, False, ResultPlace.MOVE),
    (SAME, True, ResultPlace.OPERAND), (TO_GPU, True, ResultPlace.WRITE_BACK)])
def test_the_plan_says_where_the_result_goes(route, inplace, place):
    x = cplx((2, 8))
    problem = problem_for("fft", x.shape, (8, 1), "complex128", (1,), inplace)
    assert make_plan(problem, "cpu", FFTOptions(), None, None, route=route).result is place


def test_data_is_laid_out_once_when_planned_not_per_run(monkeypatch):
    laid = []
    real = _binding.lay_out_user_data
    monkeypatch.setattr(_binding, "lay_out_user_data", lambda *a, **k: laid.append(1) or real(*a, **k))
    x, h = cplx((3, 16)), cplx((16,))
    with FFT(x, axes=[-1]) as f:
        f.plan(epilog={"fn": mul, "data": h})
        for _ in range(4):
            np.testing.assert_allclose(f.execute(), np.fft.fft(x) * h, rtol=1e-10, atol=1e-10)
    assert len(laid) == 1


def test_a_binding_is_immutable_and_new_parameters_make_a_new_one():
    x = cplx((2, 8))
    binding = bind(_plan(x, {"fn": gain, "params": {"g": 2.0}}), True)
    changed = binding.with_params(epilog={"g": 5.0})
    assert binding.call_data().epilog_params == (2.0,) and changed.call_data().epilog_params == (5.0,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        binding.varies = False
    with pytest.raises(TypeError, match="planned as float64"):
        binding.with_params(epilog={"g": 1j})
    with pytest.raises(ValueError, match="no runtime parameters"):
        binding.with_params(prolog={"g": 1.0})


def test_a_calls_own_arrays_become_its_call_data_laid_out_as_planned():
    x, h, other = cplx((2, 8)), cplx((8,)), cplx((8,))
    binding = bind(_plan(x, {"fn": mul, "data": h}), True)
    assert binding.varies and np.shares_memory(binding.call_data().epilog_data, h)  # read where it lies
    data, held = binding.call_data_of(None, {"data": other})
    assert isinstance(data, CallData) and np.shares_memory(data.epilog_data, other) and not held
    released = binding.without_data()
    assert released.epilog.laid is None and released.epilog.spec.has_data and binding.epilog.laid is not None


def test_call_arguments_carry_one_run_to_the_executor():
    data = CallData(None, (), None, ())
    call = CallArgs("in", "out", "forward", None, data)
    moved = call.on("a", "b")
    assert (moved.inp, moved.out, moved.direction, moved.stream, moved.data) == ("a", "b", "forward", None, data)
    assert (call.inp, call.out) == ("in", "out")
    with pytest.raises(AttributeError):
        call.extra = 1  # slots: nothing but the five values
