"""Prove, without a GPU, that a callback's LTO-IR links where cuFFT will look for it.

cuFFT reports a misnamed LTO callback only as a bare ``CUFFT_INTERNAL_ERROR`` at plan time, on
a GPU. This module reproduces the part of that process that needs no GPU: a tiny CUDA C++
harness, compiled by NVRTC to LTO-IR, calls the cuFFT device prototype for one kind and element
type; nvJitLink links it with the callback and emits PTX. If the callback does not define the
exact mangled name, the link fails or leaves an ``.extern .func`` behind.

nvJitLink resolves by name only, so a wrong parameter type under the right name links silently.
:func:`ptx_param_list` reads a function's parameter declarations out of PTX so that the
signature itself can be checked too.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from fftfuse_compiler.dtypes import C_TYPE, ELEMENT_DTYPES, callback_symbol, check_kind
from fftfuse_compiler.toolchain import nvjitlink_version, nvrtc_version

__all__ = [
    "LinkCheckError",
    "PtxSignature",
    "compile_harness",
    "harness_source",
    "link_check",
    "nvjitlink_version",
    "nvjitlink_ptx",
    "nvrtc_compile",
    "nvrtc_version",
    "kernel_calls",
    "ptx_extern_funcs",
    "ptx_param_list",
    "ptx_signature",
]

_HARNESS_KERNEL = "fftfuse_link_check"


class LinkCheckError(RuntimeError):
    """A callback's LTO-IR does not link as cuFFT would link it (or the harness failed)."""


# ---------------------------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------------------------


def harness_source(kind: str, element_dtype: str) -> str:
    """CUDA C++ source of a kernel that calls cuFFT's callback prototype for this kind and type.

    float2/double2 come from NVRTC's built-in vector types: they are global-namespace structs,
    which is what gives the mangled names ``6float2``/``7double2`` cuFFT looks up.
    """
    check_kind(kind)
    t = C_TYPE[element_dtype]
    # cuFFT's suffix (Complex, DoubleReal, ...) is embedded in the mangled symbol.
    ident = _prototype_identifier(kind, element_dtype)
    if kind == "prolog":
        return (
            f'extern "C++" __device__ {t} {ident}(void*, unsigned long long, void*, void*);\n'
            f'extern "C" __global__ void {_HARNESS_KERNEL}(void* data, unsigned long long offset,\n'
            f"        {t}* result, void* info, void* shared) {{\n"
            f"    *result = {ident}(data, offset, info, shared);\n"
            "}\n"
        )
    return (
        f'extern "C++" __device__ void {ident}(void*, unsigned long long, {t}, void*, void*);\n'
        f'extern "C" __global__ void {_HARNESS_KERNEL}(void* data, unsigned long long offset,\n'
        f"        const {t}* element, void* info, void* shared) {{\n"
        f"    {ident}(data, offset, *element, info, shared);\n"
        "}\n"
    )


def _prototype_identifier(kind: str, element_dtype: str) -> str:
    # The unmangled identifier sits between the length prefix and the parameter codes.
    symbol = callback_symbol(kind, element_dtype)
    match = re.match(r"_Z(\d+)", symbol)
    assert match is not None, symbol
    start = match.end()
    return symbol[start : start + int(match.group(1))]


@functools.lru_cache(maxsize=None)
def _harness_ltoir(kind: str, element_dtype: str, arch: int) -> bytes:
    """The harness compiled by NVRTC to LTO-IR; cached per process (NVRTC takes ~0.1 s)."""
    return compile_harness(kind, element_dtype, arch, lto=True)


def compile_harness(kind: str, element_dtype: str, arch: int, *, lto: bool = True) -> bytes:
    """Compile :func:`harness_source` with NVRTC: LTO-IR, or PTX when ``lto`` is False.

    LTO-IR is opaque, so the PTX form is how a test sees which name the harness references.
    """
    # -rdc: the prototype is an external device function, resolved only at link time.
    options = [f"-arch=compute_{arch}", "-rdc=true"] + (["-dlto"] if lto else [])
    try:
        return nvrtc_compile(harness_source(kind, element_dtype), "fftfuse_link_check.cu", options, lto=lto)
    except LinkCheckError as exc:
        raise LinkCheckError(f"link-check harness ({kind}, {element_dtype}, sm_{arch}): {exc}") from None


