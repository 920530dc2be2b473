"""The callback compiler without a GPU: forms, errors, and LTO-IR that links as cuFFT expects."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fftfuse_cache import ArtifactStore
from fftfuse_compiler import Form, compile_callback, infer_form
from fftfuse_compiler.cuda_backend import compile_ltoir
from fftfuse_compiler.dtypes import ELEMENT_DTYPES, KINDS, callback_symbol
from fftfuse_compiler.linkcheck import compile_harness, link_check, ptx_signature
from fftfuse_compiler.toolchain import lowest_supported_arch, parse_compute_capability
from nvmath.fft import compile_epilog, compile_prolog

ARCH = 80


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "cache")


def raw_prolog(data_in, offset, user_info, unused):
    return data_in[offset] * user_info[offset]


def raw_epilog(data_out, offset, value, user_info, unused):
    data_out[offset] = value * user_info[offset]


FORMS = {
    "prolog": {Form.VALUE: lambda x: x + x, Form.VALUE_DATA: lambda x, d: x * d, Form.CUFFT: raw_prolog},
    "epilog": {Form.VALUE: lambda x: x + x, Form.VALUE_DATA: lambda x, d: x * d, Form.CUFFT: raw_epilog},
}

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ELEMENT_DTYPES)
@pytest.mark.parametrize("form", list(FORMS["prolog"]))
@pytest.mark.parametrize("indirect", [False, True])
def test_every_callback_links_against_cufft_prototype(kind, dtype, form, indirect, store):
    fn = FORMS[kind][form]
    compiled = compile_callback(fn, kind, dtype, dtype, compute_capability=ARCH, indirect=indirect, store=store)
    assert compiled.symbol == callback_symbol(kind, dtype)
    assert compiled.form is form and compiled.arch == ARCH
    ptx = link_check(compiled.ltoir, kind, dtype, ARCH)  # raises on an unresolved or misnamed callback
    assert ".extern .func" not in ptx


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ELEMENT_DTYPES)
def test_signature_in_ptx(kind, dtype):
    # The exact signature of the CUDA C++ declaration cuFFT's kernels call (fftfuse_compiler.thunk).
    fn = FORMS[kind][Form.VALUE_DATA]
    ptx, _ = compile_ltoir(fn, kind, Form.VALUE_DATA, dtype, "float32", ARCH, indirect=True, output="ptx")
    symbol = callback_symbol(kind, dtype)
    declared = ptx_signature(compile_harness(kind, dtype, ARCH, lto=False).decode(), symbol)
    assert ptx_signature(ptx.decode(), symbol) == declared
    assert len(declared.params) == (4 if kind == "prolog" else 5)


def test_wrong_element_type_does_not_link(store):
    compiled = compile_callback(lambda x: x, "epilog", "complex128", compute_capability=ARCH, store=store)
    with pytest.raises(Exception, match="unresolved|cufftJITCallback"):
        link_check(compiled.ltoir, "epilog", "complex64", ARCH)


def test_nvmath_compatible_helpers_return_ltoir(store, monkeypatch):
    norm = 1.0 / math.sqrt(1024)

    def rescale(data_out, offset, data, user_info, unused):
        data_out[offset] = data * norm

    ltoir = compile_epilog(rescale, "complex128", "complex128", compute_capability="80")
    assert isinstance(ltoir, bytes) and len(ltoir) > 100
    link_check(ltoir, "epilog", "complex128", 80)
    ltoir = compile_prolog(raw_prolog, "float32", "float32", compute_capability=(8, 0))
    link_check(ltoir, "prolog", "float32", 80)


def test_numba_type_as_user_info_dtype(store):
    from numba import types

    compiled = compile_callback(raw_epilog, "epilog", "float64", types.float64, compute_capability=ARCH, store=store)
    link_check(compiled.ltoir, "epilog", "float64", ARCH)


def test_plain_python_helpers_are_compiled_for_the_user(store):
    def window(x):
        return 0.5 - 0.5 * math.cos(x)

    def prolog(x, d):
        return x * window(d)

    compiled = compile_callback(prolog, "prolog", "float32", "float32", compute_capability=ARCH, store=store)
    link_check(compiled.ltoir, "prolog", "float32", ARCH)


def test_default_architecture_is_the_gpu_else_the_lowest(store, monkeypatch):
    from fftfuse_compiler import toolchain

    compiled = compile_callback(lambda x: x, "epilog", "float32", store=store)
    assert compiled.arch == (toolchain.current_device_arch() or lowest_supported_arch())
    monkeypatch.setattr(toolchain, "current_device_arch", lambda: None)  # as on a machine without GPU
    assert compile_callback(lambda x: x, "epilog", "float32", store=store).arch == lowest_supported_arch()


def test_the_current_gpu_is_asked_of_numba_where_a_program_uses_it(monkeypatch):
    """A numba-cuda program (the device FFT's) has numba's context: the CUDA runtime is not started."""
    import sys
    import types

    from fftfuse_compiler import toolchain

    device = types.SimpleNamespace(compute_capability=(8, 6))
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.setitem(sys.modules, "numba.cuda", types.SimpleNamespace(get_current_device=lambda: device))
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)  # an import of it would fail
    assert toolchain.current_device_arch() == 86

    def no_gpu():
        raise RuntimeError("CUDA_ERROR_NO_DEVICE")

    monkeypatch.setitem(sys.modules, "numba.cuda", types.SimpleNamespace(get_current_device=no_gpu))
    assert toolchain.current_device_arch() is None


@pytest.mark.parametrize("spec,expected", [("90", 90), (90, 90), ((9, 0), 90), ("8.6", 86), ("sm_75", 75)])
def test_compute_capability_spellings(spec, expected):
    assert parse_compute_capability(spec) == expected


def test_bad_compute_capability():
    with pytest.raises(ValueError, match="compute_capability"):
        parse_compute_capability("ninety")


# -- errors before any cuFFT call -------------------------------------------------------------------

def _gen(x):
    yield x


def _kwonly(x, *, y=1):
    return x


def _varargs(*xs):
    return xs[0]


def _three(a, b, c):
    return a


@pytest.mark.parametrize("fn,kind,cause", [
    (_gen, "epilog", "generator"),
    (_varargs, "prolog", "variadic"),
    (_three, "prolog", "takes 3 parameters"),
    (raw_epilog, "prolog", "epilog form"),
    (raw_prolog, "epilog", "prolog form"),
    (42, "prolog", "expected a Python function"),
])
def test_form_errors_name_function_forms_and_cause(fn, kind, cause):
    with pytest.raises(TypeError) as info:
        infer_form(fn, kind)
    message = str(info.value)
    assert cause in message and "Accepted" in message and "f(x) -> y" in message
    if callable(fn):
        assert fn.__name__ in message


def test_runtime_parameters_need_the_fft_call(store):
    with pytest.raises(TypeError, match=r"runtime parameters.*'params': \{'y': value\}"):
        compile_callback(_kwonly, "epilog", "complex64", compute_capability=ARCH, store=store)


def _returns_nothing(x):
    x + 1


def _returns_complex(x):
    return x * 1j


def _untypeable(x):
    return undefined_name(x)  # noqa: F821


def _raw_prolog_maybe_none(data_in, offset, user_info, unused):
    return data_in[offset] if offset > 0 else None  # numba's return conversion would accept this


@pytest.mark.parametrize("fn,kind,dtype,cause", [
    (_returns_nothing, "epilog", "complex64", "returns nothing"),
    (_returns_nothing, "prolog", "float32", "returns nothing"),
    (_returns_complex, "prolog", "float32", "returns complex"),
    (_returns_complex, "epilog", "float64", "returns complex"),
    (_untypeable, "epilog", "complex64", "numba could not compile it"),
    (_raw_prolog_maybe_none, "prolog", "float32", "returns OptionalType(float32)"),
])
def test_compile_errors_are_type_errors(fn, kind, dtype, cause, store):
    with pytest.raises(TypeError) as info:
        compile_callback(fn, kind, dtype, compute_capability=ARCH, store=store)
    assert cause in str(info.value) and fn.__name__ in str(info.value) and "Accepted" in str(info.value)


def test_value_data_form_needs_a_user_dtype(store):
    with pytest.raises(TypeError, match="no user data type"):
        compile_callback(lambda x, d: x * d, "epilog", "complex64", compute_capability=ARCH, store=store)


def test_element_dtype_required_ahead_of_an_fft():
    with pytest.raises(TypeError, match="element_dtype"):
        compile_epilog(lambda x: x)


def test_unsupported_element_dtype(store):
    with pytest.raises(ValueError, match="float16"):
        compile_callback(lambda x: x, "epilog", "float16", compute_capability=ARCH, store=store)


# -- the value forms' numerics, on the CPU, through the same wrappers ----------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_value_form_wrappers_compute_on_cpu(kind):
    import numba
    from numba.core import types

    from fftfuse_compiler.wrappers import jit_tree, make_wrapper

    rng = np.random.default_rng(0)
    data = (rng.standard_normal(64) + 1j * rng.standard_normal(64)).astype(np.complex64)
    user = rng.standard_normal(64).astype(np.float32)
    fn = lambda x, d: x * d - 1  # noqa: E731
    wrapper = numba.njit(make_wrapper(kind, Form.VALUE_DATA, jit_tree(fn, numba.njit), types.complex64, indirect=False))
    expected = data * user - 1
    if kind == "prolog":
        got = np.array([wrapper(data, i, user, None) for i in range(64)])
    else:
        got = np.zeros_like(data)
        for i in range(64):
            wrapper(got, i, data[i], user, None)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_nvmath_imports_no_numba():
    import subprocess
    import sys

    code = "import sys, nvmath, nvmath.fft; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- float literals in the element's precision -------------------------------------------------------

HALF = 0.5


def _scaled(x):
    return x * 0.1 + HALF * x


@pytest.mark.parametrize("dtype", ["complex64", "float32"])
def test_single_precision_literals_stay_single(dtype):
    narrow, _ = compile_ltoir(_scaled, "epilog", Form.VALUE, dtype, None, ARCH, narrow=True, output="ptx")
    wide, _ = compile_ltoir(_scaled, "epilog", Form.VALUE, dtype, None, ARCH, narrow=False, output="ptx")
    assert b".f64" not in narrow and b".f64" in wide


def test_literals_option_is_part_of_the_key(store):
    a = compile_callback(_scaled, "epilog", "complex64", compute_capability=ARCH, store=store)
    b = compile_callback(_scaled, "epilog", "complex64", compute_capability=ARCH, literals="double", store=store)
    assert a.source == b.source == "compiled" and a.ltoir != b.ltoir
    c = compile_callback(_scaled, "epilog", "complex128", compute_capability=ARCH, store=store)
    d = compile_callback(_scaled, "epilog", "complex128", compute_capability=ARCH, literals="double", store=store)
    assert d.source == "cache" and c.ltoir == d.ltoir  # double elements: nothing to narrow
    with pytest.raises(ValueError, match="literals"):
        compile_callback(_scaled, "epilog", "complex64", compute_capability=ARCH, literals="half", store=store)


def test_narrowed_results_within_element_rounding():
    from fftfuse_compiler.cpu_backend import compile_cpu

    x = (np.random.default_rng(1).standard_normal(256) * (1 + 1j)).astype(np.complex64)
    for literals in ("element", "double"):
        cb = compile_cpu(_scaled, "epilog", "complex64", literals=literals)
        out = np.zeros_like(x)
        for i in range(x.size):
            cb.wrapper(out, i, x[i], out, None)
        np.testing.assert_allclose(out, x.astype(np.complex128) * 0.6, rtol=2e-6)


def _factorial(n):
    if n <= 1:
        return 1
    return n * _factorial(n - 1)


def test_recursive_helper_is_a_clear_error(store):
    with pytest.raises(TypeError, match="recursively"):
        compile_callback(lambda x: x * _factorial(3), "epilog", "float32", compute_capability=ARCH, store=store)


# --- a compile never reuses what numba compiled before a global changed ---------------------

JITTED_HELPERS = {
    "njit helper": "import numba\n@numba.njit\ndef h(x):\n    return x * K\ndef cb(x):\n    return h(x)\n",
    "cuda.jit helper": "from numba import cuda\n@cuda.jit(device=True)\ndef h(x):\n    return x * K\n"
                       "def cb(x):\n    return h(x)\n",
    "vectorize helper": "import numba\n@numba.vectorize\ndef h(x):\n    return x * K\ndef cb(x):\n    return h(x)\n",
    "njit callback": "import numba\n@numba.njit\ndef cb(x):\n    return x * K\n",
    "cuda.jit callback": "from numba import cuda\n@cuda.jit(device=True)\ndef cb(x):\n    return x * K\n",
    "njit in a module": "import {aux}\ndef cb(x):\n    return {aux}.h(x)\n",
    "njit in a tuple": "import numba\n@numba.njit\ndef h(x):\n    return x * K\nFNS = (h,)\ndef cb(x):\n    return FNS[0](x)\n",
}


def _module(tmp_path, name: str, text: str):
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _helper_module(tmp_path, label: str, k: float, tag: str):
    import sys

    aux = f"stale_aux_{tag}"
    aux_module = _module(tmp_path, aux, f"import numba\nK = {k!r}\n@numba.njit\ndef h(x):\n    return x * K\n")
    sys.modules[aux] = aux_module
    return _module(tmp_path, f"stale_{tag}", f"K = {k!r}\n" + JITTED_HELPERS[label].format(aux=aux)), aux_module


@pytest.mark.parametrize("label", list(JITTED_HELPERS))
@pytest.mark.filterwarnings("ignore:First-class function type")  # numba's note on functions in tuples
def test_changed_global_of_a_jitted_function_is_never_stale(label, tmp_path, store):
    from fftfuse_compiler.cpu_backend import compile_cpu

    mod, aux = _helper_module(tmp_path, label, 2.5, f"{abs(hash(label))}a")
    x = np.array([1.5 - 0.5j], np.complex64)
    cpu = compile_cpu(mod.cb, "epilog", "complex64")  # numba compiles the helper with K = 2.5
    out = np.zeros(1, np.complex64)
    cpu.wrapper(out, 0, x[0], out, None)
    assert out[0] == x[0] * 2.5
    first = compile_callback(mod.cb, "epilog", "complex64", compute_capability=ARCH, store=store)
    mod.K = aux.K = 3.5  # the jitted function's own compiled version still holds 2.5
    again = compile_callback(mod.cb, "epilog", "complex64", compute_capability=ARCH, store=store)
    assert again.source == "compiled"
    fresh, _ = _helper_module(tmp_path, label, 3.5, f"{abs(hash(label))}b")
    reference = compile_callback(fresh.cb, "epilog", "complex64", compute_capability=ARCH, store=ArtifactStore(tmp_path / "fresh"))
    ptx = link_check(again.ltoir, "epilog", "complex64", ARCH)
    assert ptx == link_check(reference.ltoir, "epilog", "complex64", ARCH)
    assert ptx != link_check(first.ltoir, "epilog", "complex64", ARCH)
    cpu.wrapper(out, 0, x[0], out, None)
    compile_cpu(mod.cb, "epilog", "complex64").wrapper(out, 0, x[0], out, None)
    assert out[0] == x[0] * np.float32(3.5)


def _tiny_then_huge(x):
    return x * 1e-30 * 1e60


def _below_float32(x):
    return x * 1e-40 * 1e40


@pytest.mark.parametrize("fn", [_tiny_then_huge, _below_float32])
def test_literals_float32_cannot_hold_stay_double(fn):
    # Rounding 1e60 to float32 gives inf (and 1e-40 loses digits): such literals stay double.
    from fftfuse_compiler.cpu_backend import compile_cpu

    x = (np.random.default_rng(2).standard_normal(16) * (1 + 1j)).astype(np.complex64)
    cb = compile_cpu(fn, "epilog", "complex64")
    out = np.zeros_like(x)
    for i in range(x.size):
        cb.wrapper(out, i, x[i], out, None)
    np.testing.assert_allclose(out, fn(x.astype(np.complex128)), rtol=1e-5)


def test_element_literals_compute_in_float32():
    # The documented limit: an intermediate below float32's range underflows as float32 does.
    from fftfuse_compiler.cpu_backend import compile_cpu

    def underflows(x):
        return x * 1e-30 * 1e-30 * 1e60

    out = np.zeros(1, np.complex64)
    for literals, expected in (("element", 0), ("double", 1 + 1j)):
        compile_cpu(underflows, "epilog", "complex64", literals=literals).wrapper(out, 0, np.complex64(1 + 1j), out, None)
        np.testing.assert_allclose(out[0], expected, rtol=1e-5)
