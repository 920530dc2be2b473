"""fftfuse_compiler.linkcheck: callbacks link under cuFFT's names, and wrong ones are caught, on CPU."""

from __future__ import annotations

import pytest

from fftfuse_compiler.dtypes import ELEMENT_DTYPES, KINDS, callback_symbol
from fftfuse_compiler.linkcheck import ptx_extern_funcs, ptx_param_list, ptx_signature

ARCH = 75

# numba's C ABI lowering of each callback (what cuFFT has been seen to accept): complex values
# are passed as two scalars, returned as a byte array; a void function returns a .b64 slot.
NUMBA_C_ABI = {
    ("prolog", "float32"): (".b32", [".b64"] * 4),
    ("prolog", "float64"): (".b64", [".b64"] * 4),
    ("prolog", "complex64"): (".align 4 .b8[8]", [".b64"] * 4),
    ("prolog", "complex128"): (".align 8 .b8[16]", [".b64"] * 4),
    ("epilog", "float32"): (".b64", [".b64", ".b64", ".b32", ".b64", ".b64"]),
    ("epilog", "float64"): (".b64", [".b64", ".b64", ".b64", ".b64", ".b64"]),
    ("epilog", "complex64"): (".b64", [".b64", ".b64", ".b32", ".b32", ".b64", ".b64"]),
    ("epilog", "complex128"): (".b64", [".b64"] * 6),
}

ALL_CASES = [(kind, dtype) for kind in KINDS for dtype in ELEMENT_DTYPES]


# ---------------------------------------------------------------------------------------------
# PTX parsing: pure text, needs nothing from CUDA
# ---------------------------------------------------------------------------------------------

_PTX = """
.extern .func  (.param .align 8 .b8 func_retval0[8]) missing
(
	.param .b64 missing_param_0
)
;
.visible .func  (.param .b64 func_retval0) _Z28cufftJITCallbackStoreComplexPvy6float2S_S_(
	.param .b64 _Z28cufftJITCallbackStoreComplexPvy6float2S_S__param_0,
	.param .b64 _Z28cufftJITCallbackStoreComplexPvy6float2S_S__param_1,
	.param .b32 _Z28cufftJITCallbackStoreComplexPvy6float2S_S__param_2,
	.param .b32 _Z28cufftJITCallbackStoreComplexPvy6float2S_S__param_3,
	.param .b64 _Z28cufftJITCallbackStoreComplexPvy6float2S_S__param_4,
	.param .b64 _Z28cufftJITCallbackStoreComplexPvy6float2S_S__param_5
)
{
	ret;
}
.func noargs()
{
	ret;
}
"""


def test_ptx_param_list_reads_declarations():
    symbol = "_Z28cufftJITCallbackStoreComplexPvy6float2S_S_"
    assert ptx_param_list(_PTX, symbol) == [".b64", ".b64", ".b32", ".b32", ".b64", ".b64"]
    assert ptx_signature(_PTX, symbol).returns == ".b64"
    assert ptx_signature(_PTX, "missing") == (".align 8 .b8[8]", [".b64"])
    assert ptx_signature(_PTX, "noargs") == (None, [])


def test_ptx_param_list_unknown_symbol():
    with pytest.raises(KeyError, match="nosuch"):
        ptx_param_list(_PTX, "nosuch")


def test_ptx_extern_funcs():
    assert ptx_extern_funcs(_PTX) == ["missing"]


# ---------------------------------------------------------------------------------------------
# NVRTC + nvJitLink + numba-cuda: no GPU needed
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toolchain():
    pytest.importorskip("cuda.bindings.nvrtc")
    pytest.importorskip("cuda.bindings.nvjitlink")
    numba_cuda = pytest.importorskip("numba.cuda")
    from fftfuse_compiler import linkcheck

    return numba_cuda, linkcheck


def _prolog(data_in, offset, user_info, unused):
    return data_in[offset]


def _epilog(data_out, offset, element, user_info, unused):
    data_out[offset] = element


