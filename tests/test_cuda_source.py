"""CUDA C++ callbacks (``{"source": ...}``) without a GPU: found, compiled, cached, inlined."""

from __future__ import annotations

import numpy as np
import pytest

from fftfuse_cache import ArtifactStore
from fftfuse_compiler.cuda_source import SourceCallbackError, callback_functions, callback_name, compile_source
from fftfuse_compiler.dtypes import C_TYPE, ELEMENT_DTYPES, KINDS
from nvmath.fft._callbacks import callback_spec

ARCH = 75

# Written for CuPy's set_cufft_callbacks (legacy types, size_t offset, the pointer variable).
CUPY_WINDOW = r"""
#include <cufft.h>
// a window applied on load
__device__ cufftComplex CB_ConvertInputC(void *dataIn, size_t offset, void *callerInfo, void *sharedPtr) {
    cufftComplex x = ((cufftComplex*)dataIn)[offset];
    float w = ((float*)callerInfo)[offset];
    return make_float2(x.x * w, x.y * w);
}
__device__ cufftCallbackLoadC d_loadCallbackPtr = CB_ConvertInputC;
"""


def scale_source(kind: str, dtype: str) -> str:
    t = C_TYPE[dtype]
    if dtype.startswith("complex"):
        scaled = f"{t} y = v; y.x *= 0.5; y.y *= 0.5;"
    else:
        scaled = f"{t} y = v * 0.5;"
    if kind == "prolog":
        return (f"__device__ {t} half(void* in, unsigned long long offset, void* info, void* sh) {{\n"
                f"    {t} v = (({t}*)in)[offset]; {scaled} return y;\n}}\n")
    return (f"__device__ void half(void* out, unsigned long long offset, {t} v, void* info, void* sh) {{\n"
            f"    {scaled} (({t}*)out)[offset] = y;\n}}\n")


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "cache")


@pytest.fixture(scope="module")
def linkcheck():
    pytest.importorskip("cuda.bindings.nvrtc")
    pytest.importorskip("cuda.bindings.nvjitlink")
    from fftfuse_compiler import linkcheck

    return linkcheck


def test_callback_functions_by_shape():
    two = CUPY_WINDOW + scale_source("epilog", "complex64")
    assert callback_functions(two, "prolog") == ["CB_ConvertInputC"]
    assert callback_functions(two, "epilog") == ["half"]
    assert callback_functions("/* __device__ void f(void* a, size_t b, float2 c, void* d, void* e) { */", "epilog") == []


def test_callback_name_needs_one_candidate():
    two = scale_source("epilog", "complex64") + scale_source("epilog", "float32").replace("half", "other")
    with pytest.raises(SourceCallbackError, match="several .*half, other.*'name'"):
        callback_name(two, "epilog")
    assert callback_name(two, "epilog", "other") == "other"
    with pytest.raises(SourceCallbackError, match="no __device__ function of a load callback's shape"):
        callback_name(scale_source("epilog", "complex64"), "prolog")
    with pytest.raises(SourceCallbackError, match="no function named 'missing'"):
        callback_name(two, "epilog", "missing")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ELEMENT_DTYPES)
def test_source_callback_inlined(kind, dtype, store, linkcheck):
    compiled = compile_source(scale_source(kind, dtype), kind, dtype, compute_capability=ARCH, store=store)
    assert compiled.source == "compiled" and compiled.arch == ARCH
    for callback_first in (False, True):
        ptx = linkcheck.link_check(compiled.ltoir, kind, dtype, ARCH, callback_first=callback_first)
        assert linkcheck.kernel_calls(ptx) == []
        assert "mul" in ptx  # the user's multiply reached the caller's kernel


@pytest.mark.parametrize("indirect", [False, True])
def test_cupy_callback_unchanged(indirect, store, linkcheck):
    compiled = compile_source(CUPY_WINDOW, "prolog", "complex64", compute_capability=ARCH, indirect=indirect,
                              store=store)
    ptx = linkcheck.link_check(compiled.ltoir, "prolog", "complex64", ARCH)
    assert linkcheck.kernel_calls(ptx) == []
    # Through the slot the data pointer is loaded once more (from callerInfo) before the window.
    assert ptx.count("ld.global") + ptx.count("ld.u64") + ptx.count("ld.f32") >= 3 + indirect


def test_cache_hit_and_key(store, linkcheck):
    first = compile_source(CUPY_WINDOW, "prolog", "complex64", compute_capability=ARCH, store=store)
    again = compile_source(CUPY_WINDOW, "prolog", "complex64", compute_capability=ARCH, store=store)
    slot = compile_source(CUPY_WINDOW, "prolog", "complex64", compute_capability=ARCH, indirect=True, store=store)
    assert (first.source, again.source, slot.source) == ("compiled", "cache", "compiled")
    assert again.ltoir == first.ltoir != slot.ltoir


def test_compile_error_carries_nvrtc_log(store, linkcheck):
    bad = scale_source("epilog", "float32").replace("0.5", "gain")
    with pytest.raises(SourceCallbackError, match=r"epilog 'half' did not compile(.|\n)*\"gain\" is undefined"):
        compile_source(bad, "epilog", "float32", compute_capability=ARCH, store=store)


def test_wrong_element_type_for_the_source(store, linkcheck):
    # float2 passed where cuFFT hands double2: NVRTC refuses the conversion in the forwarder.
    with pytest.raises(SourceCallbackError, match="did not compile"):
        compile_source(scale_source("epilog", "complex64"), "epilog", "complex128", compute_capability=ARCH, store=store)


def test_prolog_and_epilog_share_helper_names(store, linkcheck):
    """Both land in one cuFFT link: the user's names are private to each callback."""
    p = compile_source(scale_source("prolog", "complex64"), "prolog", "complex64", compute_capability=ARCH, store=store)
    e = compile_source(scale_source("epilog", "complex64"), "epilog", "complex64", compute_capability=ARCH, store=store)
    # Two external definitions of `half` would make nvJitLink fail with a duplicate symbol.
    assert linkcheck.nvjitlink_ptx([("p", p.ltoir), ("e", e.ltoir)], ARCH, "both callbacks")


def test_spec_accepts_source_and_name():
    spec = callback_spec({"source": CUPY_WINDOW, "name": "CB_ConvertInputC", "data": np.ones(4, np.float32)}, "prolog")
    assert spec.source == CUPY_WINDOW and spec.source_name == "CB_ConvertInputC" and spec.fn is None
    assert "CUDA C++" in spec.name


@pytest.mark.parametrize(
    "value,match",
    [
        ({"source": CUPY_WINDOW, "fn": lambda x: x}, "exactly one of"),
        ({"source": b"bytes"}, "CUDA C\\+\\+ source text"),
        ({"fn": lambda x: x, "name": "f"}, "\\['name'\\] names the function"),
        ({"source": CUPY_WINDOW, "data": 1234}, "raw pointer"),
    ],
)
def test_spec_rejects(value, match):
    with pytest.raises(TypeError, match=match):
        callback_spec(value, "prolog")


def test_source_on_cpu_is_refused():
    import nvmath

    x = np.ones(8, np.complex64)
    with pytest.raises(ValueError, match="CUDA C\\+\\+ callbacks run only on the GPU"):
        nvmath.fft.fft(x, prolog={"source": CUPY_WINDOW, "data": np.ones(8, np.float32)})