def nvrtc_compile(source: str, filename: str, options: list[str], *, lto: bool) -> bytes:
    """Compile CUDA C++ ``source`` with NVRTC to LTO-IR (``lto``) or PTX.

    Raises :class:`LinkCheckError` with NVRTC's log when it does not compile.
    """
    from cuda.bindings import nvrtc

    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), filename.encode(), 0, [], [])
    _check_nvrtc(err, "nvrtcCreateProgram")
    try:
        opts = [o.encode() for o in options]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise LinkCheckError(f"NVRTC could not compile it ({err!r}):\n{_nvrtc_log(prog)}")
        get_size, get = (
            (nvrtc.nvrtcGetLTOIRSize, nvrtc.nvrtcGetLTOIR) if lto else (nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX)
        )
        err, size = get_size(prog)
        _check_nvrtc(err, get_size.__name__)
        out = b" " * size
        (err,) = get(prog, out)
        _check_nvrtc(err, get.__name__)
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    return out if lto else out.rstrip(b"\x00")


def _nvrtc_log(prog: object) -> str:
    from cuda.bindings import nvrtc

    err, size = nvrtc.nvrtcGetProgramLogSize(prog)
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS or size <= 1:
        return ""
    log = b" " * size
    nvrtc.nvrtcGetProgramLog(prog, log)
    return log.rstrip(b"\x00").decode(errors="replace")


def _check_nvrtc(err: object, call: str) -> None:
    from cuda.bindings import nvrtc

    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise LinkCheckError(f"{call} failed: {err!r}")


# ---------------------------------------------------------------------------------------------
# Linking
# ---------------------------------------------------------------------------------------------


def link_check(ltoir: bytes, kind: str, element_dtype: str, arch: int, *, callback_first: bool = False) -> str:
    """Link a callback's LTO-IR with a kernel that calls cuFFT's prototype; return the PTX.

    ``arch`` is the compute capability as an integer (75 for sm_75). Raises
    :class:`LinkCheckError`, carrying nvJitLink's logs, when the link fails (e.g. LTO-IR built for
    a newer architecture or by a newer NVVM than this nvJitLink) or when the prototype is left
    unresolved (the callback does not define ``callback_symbol(kind, element_dtype)``).
    """
    check_kind(kind)
    if element_dtype not in ELEMENT_DTYPES:
        raise ValueError(f"element_dtype must be one of {ELEMENT_DTYPES}, got {element_dtype!r}")
    if not isinstance(arch, int) or arch < 50:
        raise ValueError(f"arch must be an integer compute capability such as 75, got {arch!r}")
    symbol = callback_symbol(kind, element_dtype)
    what = f"{kind} callback {symbol!r} ({element_dtype}, sm_{arch})"

    inputs = [("fftfuse_link_check_harness", _harness_ltoir(kind, element_dtype, arch)), ("callback", bytes(ltoir))]
    ptx = nvjitlink_ptx(inputs[::-1] if callback_first else inputs, arch, what)
    # With -ptx an unresolved call still "links": the declaration just stays .extern.
    unresolved = ptx_extern_funcs(ptx)
    if unresolved:
        hint = (
            f" The callback must be compiled under the name {symbol!r}."
            if symbol in unresolved
            else " cuFFT links only the callback itself, so it must not call external functions."
        )
        raise LinkCheckError(f"{what}: unresolved after linking: {', '.join(unresolved)}.{hint}")
    return ptx


def nvjitlink_ptx(inputs: list[tuple[str, bytes]], arch: int, what: str) -> str:
    """Link ``(name, LTO-IR)`` inputs with nvJitLink (``-lto -ptx``) in that order; return the PTX."""
    from cuda.bindings import nvjitlink

    options = [f"-arch=sm_{arch}", "-lto", "-ptx"]
    try:
        handle = nvjitlink.create(len(options), options)
    except nvjitlink.nvJitLinkError as exc:  # e.g. an architecture this nvJitLink dropped
        raise LinkCheckError(f"nvJitLink rejected the options {options} for the {what}: {exc}") from exc
    try:
        try:
            for name, data in inputs:
                nvjitlink.add_data(handle, nvjitlink.InputType.LTOIR, data, len(data), name)
            nvjitlink.complete(handle)
        except nvjitlink.nvJitLinkError as exc:
            logs = _nvjitlink_logs(handle)
            raise LinkCheckError(f"nvJitLink could not link the {what}: {exc}\n{logs}".rstrip()) from exc
        size = nvjitlink.get_linked_ptx_size(handle)
        ptx = bytearray(size)
        nvjitlink.get_linked_ptx(handle, ptx)
    finally:
        nvjitlink.destroy(handle)
    return bytes(ptx).rstrip(b"\x00").decode()


