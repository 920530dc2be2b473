"""nvmath.fft._cufft: the ctypes cuFFT binding. CPU tests run anywhere cuFFT is installed."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from nvmath.fft import _cufft

NO_PLAN = 987654  # never a live handle: cuFFT answers CUFFT_INVALID_PLAN, with or without a GPU


def _gpu_count() -> int:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return 0


needs_gpu = pytest.mark.skipif(_gpu_count() == 0, reason="needs CuPy and a CUDA GPU")


@pytest.fixture(scope="module")
def cufft():
    try:
        _cufft.cufft_version()
    except RuntimeError as exc:
        pytest.skip(f"cuFFT not loadable: {exc}")
    return _cufft


# ---------------------------------------------------------------------------------------------
# Errors: pure Python
# ---------------------------------------------------------------------------------------------


def test_status_names_cover_the_enum():
    assert len(_cufft.STATUS_NAMES) == 17
    assert _cufft.status_name(0) == "CUFFT_SUCCESS"
    assert _cufft.status_name(5) == "CUFFT_INTERNAL_ERROR"
    assert _cufft.status_name(10) == "CUFFT_INCOMPLETE_PARAMETER_LIST"
    assert _cufft.status_name(16) == "CUFFT_NOT_SUPPORTED"
    assert "99" in _cufft.status_name(99)


def test_error_message_names_call_and_status():
    err = _cufft.CuFFTError("cufftXtMakePlanMany", 5)
    assert (err.call, err.status, err.name) == ("cufftXtMakePlanMany", 5, "CUFFT_INTERNAL_ERROR")
    assert str(err).startswith("cufftXtMakePlanMany failed with CUFFT_INTERNAL_ERROR (5)")
    assert "LTO" in str(err)  # the hint on what an internal error means at plan time


def test_error_context_accumulates():
    err = _cufft.CuFFTError("cufftCreate", 7, context="plan C2C (1024,)")
    assert err.with_context("epilog 'rescale'") is err
    assert str(err).endswith("[plan C2C (1024,); epilog 'rescale']")
    with pytest.raises(_cufft.CuFFTError, match="epilog 'rescale'"):
        raise err


def test_error_pickles():
    err = pickle.loads(pickle.dumps(_cufft.CuFFTError("cufftXtExec", 6, context="x")))
    assert (err.call, err.status, err.context) == ("cufftXtExec", 6, "x")


def test_format_version():
    assert _cufft.format_version(11401) == "11.4.1"
    assert _cufft.format_version(12000) == "12.0.0"


# ---------------------------------------------------------------------------------------------
# Choosing the LTO callback setter and the requirements: pure Python
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exported,version,expected",
    [
        ({"__cufftXtSetJITCallback_12_7", "cufftXtSetJITCallback"}, 11401, "__cufftXtSetJITCallback_12_7"),
        ({"__cufftXtSetJITCallback_12_7", "cufftXtSetJITCallback"}, 12000, "__cufftXtSetJITCallback_12_7"),
        ({"cufftXtSetJITCallback"}, 12000, "cufftXtSetJITCallback"),
        ({"cufftXtSetJITCallback"}, 11200, None),  # the old form only: refuse
        (set(), 12000, None),
    ],
)
def test_resolve_jit_setter(exported, version, expected):
    if expected is None:
        with pytest.raises(RuntimeError, match="11.3"):
            _cufft._resolve_jit_setter(exported.__contains__, version)
    else:
        assert _cufft._resolve_jit_setter(exported.__contains__, version) == expected


def test_lto_problem_messages(cufft):
    assert cufft._lto_problem(11401, {}) is None
    too_old = cufft._lto_problem(11200, {})
    assert "cuFFT 11.3 / CUDA 12.6 Update 2" in too_old and "11.2.0" in too_old
    missing = cufft._lto_problem(12000, {"nvJitLink": "not found"})
    assert "nvJitLink" in missing and "not found" in missing


def test_data_types():
    # cudaDataType (library_types.h): CUDA_R_16F = 2 and CUDA_C_16F = 6 are the half-precision types.
    assert _cufft.CUDA_DATA_TYPE == {"float32": 0, "float64": 1, "complex64": 4, "complex128": 5,
                                     "float16": 2, "complex32": 6}


# ---------------------------------------------------------------------------------------------
# The real library, no GPU needed
# ---------------------------------------------------------------------------------------------


def test_import_loads_nothing():
    code = (
        "import nvmath.fft._cufft\n"
        "maps = open('/proc/self/maps').read()\n"
        "assert 'libcufft' not in maps, 'libcufft loaded at import'\n"
    )
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/maps")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_library_loads(cufft):
    assert "cufft" in cufft.library_path()
    assert cufft.cufft_version() >= cufft.LTO_MIN_VERSION


def test_setter_matches_exports(cufft):
    name = cufft.jit_callback_setter_name()
    if cufft.cufft_version() < 12000:
        assert name == "__cufftXtSetJITCallback_12_7"
    else:
        assert name in ("__cufftXtSetJITCallback_12_7", "cufftXtSetJITCallback")
    assert cufft._function(name) is not None


def test_lto_callbacks_supported(cufft):
    cufft.require_lto_callbacks()
    cufft.require_lto_callbacks()  # cached: the second call is free


@pytest.mark.parametrize(
    "call,args",
    [
        ("destroy", ()),
        ("set_stream", (0,)),
        ("set_auto_allocation", (False,)),
        ("set_work_area", (0,)),
        ("get_size", ()),
        ("xt_exec", (0, 0, -1)),
        ("set_plan_property_int64", (_cufft.PLAN_PROPERTY_PATIENT_JIT, 1)),
    ],
)
def test_calls_on_invalid_plan_raise(cufft, call, args):
    with pytest.raises(cufft.CuFFTError) as info:
        getattr(cufft, call)(NO_PLAN, *args)
    assert info.value.name == "CUFFT_INVALID_PLAN"


def test_make_plan_many_on_invalid_plan_raises(cufft):
    with pytest.raises(cufft.CuFFTError, match="cufftXtMakePlanMany failed with CUFFT_INVALID_PLAN"):
        cufft.xt_make_plan_many(NO_PLAN, [64], input_type=4, output_type=4, execution_type=4, batch=2)


@pytest.mark.parametrize("caller_info", [None, 0x1000, [0x1000]])
def test_jit_setter_on_invalid_plan_raises(cufft, caller_info):
    with pytest.raises(cufft.CuFFTError, match="cufftXtSetJITCallback failed with CUFFT_INVALID_PLAN"):
        cufft.xt_set_jit_callback(NO_PLAN, b"\0" * 16, 4, caller_info=caller_info)
    assert NO_PLAN not in cufft._keepalive


def test_make_plan_many_checks_rank(cufft):
    with pytest.raises(ValueError, match="rank"):
        cufft.xt_make_plan_many(NO_PLAN, [2, 2, 2, 2], input_type=4, output_type=4, execution_type=4)
    with pytest.raises(ValueError, match="inembed"):
        cufft.xt_make_plan_many(NO_PLAN, [8, 8], inembed=[8], input_type=4, output_type=4, execution_type=4)


def test_create_succeeds_or_names_the_call(cufft):
    try:
        plan = cufft.create()
    except cufft.CuFFTError as exc:  # no usable GPU or driver here
        assert exc.call == "cufftCreate"
    else:
        cufft.destroy(plan)


# ---------------------------------------------------------------------------------------------
# On a GPU
# ---------------------------------------------------------------------------------------------


def _plan_c2c(cufft, n: int, batch: int, stream: int, callback=None) -> int:
    plan = cufft.create()
    try:
        cufft.set_stream(plan, stream)
        if callback is not None:
            ltoir, caller_info = callback
            cufft.xt_set_jit_callback(plan, ltoir, 4, caller_info=caller_info)  # ST_COMPLEX
        c32 = cufft.CUDA_DATA_TYPE["complex64"]
        cufft.xt_make_plan_many(
            plan, [n], batch=batch, input_type=c32, output_type=c32, execution_type=c32, idist=n, odist=n
        )
    except BaseException:
        cufft.destroy(plan)
        raise
    return plan


@pytest.mark.gpu
@needs_gpu
def test_c2c_matches_numpy(cufft):
    import cupy

    n, batch = 64, 3
    x = (np.random.default_rng(0).standard_normal((batch, n, 2)) @ [1, 1j]).astype(np.complex64)
    d_x, d_y = cupy.asarray(x), cupy.empty_like(cupy.asarray(x))
    stream = cupy.cuda.get_current_stream()
    plan = _plan_c2c(cufft, n, batch, stream.ptr)
    try:
        assert cufft.get_size(plan) >= 0
        cufft.xt_exec(plan, d_x.data.ptr, d_y.data.ptr, cufft.CUFFT_FORWARD)
        stream.synchronize()
    finally:
        cufft.destroy(plan)
    np.testing.assert_allclose(d_y.get(), np.fft.fft(x, axis=-1), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@needs_gpu
def test_lto_epilog_with_caller_info(cufft):
    import cupy
    from numba import cuda, types

    from fftfuse_compiler.dtypes import callback_symbol

    def epilog(data_out, offset, element, user_info, unused):
        data_out[offset] = element * user_info[offset]

    cufft.require_lto_callbacks()
    cc = divmod(int(cupy.cuda.Device().compute_capability), 10)  # "90" -> (9, 0)
    c64 = types.complex64
    sig = types.void(types.CPointer(c64), types.uint64, c64, types.CPointer(c64), types.voidptr)
    ltoir, _ = cuda.compile(
        epilog, sig, device=True, abi="c", abi_info={"abi_name": callback_symbol("epilog", "complex64")},
        output="ltoir", cc=cc,
    )  # fmt: skip

    n, batch = 128, 2
    x = (np.random.default_rng(1).standard_normal((batch, n, 2)) @ [1, 1j]).astype(np.complex64)
    f = (np.arange(batch * n).reshape(batch, n) % 7 - 3).astype(np.complex64)
    d_x, d_f = cupy.asarray(x), cupy.asarray(f)
    d_y = cupy.empty_like(d_x)
    stream = cupy.cuda.get_current_stream()
    plan = _plan_c2c(cufft, n, batch, stream.ptr, callback=(ltoir, d_f.data.ptr))
    try:
        cufft.xt_exec(plan, d_x.data.ptr, d_y.data.ptr, cufft.CUFFT_FORWARD)
        stream.synchronize()
    finally:
        cufft.destroy(plan)
    np.testing.assert_allclose(d_y.get(), np.fft.fft(x, axis=-1) * f, rtol=1e-4, atol=1e-3)
