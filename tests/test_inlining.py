"""Every Python callback is inlined into a caller of cuFFT's prototype, and computes the right numbers.

For each kind x element type x form x user-data mode, the callback's LTO-IR is linked (nvJitLink
``-lto -ptx``, no GPU) with a CUDA C++ kernel that calls cuFFT's prototype (NVRTC ``-dlto``), in
both link orders, and the kernel must contain no call at all: a CUDA C++ callback is inlined the
same way. The NVVM IR handed to libNVVM (numba's code behind the thunk) is also run on the host
through llvmlite, against a float64 reference, so the thunk's unpacking is checked by value.

These tests are the guard against a numba-cuda or CUDA release changing the ABI under us.
"""

from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest

from fftfuse_cache import ArtifactStore
from fftfuse_compiler import Form, compile_callback
from fftfuse_compiler.cuda_backend import callback_nvvm_ir
from fftfuse_compiler.dtypes import ELEMENT_DTYPES, KINDS, callback_symbol
from fftfuse_compiler.thunk import ThunkError, add_thunk, align_element_accesses, split_params, thunk_ir

pytest.importorskip("numba.cuda")
pytest.importorskip("cuda.bindings.nvjitlink")
from fftfuse_compiler import linkcheck  # noqa: E402

ARCH = 75


def raw_prolog(data_in, offset, user_info, unused):
    return data_in[offset] * user_info[offset] + 0.25


def raw_epilog(data_out, offset, value, user_info, unused):
    data_out[offset] = value * user_info[offset] + 0.25


FUNCTIONS = {
    Form.VALUE: {"prolog": lambda x: x * x + 0.5, "epilog": lambda x: x * x + 0.5},
    Form.VALUE_DATA: {"prolog": lambda x, d: x * d + 0.25, "epilog": lambda x, d: x * d + 0.25},
    Form.CUFFT: {"prolog": raw_prolog, "epilog": raw_epilog},
}


def reference(form: Form, x: np.ndarray, d: np.ndarray) -> np.ndarray:
    x, d = x.astype(np.complex128 if x.dtype.kind == "c" else np.float64), d.astype(np.complex128)
    if form is Form.VALUE:
        return x * x + 0.5
    return x * d + 0.25