def _nvjitlink_logs(handle: int) -> str:
    from cuda.bindings import nvjitlink

    parts = []
    for label, get_size, get in (
        ("error log", nvjitlink.get_error_log_size, nvjitlink.get_error_log),
        ("info log", nvjitlink.get_info_log_size, nvjitlink.get_info_log),
    ):
        try:
            size = get_size(handle)
            buf = bytearray(size)
            if size:
                get(handle, buf)
        except nvjitlink.nvJitLinkError:
            continue
        text = bytes(buf).rstrip(b"\x00").decode(errors="replace").strip()
        if text:
            parts.append(f"{label}:\n{text}")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Reading PTX
# ---------------------------------------------------------------------------------------------


class PtxSignature(NamedTuple):
    """A PTX function's return declaration (None for void) and parameter declarations."""

    returns: str | None
    params: list[str]


# `.visible .func (ret) name(params)`, `.extern .func name(...)` or a forward `.func ... ;`.
# PTX parameter lists hold no nested parentheses, so [^)]* is exact.
_FUNC_RE = re.compile(
    r"(?P<linkage>(?:\.(?:visible|extern|weak)\s+)*)\.func\s*"
    r"(?:\((?P<ret>[^)]*)\))?\s*(?P<name>[A-Za-z_$%][\w$]*)\s*\((?P<params>[^)]*)\)"
)


def ptx_signature(ptx: str, symbol: str) -> PtxSignature:
    """Return and parameter declarations of the ``.func`` named ``symbol``.

    Declarations are normalized without the ``.param`` keyword and names: ``.b64``,
    ``.align 4 .b8[8]``. Raises KeyError when the PTX declares no such function.
    """
    for match in _FUNC_RE.finditer(ptx):
        if match.group("name") == symbol:
            ret = match.group("ret")
            params = [_param_type(p) for p in match.group("params").split(",") if p.strip()]
            return PtxSignature(_param_type(ret) if ret and ret.strip() else None, params)
    raise KeyError(f"no .func named {symbol!r} in the PTX")


def ptx_param_list(ptx: str, symbol: str) -> list[str]:
    """Parameter declarations of the ``.func`` named ``symbol``, e.g. ``['.b64', '.b64', '.b32']``.

    The return declaration is :func:`ptx_signature`'s ``returns``.
    """
    return ptx_signature(ptx, symbol).params


def ptx_extern_funcs(ptx: str) -> list[str]:
    """Names of functions that the PTX declares ``.extern`` (left for a later link to resolve)."""
    return [m.group("name") for m in _FUNC_RE.finditer(ptx) if ".extern" in m.group("linkage")]


def kernel_calls(ptx: str, kernel: str = _HARNESS_KERNEL) -> list[str]:
    """The call instructions (``call``, ``.callprototype``) left in the body of ``kernel``.

    Empty when everything the kernel calls was inlined into it, as cuFFT's kernels inline a
    CUDA C++ callback.
    """
    match = re.search(rf"\.entry\s+{re.escape(kernel)}\s*\(", ptx)
    if match is None:
        raise KeyError(f"no .entry named {kernel!r} in the PTX")
    start = ptx.index("{", match.end())
    depth, end = 0, start
    for end in range(start, len(ptx)):
        depth += {"{": 1, "}": -1}.get(ptx[end], 0)
        if depth == 0:
            break
    body = ptx[start:end]
    return [ln.strip() for ln in body.splitlines() if _CALL_RE.match(ln) or ".callprototype" in ln]


# A call instruction, predicated or not: "call", "call.uni", "@%p1 call".
_CALL_RE = re.compile(r"\s*(?:@!?%\w+\s+)?call(?:\.uni)?\b")


def _param_type(decl: str) -> str:
    # ".param .align 4 .b8 name[8]" -> ".align 4 .b8[8]"; ".param .b64 name" -> ".b64"
    tokens = decl.split()
    if tokens and tokens[0] == ".param":
        tokens = tokens[1:]
    if not tokens:
        return ""
    if tokens[-1].startswith("."):  # an unnamed parameter: nothing to strip
        return " ".join(tokens)
    *type_tokens, name = tokens
    array = re.search(r"\[\d*\]$", name)
    return " ".join(type_tokens) + (array.group(0) if array else "")
