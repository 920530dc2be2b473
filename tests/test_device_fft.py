"""Device FFT descriptors, traits, errors, code and cache keys, on a machine without a GPU (``sm=`` given).

Needs libmathdx (the ``dx`` extra); skipped where it is not installed.
"""

import contextlib
import os

import numpy as np
import pytest

from nvmath.device import _mathdx

try:
    _mathdx.version()
except RuntimeError as exc:  # no libmathdx: the dx extra is not installed
    pytest.skip(f"libmathdx is not installed: {exc}", allow_module_level=True)

from nvmath.device import FFT, Dim3, fft  # noqa: E402
from nvmath.device import _descriptor  # noqa: E402

import half_kernels  # noqa: E402  (tests/: the kernels test_gpu_device_fft.py runs)

SEED = dict(fft_type="c2c", size=128, precision=np.float32, ffts_per_block=1, elements_per_thread=2,
            execution="Block", compiler="numba", sm=90)


# --- traits -----------------------------------------------------------------------------------


def test_seed_descriptor_traits():
    f = fft(direction="forward", **SEED)
    assert f.value_type is np.complex64
    assert (f.storage_size, f.shared_memory_size, f.stride, f.elements_per_thread, f.ffts_per_block) == (2, 1024, 64, 2, 1)
    assert f.block_dim == Dim3(64, 1, 1) == (64, 1, 1)
    assert f.precision is np.float32 and f.size == 128 and f.sm == (9, 0)
    assert f.implicit_type_batching == 1


def _assert_consistent_knobs(f, size):
    """What holds whatever knobs libmathdx suggests: one thread per ``stride`` elements of a row,
    ``ffts_per_block`` rows per block, and some shared memory."""
    assert isinstance(f.ffts_per_block, int) and isinstance(f.elements_per_thread, int)
    assert f.stride * f.elements_per_thread == size
    assert f.block_dim == (f.stride, f.ffts_per_block, 1)
    assert f.shared_memory_size > 0


def test_suggested_knobs_c2c_1024():
    f = FFT(1024, np.float32, "c2c", "Block", sm=90, direction="forward", ffts_per_block="suggested",
            elements_per_thread="suggested")
    _assert_consistent_knobs(f, 1024)
    if _mathdx.version()[:2] == (0, 3):  # the suggestion is libmathdx's: 0.4 suggests other shared memory
        assert (f.ffts_per_block, f.elements_per_thread, f.shared_memory_size, f.stride) == (2, 32, 16384, 32)
        assert f.block_dim == (32, 2, 1)


def test_suggested_knobs_r2c_512_float64():
    f = FFT(512, np.float64, "r2c", "Block", sm=90, ffts_per_block="suggested", elements_per_thread="suggested")
    assert f.direction == "forward"
    _assert_consistent_knobs(f, 512)
    if _mathdx.version()[:2] == (0, 3):  # 0.4.2 suggests 1 FFT per block, 16 elements per thread
        assert (f.ffts_per_block, f.elements_per_thread, f.shared_memory_size, f.stride) == (2, 8, 8192, 64)
        assert f.block_dim == (64, 2, 1)
    assert f.value_type is np.complex128 and f.input_type is np.float64 and f.output_type is np.complex128


def test_thread_execution_traits():
    f = FFT(16, np.float32, "c2c", "Thread", sm=(9, 0), direction="inverse")
    assert f.storage_size == 16 and f.elements_per_thread == 16
    assert f.block_dim is None and f.shared_memory_size is None and f.ffts_per_block is None


def test_half_precision_traits_batch_two_ffts():
    from nvmath.device import float16x2_type, float16x4_type

    f = FFT(128, np.float16, "c2c", "Block", sm=80, direction="forward", ffts_per_block=2, elements_per_thread=8)
    assert f.implicit_type_batching == 2
    # one element of two FFTs (real, real, imaginary, imaginary): cuFFTDx's complex<__half2>
    assert f.value_type is float16x4_type and f.input_type is f.output_type is float16x4_type
    assert f.block_dim == (16, 1, 1)  # one row of threads computes the two FFTs
    r2c = FFT(128, np.float16, "r2c", "Block", sm=80, ffts_per_block=2, elements_per_thread=8)
    c2r = FFT(128, np.float16, "c2r", "Block", sm=80, ffts_per_block=2, elements_per_thread=8)
    assert r2c.value_type is c2r.value_type is float16x4_type
    assert r2c.input_type is c2r.output_type is float16x2_type  # the real side: one value of each FFT


