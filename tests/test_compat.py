"""nvmath-python's documented ``nvmath.fft`` API, used the way its documentation and examples use it
(on the CPU), and what goes beyond it for SciPy users (``norm=``, an integer ``axes``).

GPU-only behaviour (in-place host operands run on the GPU, allocators, workspace release) is in
test_gpu_compat.py.
"""

from __future__ import annotations

import logging
import pathlib
import re
import typing

import numpy as np
import pytest

import nvmath
from helpers import assert_close
from nvmath.fft import (FFT, DeviceCallable, ExecutionCPU, ExecutionCUDA, FFTDirection, FFTOptions, LayoutError,
                        UnsupportedLayoutError)

RNG = np.random.default_rng(12)


def crandn(*shape: int, dtype=np.complex128) -> np.ndarray:
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(dtype)


def test_public_names_of_nvmath_fft():
    for name in ("FFT", "FFTOptions", "FFTDirection", "ExecutionCPU", "ExecutionCUDA", "DeviceCallable",
                 "UnsupportedLayoutError", "fft", "ifft", "rfft", "irfft", "compile_prolog", "compile_epilog"):
        assert hasattr(nvmath.fft, name), name
        assert name in nvmath.fft.__all__


def test_version_is_the_distributions():
    from importlib import metadata

    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", nvmath.__version__)
    text = (pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'version = { attr = "nvmath._version.__version__" }' in text
    try:
        installed = metadata.version("fftfuse")
    except metadata.PackageNotFoundError:  # run from a checkout (the GPU machine does)
        return
    assert installed == nvmath.__version__


def test_py_typed_marker_ships():
    assert (pathlib.Path(nvmath.__file__).parent / "py.typed").exists()
    assert 'nvmath = ["py.typed"]' in (pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text()


@pytest.mark.parametrize("fn", [nvmath.fft.fft, nvmath.fft.ifft, nvmath.fft.rfft, nvmath.fft.irfft, FFT.plan])
def test_public_signatures_are_typed(fn):
    hints = typing.get_type_hints(fn)
    for name in ("axes", "options", "execution", "prolog", "epilog", "direction"):
        if name in hints:
            assert hints[name] is not typing.Any, (fn.__name__, name)
    assert hints.get("direction") is not None
    doc = fn.__doc__
    assert "Parameters:" in doc and "Raises:" in doc
    assert not re.search(r"\{[a-z_]+\}", doc), "a shared parameter placeholder was left unfilled"


def test_string_options_are_literal_types():
    hints = typing.get_type_hints(FFTOptions)
    for name in ("fft_type", "last_axis_parity", "result_layout", "float_literals"):
        assert "Literal" in str(hints[name]), name


# -- direction --------------------------------------------------------------------------------

def test_positional_parameters_in_nvmath_pythons_order():
    x = crandn(4, 8)
    for name, reference in (("fft", np.fft.fft), ("ifft", lambda a, axis: 8 * np.fft.ifft(a, axis=axis))):
        a = x.copy()
        r = getattr(nvmath.fft, name)(a, [-1], {"inplace": True}, "cpu", None, lambda v: v * 2, None)
        assert r is a
        assert_close(a, 2 * reference(x, axis=-1), x.dtype)


def test_fft_direction_values():
    assert FFTDirection.FORWARD == -1 and FFTDirection.INVERSE == 1


@pytest.mark.parametrize("direction", ["inverse", "INVERSE", "Inverse", 1, FFTDirection.INVERSE])
def test_fft_direction_spellings(direction):
    x = crandn(4, 16)
    assert_close(nvmath.fft.fft(x, axes=[-1], direction=direction), 16 * np.fft.ifft(x, axis=-1), x.dtype)


@pytest.mark.parametrize("direction", ["FORWARD", -1, FFTDirection.FORWARD])
def test_ifft_with_forward_direction(direction):
    x = crandn(8)
    assert_close(nvmath.fft.ifft(x, direction=direction), np.fft.fft(x), x.dtype)


def test_stateful_execute_both_directions():
    x = crandn(3, 32, dtype=np.complex64)
    with FFT(x, axes=[-1]) as f:
        f.plan()
        forward = f.execute(direction=FFTDirection.FORWARD)
        assert_close(forward, np.fft.fft(x, axis=-1), x.dtype)
        inverse = f.execute("inverse")  # positional, as nvmath-python's execute(direction, stream, ...)
        assert_close(inverse, 32 * np.fft.ifft(x, axis=-1), x.dtype)


def test_plan_direction_is_executes_default():
    x = crandn(16)
    with FFT(x) as f:
        f.plan(direction="INVERSE")
        assert_close(f.execute(), 16 * np.fft.ifft(x), x.dtype)


@pytest.mark.parametrize("direction", ["backward", 0, 2, None.__class__, "sideways"])
def test_bad_direction_says_what_is_accepted(direction):
    with pytest.raises(ValueError, match="FFTDirection.FORWARD"):
        nvmath.fft.fft(crandn(8), direction=direction)


def test_r2c_refuses_the_inverse_direction():
    x = RNG.standard_normal(16)
    with FFT(x) as f, pytest.raises(ValueError, match="R2C FFT, which runs forward only"):
        f.execute(direction=FFTDirection.INVERSE)


# -- create_key / get_key and the documented plan-caching pattern ------------------------------

def test_create_key_tells_problems_apart():
    a = crandn(4, 8)
    key = FFT.create_key(a, axes=[-1])
    hash(key)
    assert key == FFT.create_key(crandn(4, 8), axes=[-1])
    assert key == FFT.create_key(a, axes=(1,))
    assert key != FFT.create_key(a, axes=[0])
    assert key != FFT.create_key(a.astype(np.complex64), axes=[-1])
    assert key != FFT.create_key(crandn(4, 9), axes=[-1])
    assert key != FFT.create_key(a, axes=[-1], options={"result_layout": "natural", "inplace": True})
    assert key != FFT.create_key(a, axes=[-1], epilog=lambda v: v * 2)
    assert FFT.create_key(a, epilog=lambda v: v * 2) == FFT.create_key(a, epilog=lambda v: v * 2)
    assert FFT.create_key(a, epilog=lambda v: v * 2) != FFT.create_key(a, epilog=lambda v: v * 3)


def test_create_key_tells_cuda_source_callbacks_apart():
    a = crandn(4, 8)
    double = "__device__ cufftDoubleComplex twice(cufftDoubleComplex v) { return make_cuDoubleComplex(2 * v.x, 2 * v.y); }"
    triple = double.replace("twice", "thrice").replace("2 *", "3 *")
    assert FFT.create_key(a, epilog={"source": double}) == FFT.create_key(a, epilog={"source": double})
    assert FFT.create_key(a, epilog={"source": double}) != FFT.create_key(a, epilog={"source": triple})


def test_create_key_covers_callback_data_address():
    a = crandn(4, 8)
    d1, d2 = crandn(4, 8), crandn(4, 8)
    fn = lambda v, d: v * d  # noqa: E731
    assert FFT.create_key(a, epilog={"fn": fn, "data": d1}) != FFT.create_key(a, epilog={"fn": fn, "data": d2})


def test_get_key_matches_create_key():
    a = crandn(4, 8)
    with FFT(a, axes=[-1], options={"result_layout": "natural"}) as f:
        assert f.get_key() == FFT.create_key(a, axes=[-1], options=FFTOptions(result_layout="natural"))


def cached_fft(a, axes=None, direction=None, options=None, execution=None, prolog=None, epilog=None, cache=None):
    """The plan-caching pattern nvmath-python documents: create_key, reset_operand, execute."""
    key = FFT.create_key(a, axes=axes, options=options, execution=execution, prolog=prolog, epilog=epilog)
    if key in cache:
        f = cache[key]
        f.reset_operand(a)
    else:
        f = cache[key] = FFT(a, axes=axes, options=options, execution=execution)
        f.plan(prolog=prolog, epilog=epilog)
    r = f.execute(direction=direction)
    f.reset_operand()
    return r


def test_documented_plan_caching_pattern():
    cache: dict = {}
    try:
        scale = lambda v: v * 0.5  # noqa: E731
        for _ in range(3):
            a = crandn(8, 16)
            assert_close(cached_fft(a, axes=[-1], epilog=scale, cache=cache), 0.5 * np.fft.fft(a, axis=-1), a.dtype)
            assert_close(cached_fft(a, axes=[-1], direction="inverse", cache=cache),
                         16 * np.fft.ifft(a, axis=-1), a.dtype)
        assert len(cache) == 2
        assert all(f.operand is None for f in cache.values())
    finally:
        for f in cache.values():
            f.free()


# -- operand, reset_operand(None), execute(release_workspace=) ---------------------------------

def test_operand_attribute_and_reset_operand_none():
    a, b = crandn(2, 8), crandn(2, 8)
    with FFT(a) as f:
        assert f.operand is a
        f.plan()
        f.reset_operand(None)
        assert f.operand is None
        with pytest.raises(RuntimeError, match="reset_operand"):
            f.execute()
        f.reset_operand_unchecked(b)
        assert f.operand is b
        assert_close(f.execute(release_workspace=True), np.fft.fftn(b, axes=(0, 1)), b.dtype)


def test_reset_operand_refuses_another_layout():
    with FFT(crandn(2, 8)) as f, pytest.raises(ValueError, match="like the planned one"):
        f.reset_operand(crandn(2, 9))


# -- options and execution spaces ------------------------------------------------------------

def test_fft_options_fields_of_nvmath_python():
    logger = logging.getLogger("user-fft")
    o = FFTOptions(fft_type="C2C", inplace=False, last_axis_parity="odd", result_layout="natural", device_id=None,
                   logger=logger, blocking="auto", allocator=None)
    assert o.logger is logger and o.allocator is None


def test_execution_objects():
    assert ExecutionCUDA().name == "cuda" and ExecutionCUDA(device_id=1).device_id == 1
    assert ExecutionCPU().name == "cpu" and ExecutionCPU(num_threads=3).num_threads == 3


@pytest.mark.parametrize("execution, threads", [
    (ExecutionCPU(num_threads=1), 1), (ExecutionCPU(num_threads=2), 2), ({"name": "cpu", "num_threads": 2}, 2),
])
def test_execution_cpu_num_threads_is_honoured(monkeypatch, execution, threads):
    from nvmath.fft import _cpu

    seen = []

    class Recording(_cpu.CpuExecutor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.workers)

    monkeypatch.setattr(_cpu, "CpuExecutor", Recording)
    x = crandn(64, 32)
    assert_close(nvmath.fft.fft(x, axes=[-1], execution=execution), np.fft.fft(x, axis=-1), x.dtype)
    assert seen == [threads]


def test_options_as_dict_and_inplace_returns_the_operand():
    a = crandn(4, 16)
    expected = np.fft.fftn(a, axes=(0, 1))
    r = nvmath.fft.fft(a, options={"inplace": True}, execution="cpu")
    assert r is a
    assert_close(a, expected, a.dtype)


def test_c2r_odd_last_axis():
    x = RNG.standard_normal((3, 9))
    spectrum = np.fft.rfft(x, axis=-1)
    r = nvmath.fft.irfft(spectrum, axes=[-1], options={"last_axis_parity": "odd"})
    assert r.shape == (3, 9)
    assert_close(r, 9 * x, x.dtype)


def test_input_and_output_layouts():
    a = crandn(4, 6)
    with FFT(a, axes=[0], options={"result_layout": "natural"}) as f:
        shape, strides = f.get_output_layout()
        assert shape == (4, 6)
        assert f.get_input_layout()[0] == (4, 6)


def test_unsupported_layout_error_is_the_layout_error():
    assert UnsupportedLayoutError is LayoutError
    with pytest.raises(UnsupportedLayoutError, match="1-D to 3-D"):
        nvmath.fft.fft(crandn(2, 2, 2, 2), axes=[0, 1, 2, 3])


# -- callbacks ------------------------------------------------------------------------------

def test_device_callable_size_and_validation():
    assert DeviceCallable(ltoir=b"abc").size == 3
    assert DeviceCallable(ltoir=b"abc", size=3, data=0).data == 0
    assert DeviceCallable(b"abc", 3, 1234).data == 1234  # nvmath-python's positional order
    with pytest.raises(ValueError, match="must be bytes"):
        DeviceCallable(ltoir="test")
    with pytest.raises(ValueError, match="holds 3 bytes"):
        DeviceCallable(ltoir=b"abc", size=4)
    with pytest.raises(ValueError, match="holds 3 bytes"):
        nvmath.fft.fft(crandn(8), epilog={"ltoir": b"abc", "size": 5}, execution="cpu")


def test_ltoir_with_size_key_is_accepted_where_lto_ir_is():
    # On the CPU LTO-IR cannot run: the error is about that, not about the "size" key.
    with pytest.raises(ValueError, match="LTO-IR runs only on the GPU"):
        nvmath.fft.fft(crandn(8), epilog={"ltoir": b"abc", "size": 3, "data": 0}, execution="cpu")


def test_cufft_form_epilog_that_returns_a_value_is_refused():
    def returns(data_out, offset, value, user_info, unused):
        return value * 2

    with pytest.raises(TypeError, match="returns a value"):
        nvmath.fft.fft(crandn(8), epilog=returns)


def test_cufft_form_epilog_that_stores_is_accepted():
    def stores(data_out, offset, value, user_info, unused):
        data_out[offset] = value * 2

    x = crandn(8)
    assert_close(nvmath.fft.fft(x, epilog=stores), 2 * np.fft.fft(x), x.dtype)


@pytest.mark.parametrize("dtype", ["bfloat16", "complex32"])
def test_unreadable_user_data_types_get_a_clear_error(dtype):
    with pytest.raises(TypeError, match=f"{dtype} cannot be read.*convert"):
        nvmath.fft.compile_epilog(lambda v, d: v * d, "complex64", dtype, compute_capability=90)


@pytest.mark.parametrize("dtype", ["bfloat16"])  # complex32: tests/test_half_precision.py
def test_unreadable_torch_data_types_get_a_clear_error(dtype):
    from nvmath.fft._tensor import as_tensor

    FakeTensor = type("Tensor", (), {"__module__": "torch", "dtype": f"torch.{dtype}"})
    with pytest.raises(TypeError, match=f"PyTorch {dtype} tensor.*convert it"):
        as_tensor(FakeTensor(), what="epilog data")


def test_half_precision_operand_of_a_length_cufft_cannot_transform_says_why():
    assert nvmath.fft.rfft(RNG.standard_normal(16).astype(np.float16)).shape == (9, 2)  # complex32 as pairs
    with pytest.raises(LayoutError, match="half-precision.*power-of-two lengths.*float32"):
        nvmath.fft.rfft(RNG.standard_normal(12).astype(np.float16))


# -- beyond nvmath-python: SciPy's norm= (its values on every execution: test_callbacks.py), an integer axes

def test_norm_that_cannot_be_fused_says_so():
    def store(data_out, offset, value, user_info, unused):
        data_out[offset] = value

    with pytest.raises(ValueError, match="norm= cannot be fused"):
        nvmath.fft.fft(crandn(8), prolog={"ltoir": b"abc"}, epilog=store, norm="ortho")


def test_bad_norm():
    with pytest.raises(ValueError, match="'backward', 'ortho', 'forward'"):
        nvmath.fft.fft(crandn(8), norm="unitary")


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_integer_axes(axis):
    x = crandn(6, 8)
    assert_close(nvmath.fft.fft(x, axes=axis), np.fft.fft(x, axis=axis), x.dtype)
    with FFT(x, axes=axis) as f:
        assert_close(f.execute(), np.fft.fft(x, axis=axis), x.dtype)


def test_integer_axes_on_the_reuse_path_is_the_same():
    x = crandn(6, 8)
    for _ in range(2):
        assert_close(nvmath.fft.rfft(x.real.copy(), axes=0), np.fft.rfft(x.real, axis=0), x.dtype)


# -- logging ---------------------------------------------------------------------------------

def test_plans_are_logged_on_fftfuse_loggers(caplog):
    with caplog.at_level(logging.INFO, logger="fftfuse"):
        nvmath.fft.fft(crandn(4, 8), epilog=lambda v: v * 4)
    planned = [r for r in caplog.records if r.name == "fftfuse.fft" and "planned C2C complex128" in r.getMessage()]
    assert planned and "epilog" in planned[0].getMessage()


def test_options_logger_gets_this_ffts_events(caplog):
    mine = logging.getLogger("user.fft.events")
    with caplog.at_level(logging.DEBUG, logger="user.fft.events"):
        with FFT(crandn(8), options=FFTOptions(logger=mine)) as f:
            f.plan(prolog=lambda v: v * 5)
    messages = [r.getMessage() for r in caplog.records if r.name == "user.fft.events"]
    assert any("planned C2C" in m for m in messages)


def test_numba_debug_records_stay_out_of_the_root_logger(monkeypatch):
    seen = []

    class Recorder(logging.Handler):
        def emit(self, record):
            seen.append(record.name)

    monkeypatch.setattr(logging.getLogger("numba"), "level", logging.NOTSET)
    root, handler = logging.getLogger(), Recorder()
    monkeypatch.setattr(root, "level", logging.DEBUG)
    root.addHandler(handler)
    try:
        factor = float(RNG.integers(1000, 10**6))  # a new constant: compiled, not found in a cache
        nvmath.fft.fft(crandn(8), epilog=lambda v: v * factor)
    finally:
        root.removeHandler(handler)
    assert "fftfuse.compiler" in seen
    assert not [name for name in seen if name.startswith("numba")]