MODES = {"none": None, "pointer": False, "slot": True}
CASES = [
    (kind, dtype, form, mode)
    for kind in KINDS
    for dtype in ELEMENT_DTYPES
    for form in FUNCTIONS
    for mode in MODES
    if (mode == "none") == (form is Form.VALUE)
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ArtifactStore(tmp_path_factory.mktemp("cache"))


def _compile(kind, dtype, form, mode, store, user_dtype=None):
    return compile_callback(FUNCTIONS[form][kind], kind, dtype, user_dtype or dtype, compute_capability=ARCH,
                            indirect=bool(MODES[mode]), store=store)


@pytest.mark.parametrize("kind,dtype,form,mode", CASES)
def test_callback_inlined_into_caller(kind, dtype, form, mode, store):
    compiled = _compile(kind, dtype, form, mode, store)
    symbol = callback_symbol(kind, dtype)
    declared = linkcheck.ptx_signature(linkcheck.compile_harness(kind, dtype, ARCH, lto=False).decode(), symbol)
    for callback_first in (False, True):
        ptx = linkcheck.link_check(compiled.ltoir, kind, dtype, ARCH, callback_first=callback_first)
        assert linkcheck.kernel_calls(ptx) == [], f"{kind} {dtype} {form.value} {mode}: not inlined"
        # Our definition's signature is the C++ declaration's, in case a call ever remains.
        if symbol in ptx:
            assert linkcheck.ptx_signature(ptx, symbol) == declared


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_element_moves_as_one_vector(kind, dtype, store):
    """cuFFT's element is read or written in one vector access, as a C++ callback does."""
    compiled = _compile(kind, dtype, Form.VALUE, "none", store)
    ptx = linkcheck.link_check(compiled.ltoir, kind, dtype, ARCH)
    kernel = ptx[ptx.index(".entry"):]
    suffix = "f32" if dtype == "complex64" else "f64"
    assert re.search(rf"\b(ld|st)\.global\.v2\.{suffix}", kernel)
    assert not re.search(rf"\b(ld|st)\.global\.{suffix}", kernel), kernel


def test_window_prolog_with_real_data_inlined(store):
    compiled = _compile("prolog", "complex64", Form.VALUE_DATA, "slot", store, user_dtype="float32")
    for callback_first in (False, True):
        ptx = linkcheck.link_check(compiled.ltoir, "prolog", "complex64", ARCH, callback_first=callback_first)
        assert linkcheck.kernel_calls(ptx) == []


def test_helpers_and_math_inlined(store):
    import math

    from numba import cuda

    @cuda.jit(device=True)
    def gain(v):
        return v * 2

    def epilog(x):
        return gain(x) * math.exp(-abs(x))

    compiled = compile_callback(epilog, "epilog", "complex64", compute_capability=ARCH, store=store)
    ptx = linkcheck.link_check(compiled.ltoir, "epilog", "complex64", ARCH)
    assert linkcheck.kernel_calls(ptx) == []


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_accurate_trigonometry_is_called_not_inlined(dtype, store):
    """libdevice's accurate sine/cosine carry a large slow path: cuFFT's kernel calls the body
    (one direct call, cuFFT's prototype still inlined); the fast variants stay inlined."""
    import math

    import numba

    def ramp(v):
        a = v.real * 0.001
        return v * (math.cos(a) + 1j * math.sin(a))

    @numba.njit(fastmath=True)
    def fast_ramp(v):
        a = v.real * np.float32(0.001)
        return v * (math.cos(a) + 1j * math.sin(a))

    accurate = compile_callback(ramp, "epilog", dtype, compute_capability=ARCH, store=store)
    calls = linkcheck.kernel_calls(linkcheck.link_check(accurate.ltoir, "epilog", dtype, ARCH))
    assert len(calls) == 1 and ".callprototype" not in calls[0], calls
    if dtype == "complex64":  # float64 math has no approximate variant: fastmath keeps the accurate call
        fast = compile_callback(fast_ramp, "epilog", dtype, compute_capability=ARCH, store=store)
        assert linkcheck.kernel_calls(linkcheck.link_check(fast.ltoir, "epilog", dtype, ARCH)) == []


def test_heavy_math_is_recognised():
    from fftfuse_compiler.thunk import calls_heavy_math

    for name in ("__nv_sinf", "__nv_cos", "__nv_sincosf", "__nv_tan", '"__nv_cos"'):
        assert calls_heavy_math([f"  %r = call float @{name}(float %a)"]), name
    for name in ("__nv_fast_sinf", "__nv_sinpif", "__nv_cospi", "__nv_sinhf", "__nv_expf"):
        assert not calls_heavy_math([f"  %r = call float @{name}(float %a)"]), name


def test_prolog_and_epilog_link_together(store):
    """cuFFT links both callbacks into one program: numba's bodies are internal, no duplicate."""
    p = _compile("prolog", "complex64", Form.VALUE, "none", store)
    e = _compile("epilog", "complex64", Form.VALUE, "none", store)
    assert linkcheck.nvjitlink_ptx([("prolog", p.ltoir), ("epilog", e.ltoir)], ARCH, "prolog and epilog")


def test_numba_c_abi_alone_is_not_inlined():
    """The check can fail: numba's C ABI without the thunk leaves an indirect call (complex)."""
    from numba import cuda, types

    t = types.complex64
    sig = types.void(types.CPointer(t), types.uint64, t, types.voidptr, types.voidptr)

    def store_(data_out, offset, value, user_info, unused):
        data_out[offset] = value

    symbol = callback_symbol("epilog", "complex64")
    ltoir, _ = cuda.compile(store_, sig, device=True, abi="c", abi_info={"abi_name": symbol}, output="ltoir", cc=(7, 5))
    calls = linkcheck.kernel_calls(linkcheck.link_check(ltoir, "epilog", "complex64", ARCH))
    assert any(".callprototype" in c for c in calls)


# ---------------------------------------------------------------------------------------------
# The numbers: the exact NVVM IR given to libNVVM, run on the host
# ---------------------------------------------------------------------------------------------

_C_STRUCT = {"complex64": "float", "complex128": "double"}


def _host_entry(kind: str, dtype: str, symbol: str) -> str:
    """A pointer-only entry point (callable through ctypes) around the thunk."""
    t = {"complex64": "%struct.float2", "complex128": "%struct.double2"}.get(dtype, {"float32": "float", "float64": "double"}.get(dtype))
    if kind == "epilog":
        body = (f"  %p = bitcast i8* %e to {t}*\n  %v = load {t}, {t}* %p\n"
                f"  call void @\"{symbol}\"(i8* %d, i64 %o, {t} %v, i8* %i, i8* %s)\n")
    else:
        body = (f"  %v = call {t} @\"{symbol}\"(i8* %d, i64 %o, i8* %i, i8* %s)\n"
                f"  %p = bitcast i8* %e to {t}*\n  store {t} %v, {t}* %p\n")
    return f"define void @host_entry(i8* %d, i64 %o, i8* %e, i8* %i, i8* %s) {{\n{body}  ret void\n}}\n"


def host_callback(modules: list[str], kind: str, dtype: str):
    """Compile the NVVM IR modules for this CPU (llvmlite) and return (entry function, keep-alive)."""
    llvm = pytest.importorskip("llvmlite.binding")
    try:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
    except Exception:  # newer llvmlite initialises itself
        pass
    symbol = callback_symbol(kind, dtype)
    target = llvm.Target.from_default_triple()
    machine = target.create_target_machine()
    strip = lambda m: re.sub(r"^target (triple|datalayout) = .*$", "", m, flags=re.M)  # noqa: E731
    mods = []
    for m in modules:
        text = strip(m) + (("\n" + _host_entry(kind, dtype, symbol)) if f'@"{symbol}"(' in m else "")
        mod = llvm.parse_assembly(text)
        mod.triple, mod.data_layout = llvm.get_process_triple(), str(machine.target_data)
        mods.append(mod)
    main = next(m for m in mods if m.get_function("host_entry") is not None)
    for m in mods:
        if m is not main:
            main.link_in(m)
    main.verify()
    engine = llvm.create_mcjit_compiler(main, machine)
    engine.finalize_object()
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
        engine.get_function_address("host_entry"))
    return fn, engine