def test_valid_knobs_lists_pairs_that_exist():
    f = FFT(1024, np.float32, "c2c", "Block", sm=90, direction="forward")
    pairs = f.valid("elements_per_thread", "ffts_per_block")
    assert (32, 2) in pairs and all(len(p) == 2 for p in pairs)
    assert (16,) in f.valid("elements_per_thread")
    with pytest.raises(ValueError, match="elements_per_thread"):
        f.valid("threads")


# --- errors before code generation ------------------------------------------------------------

BAD = [
    (dict(size=0), "size=0"),
    (dict(size=12.5), "positive integer"),
    (dict(precision=np.complex64), "real type"),
    (dict(precision="half"), "precision"),
    (dict(fft_type="c2x"), "'c2c', 'r2c', 'c2r'"),
    (dict(execution="block"), "'Thread', 'Block'"),
    (dict(direction="backward"), "'forward', 'inverse'"),
    (dict(direction=None), "direction is required"),
    (dict(elements_per_thread=0), "elements_per_thread=0"),
    (dict(ffts_per_block=-1), "ffts_per_block=-1"),
    (dict(ffts_per_block="many"), "'suggested'"),
    (dict(sm=999), "sm_70 to sm_121"),
    (dict(sm="hopper"), "not understood"),
    (dict(real_fft_options={"complex_layout": "packed"}), "r2c and c2r"),
    (dict(compiler="cupy"), "compiler='cupy'"),
]


@contextlib.contextmanager
def _no_libmathdx(monkeypatch):
    """libmathdx unreachable: a check that needs it would fail with another error."""
    def refuse(name):
        raise AssertionError(f"libmathdx was called ({name}) before the arguments were checked")

    monkeypatch.setattr(_mathdx, "_function", refuse)
    yield


@pytest.mark.parametrize("change,message", BAD)
def test_bad_values_raise_value_error_before_any_code_generation(change, message, monkeypatch):
    kwargs = dict(SEED, direction="forward")
    kwargs.update(change)
    with _no_libmathdx(monkeypatch), pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        fft(**kwargs)


def test_direction_must_match_real_fft_type():
    with pytest.raises(ValueError, match="r2c FFT is forward"):
        FFT(64, np.float32, "r2c", "Block", sm=90, direction="inverse")
    with pytest.raises(ValueError, match="applies to execution='Block' only"):
        FFT(64, np.float32, "c2c", "Thread", sm=90, direction="forward", ffts_per_block=2)


def test_unsupported_knobs_name_the_pairs_that_exist():
    with pytest.raises(ValueError, match=r"no implementation.*elements_per_thread=3.*pairs it has: \(\d+, \d+\)"):
        FFT(128, np.float32, "c2c", "Block", sm=90, direction="forward", elements_per_thread=3)


def test_sm_none_without_a_gpu_says_to_pass_sm(monkeypatch):
    import fftfuse_compiler.toolchain

    monkeypatch.setattr(fftfuse_compiler.toolchain, "current_device_arch", lambda: None)
    with pytest.raises(ValueError, match="pass sm="):
        FFT(64, np.float32, "c2c", "Block", direction="forward")


def test_execute_outside_a_kernel_is_refused():
    f = FFT(64, np.float32, "c2c", "Block", sm=90, direction="forward")
    with pytest.raises(RuntimeError, match="inside a numba-cuda kernel"):
        f.execute(None, None)
    with pytest.raises(RuntimeError, match="inside a numba-cuda kernel"):
        f(None, None)


# --- library location ------------------------------------------------------------------------


def test_library_found_under_sys_path_and_overridable(monkeypatch, tmp_path):
    found = _mathdx.candidate_paths()
    assert any(p.endswith(os.path.join("lib", "libmathdx.so.0")) for p in found)
    monkeypatch.setenv(_mathdx.ENV_LIBRARY, str(tmp_path / "libmathdx.so.0"))
    assert _mathdx.candidate_paths()[0] == str(tmp_path / "libmathdx.so.0")


def test_status_errors_name_call_and_status():
    err = _mathdx.MathDxError("cufftdxFinalizeCode", 3, "bad code").with_context("generating X")
    assert str(err) == "cufftdxFinalizeCode failed with COMMONDX_COMPILATION_ERROR (3): bad code [generating X]"


