"""CUDA C++ callbacks: a ``__device__`` function in source, under any name, to cached LTO-IR.

The user's source is compiled by NVRTC (``-dlto``) in one translation unit with a forwarding
definition under cuFFT's prototype name, which calls the user's function; NVRTC inlines it, so
the callback is the user's code under the name cuFFT looks up. The user's code sits in an
unnamed namespace, so a prolog and an epilog that share helper names do not collide when cuFFT
links both. Source written for CuPy's ``set_cufft_callbacks`` compiles unchanged: the cuFFT
type names (``cufftComplex``, ``cufftCallbackLoadC``, ...) are declared, and the
``d_loadCallbackPtr``-style pointer it defines is left alone.

With ``indirect`` the forwarder reads the data pointer from the slot that ``callerInfo`` points
to (as Python callbacks on stateless plans do), so new data reuses the plan; the user's function
still receives the data pointer itself.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .dtypes import C_TYPE, callback_symbol, check_kind, element_dtype_name

# cuFFT's and cuComplex's type names, as cufft.h spells them (typedefs may repeat in C++).
_PRELUDE = """\
typedef float2 cuFloatComplex; typedef double2 cuDoubleComplex; typedef cuFloatComplex cuComplex;
typedef float cufftReal; typedef double cufftDoubleReal;
typedef cuComplex cufftComplex; typedef cuDoubleComplex cufftDoubleComplex;
typedef cufftComplex (*cufftCallbackLoadC)(void*, size_t, void*, void*);
typedef cufftDoubleComplex (*cufftCallbackLoadZ)(void*, size_t, void*, void*);
typedef cufftReal (*cufftCallbackLoadR)(void*, size_t, void*, void*);
typedef cufftDoubleReal (*cufftCallbackLoadD)(void*, size_t, void*, void*);
typedef void (*cufftCallbackStoreC)(void*, size_t, cufftComplex, void*, void*);
typedef void (*cufftCallbackStoreZ)(void*, size_t, cufftDoubleComplex, void*, void*);
typedef void (*cufftCallbackStoreR)(void*, size_t, cufftReal, void*, void*);
typedef void (*cufftCallbackStoreD)(void*, size_t, cufftDoubleReal, void*, void*);
"""

# Headers whose only use in a callback is the types above (NVRTC may not find them).
_KNOWN_HEADERS = re.compile(r"^\s*#\s*include\s*[<\"](cufft\.h|cufftXt\.h|cuComplex\.h|cuda_runtime\.h)[>\"]\s*$", re.M)

# `__device__ [qualifiers] type name(params) {` ; the type may be a pointer or a template-free name.
_FUNCTION_RE = re.compile(
    r"__device__\s+(?:(?:__forceinline__|__noinline__|static|inline|__inline__)\s+)*"
    r"(?P<ret>[A-Za-z_][\w:]*(?:\s*\*)?)\s+(?P<name>[A-Za-z_]\w*)\s*\((?P<params>[^()]*)\)\s*\{"
)

OPTIONS = ("-rdc=true", "-dlto", "-std=c++17")


class SourceCallbackError(ValueError):
    """CUDA C++ callback source that cannot be used as the requested callback."""


def callback_functions(source: str, kind: str) -> list[str]:
    """Names of the ``__device__`` functions in ``source`` with a load (prolog) or store
    (epilog) callback's shape: four parameters returning a value, or five returning void.

    >>> callback_functions("__device__ void f(void* o, size_t i, float2 v, void* c, void* s) {}", "epilog")
    ['f']
    """
    check_kind(kind)
    names = []
    for m in _FUNCTION_RE.finditer(_strip_comments(source)):
        params = [p for p in m.group("params").split(",") if p.strip()]
        is_void = m.group("ret").strip() == "void"
        if (kind == "prolog" and len(params) == 4 and not is_void) or (kind == "epilog" and len(params) == 5 and is_void):
            names.append(m.group("name"))
    return names


def _strip_comments(source: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", " ", source, flags=re.S)


def callback_name(source: str, kind: str, name: str | None = None) -> str:
    """The user's function to call: ``name`` when given (and defined), else the only candidate."""
    found = callback_functions(source, kind)
    shape = ("T f(void* dataIn, unsigned long long offset, void* callerInfo, void* sharedPtr)" if kind == "prolog"
             else "void f(void* dataOut, unsigned long long offset, T element, void* callerInfo, void* sharedPtr)")
    if name is not None:
        if not re.search(rf"\b{re.escape(name)}\s*\(", source):
            raise SourceCallbackError(f"{kind} source defines no function named {name!r}")
        return name
    if len(found) == 1:
        return found[0]
    what = "no __device__ function" if not found else f"several __device__ functions ({', '.join(found)})"
    raise SourceCallbackError(
        f"{kind} source has {what} of a {'load' if kind == 'prolog' else 'store'} callback's shape, {shape}; "
        f"pass its name: {{'source': ..., 'name': 'my_{kind}'}}"
    )