@pytest.mark.parametrize("kind,dtype,form,mode", CASES)
def test_callback_computes_reference_on_host(kind, dtype, form, mode):
    modules = callback_nvvm_ir(FUNCTIONS[form][kind], kind, form, dtype, dtype, ARCH, indirect=bool(MODES[mode]),
                               narrow=dtype in ("float32", "complex64"))
    fn, _engine = host_callback(modules, kind, dtype)
    rng = np.random.default_rng(hash((kind, dtype, form.value, mode)) % 2**32)
    n = 8
    np_dtype = np.dtype(dtype)
    make = lambda: (rng.standard_normal(n) + (1j * rng.standard_normal(n) if np_dtype.kind == "c" else 0)).astype(np_dtype)  # noqa: E731
    x, data, out = make(), make(), np.zeros(n, np_dtype)
    slot = np.array([data.ctypes.data], dtype=np.uint64)
    info = None if mode == "none" else (slot.ctypes.data if mode == "slot" else data.ctypes.data)
    element = np.zeros(1, np_dtype)
    for offset in range(n):
        if kind == "prolog":
            fn(x.ctypes.data, offset, element.ctypes.data, info, None)
            out[offset] = element[0]
        else:
            element[0] = x[offset]
            fn(out.ctypes.data, offset, element.ctypes.data, info, None)
    rtol = 1e-5 if dtype in ("float32", "complex64") else 1e-12
    np.testing.assert_allclose(out, reference(form, x, data), rtol=rtol, atol=rtol)


# ---------------------------------------------------------------------------------------------
# The thunk's reading of numba's IR: a shape it does not know is refused, loudly
# ---------------------------------------------------------------------------------------------


def test_split_params_keeps_aggregates():
    assert split_params('{double, double}* %"a", i64 %b, {double, double} %".3", i8* %".4"') == [
        "{double, double}*", "i64", "{double, double}", "i8*"]


@pytest.mark.parametrize(
    "kind,dtype,ret,params",
    [
        ("epilog", "complex64", "i8*", ["{float, float}*", "i64", "float", "i8*", "i8*"]),  # one scalar short
        ("epilog", "complex64", "i8*", ["{float, float}*", "i64", "<2 x float>", "i8*", "i8*"]),
        ("prolog", "complex64", "i8*", ["{float, float}*", "i64", "i8*", "i8*"]),  # result not by value
        ("prolog", "float32", "double", ["float*", "i64", "i8*", "i8*"]),
        ("prolog", "float32", "float", ["float*", "i32", "i8*", "i8*"]),
        ("prolog", "float32", "float", ["float*", "i64", "i8*", "i8*", "i8*"]),
    ],
)
def test_unknown_numba_abi_is_refused(kind, dtype, ret, params):
    with pytest.raises(ThunkError, match="numba's"):
        thunk_ir(kind, dtype, callback_symbol(kind, dtype), ret, params)


def test_literal_struct_element_is_adapted():
    ir = thunk_ir("epilog", "complex128", "cb", "void", ["{double, double}*", "i64", "{double, double}", "i8*", "i8*"])
    assert "insertvalue {double, double}" in ir and "%struct.double2 %element" in ir


def test_alignment_only_on_whole_elements_of_the_buffer():
    body = "\n".join([
        '  %"a" = getelementptr {float, float}, {float, float}* %"arg.out", i64 %"arg.offset"',
        '  %"b" = getelementptr {float, float}, {float, float}* %"arg.out", i64 %"i", i32 1',
        '  %"c" = getelementptr {float, float}, {float, float}* %"user", i64 %"arg.offset"',
        '  store {float, float} %"v", {float, float}* %"a"',
        '  %"x" = load {float, float}, {float, float}* %"c"',
        '  store float %"w", float* %"b"',
        "}",
        '  store {float, float} %"v", {float, float}* %"a"',  # another function: untouched
    ])
    lines = align_element_accesses(body, '%"arg.out"', "complex64").splitlines()
    assert lines[3].endswith(", align 8")
    assert not any(ln.endswith("align 8") for ln in lines[4:])
    assert align_element_accesses(body, '%"arg.out"', "float32") == body


def test_missing_body_is_refused():
    with pytest.raises(ThunkError, match="defines no function"):
        add_thunk(["define void @other() {\nret void\n}\n"], "epilog", "float32", "cb")


def test_numba_cuda_version_is_the_pinned_one():
    """fftfuse_compiler.thunk reads numba-cuda's lowering output (not public API): pyproject pins it."""
    from importlib.metadata import version

    major, minor = (int(v) for v in version("numba-cuda").split(".")[:2])
    assert (major, minor) == (0, 30), (
        f"numba-cuda {version('numba-cuda')} is not the version fftfuse_compiler.thunk was proven with (0.30): "
        "run tests/test_inlining.py, then widen the pin in pyproject.toml"
    )