# --- code and keys ----------------------------------------------------------------------------


def test_ltoir_is_compiled_once_then_served_from_the_store(tmp_path):
    from fftfuse_cache import ArtifactStore

    store = ArtifactStore(str(tmp_path))
    spec = FFT(32, np.float32, "c2c", "Block", sm=90, direction="forward", elements_per_thread=2)._spec
    first = _descriptor.ltoir(spec, store=store)
    assert first.source == "compiled" and first.symbol.startswith("cufftdx_") and len(first.ltoir) > 1000
    again = _descriptor.ltoir(spec, store=store)
    assert again.source == "cache" and again.ltoir == first.ltoir and again.symbol == first.symbol
    store.close()


def test_ltoir_key_covers_descriptor_api_and_architecture():
    base = FFT(32, np.float32, "c2c", "Block", sm=90, direction="forward")._spec
    keys = {
        _descriptor.artifact_key(base, _descriptor.API_REGISTER),
        _descriptor.artifact_key(base, _descriptor.API_SHARED),
        _descriptor.artifact_key(base._replace(direction="inverse"), _descriptor.API_REGISTER),
        _descriptor.artifact_key(base._replace(arch=80), _descriptor.API_REGISTER),
        _descriptor.artifact_key(base._replace(elements_per_thread=4), _descriptor.API_REGISTER),
    }
    assert len(keys) == 5
    assert _descriptor.artifact_key(base, _descriptor.API_REGISTER) == _descriptor.artifact_key(
        FFT(32, np.float32, "c2c", "Block", sm=(9, 0), direction="forward")._spec, _descriptor.API_REGISTER)


# --- numba kernels, compiled and linked without a GPU -------------------------------------------


@contextlib.contextmanager
def _target(cc):
    """numba-cuda types calls for the current GPU's architecture; there is none here, so answer cc."""
    import numba.cuda.dispatcher as dispatcher

    class Device:
        compute_capability = cc

    original = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: Device()
    try:
        yield
    finally:
        dispatcher.get_current_device = original


def _kernel_library(pyfunc, argtypes, link=(), cc=(9, 0)):
    """numba's code library for a kernel, as cuda.jit builds it, without a GPU."""
    from numba.cuda import types
    from numba.cuda.compiler import compile_cuda, kernel_fixup

    with _target(cc):
        cres = compile_cuda(pyfunc, types.void, argtypes, cc=cc, lto=True, nvvm_options={"opt": 3})
    library = cres.library
    library._entry_name = cres.fndesc.llvm_func_name
    kernel_fixup(library.get_function(cres.fndesc.llvm_func_name), False)
    for f in link:
        library.add_linking_file(f)
    return library


def _array(dtype, ndim=1):
    from numba.cuda import types
    from numba.np.numpy_support import from_dtype

    return types.Array(from_dtype(np.dtype(dtype)), ndim, "C")


def _convolution(fwd, inv, scale):
    from numba import cuda

    storage_size, value_type, stride, ept = fwd.storage_size, fwd.value_type, fwd.stride, fwd.elements_per_thread

    def kernel(signal, filt):
        thread_data = cuda.local.array(shape=(storage_size,), dtype=value_type)
        shared_mem = cuda.shared.array(shape=(0,), dtype=value_type)
        offset = cuda.threadIdx.x
        for i in range(ept):
            thread_data[i] = signal[0, offset + i * stride]
        fwd(thread_data, shared_mem)
        for i in range(ept):
            thread_data[i] = thread_data[i] * filt[0, offset + i * stride] * scale
        inv(thread_data, shared_mem)
        for i in range(ept):
            signal[0, offset + i * stride] = thread_data[i]

    return kernel


def _pair(size=64, **kw):
    base = dict(SEED, size=size, **kw)
    return fft(direction="forward", **base), fft(direction="inverse", **base)


def test_seed_style_kernel_calls_the_cufftdx_symbols_and_links_them():
    fwd, inv = _pair()
    library = _kernel_library(_convolution(fwd, inv, 1.0), (_array(np.complex64, 2),) * 2)
    ir = library.get_llvm_str()
    for f in (fwd, inv):
        assert f'declare void @"{f.symbol}"(' in ir
    # Calling the FFT added its code to the link; .files is that same object, so it is linked once.
    assert set(library._linking_files) == {fwd.files[0], inv.files[0]}
    ptx = library.get_lto_ptx(cc=(9, 0))  # nvJitLink: everything resolved, nothing left extern
    assert ".entry" in ptx and ".extern .func" not in ptx