def _compile(kind: str, dtype: str, name: str, output: str, cc: tuple[int, int] = (7, 5)) -> bytes | str:
    """Compile the trivial callback of this kind for element type ``dtype`` under ``name``."""
    from numba import cuda, types

    t = getattr(types, dtype)
    if kind == "prolog":
        fn, sig = _prolog, t(types.CPointer(t), types.uint64, types.CPointer(t), types.voidptr)
    else:
        fn, sig = _epilog, types.void(types.CPointer(t), types.uint64, t, types.CPointer(t), types.voidptr)
    code, _ = cuda.compile(fn, sig, device=True, abi="c", abi_info={"abi_name": name}, output=output, cc=cc)
    return code


@pytest.mark.parametrize("kind,dtype", ALL_CASES)
def test_harness_references_cufft_name(toolchain, kind, dtype):
    _, linkcheck = toolchain
    ptx = linkcheck.compile_harness(kind, dtype, ARCH, lto=False).decode()
    assert ptx_extern_funcs(ptx) == [callback_symbol(kind, dtype)]


@pytest.mark.parametrize("kind,dtype", ALL_CASES)
def test_correct_callback_links(toolchain, kind, dtype):
    _, linkcheck = toolchain
    symbol = callback_symbol(kind, dtype)
    ptx = linkcheck.link_check(_compile(kind, dtype, symbol, "ltoir"), kind, dtype, ARCH)
    assert ".entry fftfuse_link_check" in ptx
    assert ptx_extern_funcs(ptx) == []


@pytest.mark.parametrize("kind,dtype", ALL_CASES)
def test_callback_signature_matches_numba_c_abi(toolchain, kind, dtype):
    symbol = callback_symbol(kind, dtype)
    ptx = _compile(kind, dtype, symbol, "ptx")
    assert tuple(ptx_signature(ptx, symbol)) == NUMBA_C_ABI[kind, dtype]


def test_wrong_name_fails(toolchain):
    _, linkcheck = toolchain
    expected = callback_symbol("epilog", "complex64")
    ltoir = _compile("epilog", "complex64", callback_symbol("epilog", "complex128"), "ltoir")
    with pytest.raises(linkcheck.LinkCheckError, match="unresolved") as info:
        linkcheck.link_check(ltoir, "epilog", "complex64", ARCH)
    assert expected in str(info.value)


def test_plain_python_name_fails(toolchain):
    _, linkcheck = toolchain
    ltoir = _compile("prolog", "float32", "my_prolog", "ltoir")
    with pytest.raises(linkcheck.LinkCheckError, match=callback_symbol("prolog", "float32")):
        linkcheck.link_check(ltoir, "prolog", "float32", ARCH)


def test_wrong_type_under_right_name_shows_in_signature(toolchain):
    # nvJitLink resolves by name only: the parameter list is what exposes a wrong element type.
    symbol = callback_symbol("epilog", "complex64")
    ptx = _compile("epilog", "complex128", symbol, "ptx")
    params = ptx_param_list(ptx, symbol)
    assert params[2:4] == [".b64", ".b64"]
    assert params != NUMBA_C_ABI["epilog", "complex64"][1]


def test_ltoir_for_newer_arch_fails_with_log(toolchain):
    _, linkcheck = toolchain
    symbol = callback_symbol("prolog", "complex64")
    ltoir = _compile("prolog", "complex64", symbol, "ltoir", cc=(8, 0))
    with pytest.raises(linkcheck.LinkCheckError, match="nvJitLink"):
        linkcheck.link_check(ltoir, "prolog", "complex64", ARCH)
    assert linkcheck.link_check(ltoir, "prolog", "complex64", 80)


def test_garbage_ltoir_fails(toolchain):
    _, linkcheck = toolchain
    with pytest.raises(linkcheck.LinkCheckError):
        linkcheck.link_check(b"not LTO-IR", "epilog", "float64", ARCH)


@pytest.mark.parametrize(
    "kind,dtype,arch",
    [("prolog", "int32", ARCH), ("both", "float32", ARCH), ("prolog", "float32", "sm_75"), ("prolog", "float32", 7.5)],
)
def test_bad_arguments(toolchain, kind, dtype, arch):
    _, linkcheck = toolchain
    with pytest.raises(ValueError):
        linkcheck.link_check(b"", kind, dtype, arch)


def test_versions(toolchain):
    _, linkcheck = toolchain
    for major, minor in (linkcheck.nvjitlink_version(), linkcheck.nvrtc_version()):
        assert major >= 12 and minor >= 0