def wrapped_source(source: str, kind: str, element_dtype: str, name: str, *, indirect: bool) -> str:
    """The translation unit NVRTC compiles: the user's source plus the forwarder under cuFFT's name."""
    t = C_TYPE[element_dtype]
    symbol = callback_symbol(kind, element_dtype)
    ident = re.match(r"_Z\d+(cufftJITCallback\w+?)Pvy", symbol).group(1)  # type: ignore[union-attr]
    includes = "\n".join(m.group(0).strip() for m in re.finditer(r"^\s*#\s*include\b.*$", source, re.M)
                         if not _KNOWN_HEADERS.match(m.group(0)))
    body = re.sub(r"^\s*#\s*include\b.*$", "", source, flags=re.M)
    info = "*(void**)callerInfo" if indirect else "callerInfo"
    if kind == "prolog":
        forward = (f"__device__ {t} {ident}(void* dataIn, unsigned long long offset, void* callerInfo, void* sharedPtr)"
                   f" {{\n    return fftfuse_user::{name}(dataIn, offset, {info}, sharedPtr);\n}}\n")
    else:
        forward = (f"__device__ void {ident}(void* dataOut, unsigned long long offset, {t} element, void* callerInfo,"
                   f" void* sharedPtr) {{\n    fftfuse_user::{name}(dataOut, offset, element, {info}, sharedPtr);\n}}\n")
    return (f"{includes}\n{_PRELUDE}namespace fftfuse_user {{ namespace {{\n#line 1 \"callback.cu\"\n{body}\n}} }}\n"
            f"{forward}")


def compile_source(
    source: str,
    kind: str,
    element_dtype: Any,
    *,
    name: str | None = None,
    compute_capability: Any = None,
    indirect: bool = False,
    store: Any = None,
) -> Any:
    """Compile a CUDA C++ callback to LTO-IR under cuFFT's name, through the cache.

    The key is the source, the callback name, kind, element type, ``indirect``, the NVRTC
    options and version and the architecture. The result is link-checked against cuFFT's
    prototype before it is stored. Returns a :class:`fftfuse_compiler.api.CompiledCallback`.
    """
    from fftfuse_cache import ArtifactMeta, artifact_key, compiled_through, default_store

    from .api import CompiledCallback
    from .forms import Form
    from .linkcheck import link_check
    from .toolchain import nvrtc_version, resolve_arch, toolchain_stamp

    check_kind(kind)
    if not isinstance(source, str):
        raise TypeError(f"{kind}['source'] must be CUDA C++ source text (str), got {type(source).__name__}")
    element = element_dtype_name(element_dtype)
    arch = resolve_arch(compute_capability)
    fn_name = callback_name(source, kind, name)
    toolkit = nvrtc_version()
    store = default_store() if store is None else store
    digest = hashlib.sha256(source.encode()).hexdigest()
    key = artifact_key(target="ltoir-cuda-source", source=digest, name=fn_name,
                       kind=kind, element=element, arch=arch, indirect=indirect, options=list(OPTIONS),
                       nvrtc=list(toolkit))

    def compile_now() -> tuple[bytes, ArtifactMeta]:
        ltoir = nvrtc_ltoir(wrapped_source(source, kind, element, fn_name, indirect=indirect), arch,
                            what=f"{kind} {fn_name!r}")
        link_check(ltoir, kind, element, arch)
        return ltoir, ArtifactMeta("ltoir-cuda-source", kind, "cuda-source", element, "void", arch, fn_name,
                                   fingerprint=digest, toolchain=toolchain_stamp(),
                                   extra={"symbol": callback_symbol(kind, element), "indirect": indirect,
                                          "toolkit": list(toolkit)})

    found = compiled_through(store, key, {"target": "ltoir-cuda-source", "function": fn_name, "kind": kind,
                                          "form": "cuda-source", "element_dtype": element, "arch": arch,
                                          "indirect": indirect}, compile_now)
    ltoir, origin = found.payload, found.source
    return CompiledCallback(ltoir=ltoir, symbol=callback_symbol(kind, element), kind=kind, form=Form.CUFFT,
                            element_dtype=element, user_dtype="void", arch=arch, indirect=indirect,
                            toolkit=toolkit, source=origin)


def nvrtc_ltoir(source: str, arch: int, *, what: str) -> bytes:
    """NVRTC: CUDA C++ source to LTO-IR for ``compute_<arch>``; errors carry NVRTC's log."""
    from .linkcheck import nvrtc_compile

    try:
        return nvrtc_compile(source, "callback.cu", [f"-arch=compute_{arch}", *OPTIONS], lto=True)
    except RuntimeError as exc:
        raise SourceCallbackError(f"{what} did not compile with NVRTC:\n{exc}") from None