def test_execute_spelling_and_shared_memory_api_lower():
    from numba import cuda

    f = FFT(64, np.float32, "c2c", "Block", sm=90, direction="forward", ffts_per_block=1)

    def kernel(x):
        s = cuda.shared.array(0, f.value_type)
        for k in range(cuda.threadIdx.x, f.size, cuda.blockDim.x):
            s[k] = x[k]
        f.execute(s)
        for k in range(cuda.threadIdx.x, f.size, cuda.blockDim.x):
            x[k] = s[k]

    library = _kernel_library(kernel, (_array(np.complex64),))
    symbol = f._artifact(_descriptor.API_SHARED).symbol
    assert symbol != f.symbol and f'declare void @"{symbol}"(' in library.get_llvm_str()


def test_wrong_element_type_is_a_typing_error():
    from numba import cuda
    from numba.core.errors import TypingError

    f = FFT(64, np.float32, "c2c", "Block", sm=90, direction="forward")

    def kernel(x):
        t = cuda.local.array(4, np.complex128)
        s = cuda.shared.array(0, f.value_type)
        f.execute(t, s)

    with pytest.raises(TypingError, match="value_type"):
        _kernel_library(kernel, (_array(np.complex64),))


_LINK_PROBE = r"""
import hashlib, json, sys
import numpy as np
sys.path.insert(0, sys.argv[3])
import test_device_fft as t
from fftfuse_compiler import link_cache
fwd, inv = t._pair(size=32, elements_per_thread=int(sys.argv[2]))
library = t._kernel_library(t._convolution(fwd, inv, float(sys.argv[1])), (t._array(np.complex64, 2),) * 2,
                            link=fwd.files + inv.files)
cubin = library.get_cubin(cc=(9, 0))
print(json.dumps({"cubin": hashlib.sha256(bytes(cubin.code)).hexdigest(), **link_cache.stats()}))
"""


def test_link_cache_hits_identical_kernels_and_misses_changed_ones(tmp_path):
    # Fresh processes, as in use: numba numbers the functions it compiles, so a kernel compiled a
    # second time in one process is other code (another name) and links again.
    import json
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, FFTFUSE_CACHE_DIR=str(tmp_path), PYTHONPATH=os.pathsep.join(
        filter(None, [root, os.environ.get("PYTHONPATH", "")])))

    def link(scale, elements_per_thread):
        out = subprocess.run([sys.executable, "-c", _LINK_PROBE, str(scale), str(elements_per_thread),
                              os.path.join(root, "tests")], capture_output=True, text=True, env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = link(1.0, 2)
    assert (first["hits"], first["misses"]) == (0, 1)
    again = link(1.0, 2)
    assert (again["hits"], again["misses"]) == (1, 0) and again["cubin"] == first["cubin"]
    changed = link(2.0, 2)  # another value of a captured constant: never the old cubin
    assert (changed["hits"], changed["misses"]) == (0, 1) and changed["cubin"] != first["cubin"]
    other = link(1.0, 4)  # another descriptor
    assert (other["hits"], other["misses"]) == (0, 1) and other["cubin"] != first["cubin"]


def test_value_type_names_of_nvmath_python_1_0():
    from nvmath.device.types import complex64, complex128

    assert FFT(64, np.float32, "c2c", "Block", sm=90, direction="forward").value_type == complex64
    assert FFT(64, np.float64, "r2c", "Block", sm=90).value_type == complex128


def test_half_precision_data_of_another_type_is_a_typing_error_naming_float16x4():
    from numba import cuda
    from numba.core.errors import TypingError

    from nvmath.device import float16x2

    f = FFT(64, np.float16, "c2c", "Thread", sm=90, direction="forward")

    def complex64_data(x):
        t = cuda.local.array(4, np.complex64)
        f.execute(t)

    def float16x2_data(x):  # the real type of r2c/c2r: not the data of a c2c FFT
        t = cuda.local.array(4, float16x2)
        f.execute(t)

    for kernel in (complex64_data, float16x2_data):
        with pytest.raises(TypingError, match="must hold float16x4"):
            _kernel_library(kernel, (_array(np.complex64),))


def test_equal_descriptions_link_one_copy_of_their_code():
    fwd, inv = _pair(size=32)
    twin_fwd, twin_inv = _pair(size=32)  # other objects, same descriptions
    library = _kernel_library(_convolution(fwd, inv, 1.0), (_array(np.complex64, 2),) * 2,
                              link=twin_fwd.files + twin_inv.files)
    assert len(library._linking_files) == 2
    assert ".extern .func" not in library.get_lto_ptx(cc=(9, 0))


def test_packed_folded_real_fft_traits_and_kernel():
    from numba import cuda

    options = {"complex_layout": "packed", "real_mode": "folded"}
    r2c = FFT(64, np.float32, "r2c", "Block", sm=90, ffts_per_block=2, elements_per_thread=4, real_fft_options=options)
    c2r = FFT(64, np.float32, "c2r", "Block", sm=90, ffts_per_block=2, elements_per_thread=4, real_fft_options=options)
    assert r2c.real_fft_options == options
    for f in (r2c, c2r):
        assert (f.storage_size, f.ffts_per_block, f.stride, f.elements_per_thread) == (2, 2, 16, 4)
        assert f.block_dim == (16, 2, 1) and f.value_type is np.complex64

    def kernel(inout):
        data = cuda.local.array(shape=(r2c.storage_size,), dtype=r2c.value_type)
        real = data.view(np.float32)
        row = cuda.blockIdx.x * r2c.ffts_per_block + cuda.threadIdx.y
        for i in range(r2c.elements_per_thread):
            idx = i * r2c.stride + cuda.threadIdx.x
            if idx < r2c.size // 2:
                real[2 * i] = inout[row, 2 * idx]
                real[2 * i + 1] = inout[row, 2 * idx + 1]
        shared = cuda.shared.array(shape=(0,), dtype=r2c.value_type)
        r2c.execute(data, shared)
        c2r.execute(data, shared)

    library = _kernel_library(kernel, (_array(np.float32, 2),))
    assert ".extern .func" not in library.get_lto_ptx(cc=(9, 0))


def test_current_gpu_newer_than_cufftdx_knows_gets_the_newest_code(monkeypatch):
    import fftfuse_compiler.toolchain

    monkeypatch.setattr(fftfuse_compiler.toolchain, "current_device_arch", lambda: 150)
    assert FFT(64, np.float32, "c2c", "Block", direction="forward").sm == (12, 1)


def test_install_hint_names_extras_the_package_defines():
    import re
    import tomllib

    with open(os.path.join(os.path.dirname(__file__), "..", "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    named = {name for group in re.findall(r"fftfuse\[([^\]]+)\]", _mathdx.INSTALL_HINT) for name in group.split(",")}
    assert {"dx12", "dx13"} <= named <= set(extras)


def test_a_device_fft_states_its_identity_for_the_kernel_cache():
    # fftfuse_compiler.fingerprint's protocol: equal descriptions, one identity; another, another.
    f, g = fft(direction="forward", **SEED), fft(direction="forward", **SEED)
    assert f.__fftfuse_fingerprint__() == g.__fftfuse_fingerprint__()
    assert f.__fftfuse_fingerprint__() != fft(direction="inverse", **SEED).__fftfuse_fingerprint__()
    assert f.__fftfuse_fingerprint__() != fft(direction="forward", **dict(SEED, elements_per_thread=4)).__fftfuse_fingerprint__()
    from nvmath.device import _numba

    assert _numba.is_device_fft(f) and _numba.is_device_fft(f.files[0]) and not _numba.is_device_fft(1)


# --- half precision: float16x2 / float16x4 and kernels that execute half-precision FFTs ---------


def test_half_vectors_import_paths_and_host_values():
    import pickle

    import nvmath.device
    from nvmath.device import float16x2, float16x2_type, float16x4, float16x4_type  # the examples' imports
    from nvmath.device import types

    assert types.float16x2 is float16x2 and types.float16x4_type is float16x4_type
    assert {"float16x2", "float16x4"} <= set(nvmath.device.__all__)  # the numba types load numba: not star-exported
    assert float16x2.numba_type is float16x2_type and float16x4.numba_type is float16x4_type
    assert float16x4_type.np_dtype == types.np_float16x4 and float16x2_type.np_dtype == types.np_float16x2
    # The NumPy equivalents hold the lanes in order, two bytes each: the bytes of the vector types.
    v = float16x4(1, 2, 3, 4)
    assert v.dtype == types.np_float16x4 and types.np_float16x4.itemsize == 8 and types.np_float16x2.itemsize == 4
    assert v.tobytes() == np.array([1, 2, 3, 4], np.float16).tobytes()
    assert float16x2(1.5 - 2j).tobytes() == np.array([1.5, -2], np.float16).tobytes()
    with pytest.raises(TypeError, match="takes 4 values"):
        float16x4(1, 2)
    assert pickle.loads(pickle.dumps(float16x4)) is float16x4
    assert float16x4.__fftfuse_fingerprint__() != float16x2.__fftfuse_fingerprint__()


def test_half_vectors_import_without_numba():
    import subprocess
    import sys

    code = ("import sys; from nvmath.device import FFT, float16x2, float16x4; "
            "assert not any(m == 'numba' or m.startswith('numba.') for m in sys.modules), 'numba imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def _assert_calls_and_links(library, ffts, api=_descriptor.API_REGISTER, cc=(9, 0)):
    """The kernel calls each FFT's function on pointers to its 8-byte value_type ({i64}: the size
    and alignment of complex<__half2>), and nvJitLink resolves every call."""
    import re

    ir = library.get_llvm_str()
    for f in ffts:
        symbol = f._artifact(api).symbol
        params = re.search(rf'declare void @"{symbol}"\(([^)]*)\)', ir)
        assert params, f"no declaration of {symbol}"
        assert all(re.match(r"\s*(\{i64\}\*|ptr)", p) for p in params.group(1).split(",")), params.group(0)
    ptx = library.get_lto_ptx(cc=cc)
    assert ".entry" in ptx and ".extern .func" not in ptx


HALF_CCS = [(9, 0), (8, 0)]


@pytest.mark.parametrize("cc", HALF_CCS)
def test_half_precision_block_c2c_kernel_types_lowers_and_links(cc):
    f = FFT(128, np.float16, "c2c", "Block", sm=cc, direction="forward", ffts_per_block=4, elements_per_thread=8)
    library = _kernel_library(half_kernels.block_c2c(f), (_array(np.float16, 2),) * 2, cc=cc)
    _assert_calls_and_links(library, [f], cc=cc)
    assert set(library._linking_files) == {f.files[0]}


@pytest.mark.parametrize("cc", HALF_CCS)
def test_half_precision_thread_c2c_kernel_types_lowers_and_links(cc):
    from nvmath.device.types import np_float16x4

    f = FFT(16, np.float16, "c2c", "Thread", sm=cc, direction="inverse")
    library = _kernel_library(half_kernels.thread_c2c(f), (_array(np_float16x4, 2),), cc=cc)
    _assert_calls_and_links(library, [f], cc=cc)


@pytest.mark.parametrize("cc", HALF_CCS)
def test_half_precision_r2c_c2r_kernel_types_lowers_and_links(cc):
    r2c = FFT(128, np.float16, "r2c", "Block", sm=cc, ffts_per_block=2, elements_per_thread=8)
    c2r = FFT(128, np.float16, "c2r", "Block", sm=cc, ffts_per_block=2, elements_per_thread=8)
    library = _kernel_library(half_kernels.real_round_trip(r2c, c2r), (_array(np.float32, 2), _array(np.float16, 3)),
                              cc=cc)
    _assert_calls_and_links(library, [r2c, c2r], cc=cc)


@pytest.mark.parametrize("cc", HALF_CCS)
def test_half_precision_shared_memory_api_kernel_types_lowers_and_links(cc):
    f = FFT(64, np.float16, "c2c", "Block", sm=cc, direction="forward", ffts_per_block=2)
    library = _kernel_library(half_kernels.shared_c2c(f), (_array(np.complex64, 2),), cc=cc)
    _assert_calls_and_links(library, [f], api=_descriptor.API_SHARED, cc=cc)


def _ptx_values(ptx):
    """What each st.global of a straight-line PTX kernel stores, symbolically: the byte offsets of
    the float16 loads it is made of, by bit position ({0: 6} is the load at +6 in bits 0..15).
    Follows ld.global.u16, cvt, bfi and mov.b64/b32 {...} (the packings NVVM emits)."""
    import re

    values, stores = {}, []
    for line in ptx.splitlines():
        line = line.strip().rstrip(";")
        if m := re.match(r"ld\.global\.(?:u16|b16)\s+(%\w+),\s*\[%\w+(?:\+(\d+))?\]", line):
            values[m.group(1)] = {0: int(m.group(2) or 0)}
        elif m := re.match(r"cvt\.u(?:32|64)\.u16\s+(%\w+),\s*(%\w+)", line):
            values[m.group(1)] = values.get(m.group(2))
        elif m := re.match(r"bfi\.b(?:32|64)\s+(%\w+),\s*(%\w+),\s*(%\w+),\s*(\d+),\s*16", line):
            base, lane = values.get(m.group(3)) or {}, values.get(m.group(2)) or {}
            values[m.group(1)] = {**base, int(m.group(4)): lane.get(0)}
        elif m := re.match(r"mov\.b(?:32|64)\s+(%\w+),\s*\{([^}]*)\}", line):
            lanes = [values.get(r.strip(), {}).get(0) for r in m.group(2).split(",")]
            values[m.group(1)] = {16 * k: off for k, off in enumerate(lanes)}
        elif m := re.match(r"st\.global\.(u16|b16|u64|b64)\s+\[%\w+(?:\+(\d+))?\],\s*(%\w+)", line):
            stores.append((int(m.group(2) or 0), m.group(1)[1:], values.get(m.group(3))))
    return stores


def test_half_vector_lanes_and_memory_layout():
    # float16x4(a, b, c, d) has lanes x=a, y=b, z=c, w=d; lane k is bits 16k..16k+15, so in memory
    # (little endian) lane x comes first: the layout of np_float16x4 and of cuFFTDx's
    # complex<__half2> {x: (real, real), y: (imaginary, imaginary)}, the "RRII" of the examples.
    from nvmath.device import float16x2, float16x4, float16x4_type

    def kernel(x, y):
        v = float16x4(x[0], x[1], x[2], x[3])
        w = float16x4(float16x2(v.w, v.z), float16x2(v.y, v.x))  # reversed, through float16x2
        y[0] = w.x
        y[1] = w.y
        y[2] = w.z
        y[3] = w.w
        y.view(float16x4_type)[1] = v  # bytes 8..15 of y

    library = _kernel_library(kernel, (_array(np.float16), _array(np.float16)))
    stores = sorted(_ptx_values(library.get_asm_str(cc=(9, 0))), key=lambda s: s[0])
    assert stores == [(0, "16", {0: 6}), (2, "16", {0: 4}), (4, "16", {0: 2}), (6, "16", {0: 0}),
                      (8, "64", {0: 0, 16: 2, 32: 4, 48: 6})], stores


def test_half_vector_constructor_arguments_are_checked():
    from numba import cuda
    from numba.core.errors import TypingError

    from nvmath.device import float16x2, float16x4

    def two_for_four(x):
        cuda.local.array(1, float16x4)[0] = float16x4(x[0], x[1])

    def complex_for_four(x):  # (c0, c1) would be real, imaginary, real, imaginary: not RRII
        cuda.local.array(1, float16x4)[0] = float16x4(x[0] + 1j, x[1] + 1j)

    def three_for_two(x):
        cuda.local.array(1, float16x2)[0] = float16x2(x[0], x[1], x[2])

    for kernel, name in ((two_for_four, "float16x4"), (complex_for_four, "float16x4"), (three_for_two, "float16x2")):
        with pytest.raises(TypingError, match=f"{name}.*is not supported; {name} takes"):
            _kernel_library(kernel, (_array(np.float32),))


def test_kernels_using_half_vectors_have_a_fingerprint():
    # The kernel cache keys a kernel by the values it reads: the vectors state their identity.
    from fftfuse_compiler.fingerprint import function_fingerprint

    f = FFT(16, np.float16, "c2c", "Thread", sm=90, direction="forward")
    kernel = half_kernels.thread_c2c(f)
    assert function_fingerprint(kernel) == function_fingerprint(half_kernels.thread_c2c(f))
    assert function_fingerprint(kernel) != function_fingerprint(
        half_kernels.thread_c2c(FFT(16, np.float16, "c2c", "Thread", sm=90, direction="inverse")))
