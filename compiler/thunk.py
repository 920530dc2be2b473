"""NVVM IR thunk: cuFFT's exact callback prototype in front of numba's code, inlined in one module.

numba's C ABI spells a callback differently from the CUDA C++ declaration that cuFFT's kernels
call: a complex element arrives as two scalars, ``void`` is returned as ``i8*``, a complex result
is a *literal* struct ``{float, float}``. cicc spells the prototype with a *named* struct
(``float2``) passed and returned by value. When the two function types differ, the LTO linker
keeps an indirect call (``.callprototype``) and nothing is inlined into cuFFT's kernel.

The construction here makes the only external symbol of the callback's LTO-IR have cicc's
type, whatever numba emits:

1. numba lowers the cuFFT-form wrapper to NVVM IR (C ABI) under a private name;
2. that definition is made ``internal`` and ``alwaysinline`` (``noinline`` where it calls
   accurate trigonometry: see :func:`calls_heavy_math`);
3. a thunk under cuFFT's mangled name, typed ``void(i8*, i64, %struct.float2, i8*, i8*)`` (or
   the load/real variant), is appended *to the same module*: it unpacks the element, casts the
   pointers to numba's types, calls the body and repacks a complex result;
4. libNVVM compiles the one module (``-gen-lto``): the body is inlined into the thunk.

One module means no dependence on the order of modules in a libNVVM program. The element type
is a *named* struct on purpose: LLVM's IR linker maps a named struct onto the caller's isomorphic
named struct, but never a literal struct onto a named one (a literal ``{float, float}``
parameter leaves the indirect call, in either link order).

The parameter list of numba's definition is read from its IR, not assumed: a different ABI in a
future numba-cuda raises :class:`ThunkError` (and fails the CI tests) instead of producing a
callback that links but computes garbage.

Nothing here imports numba at module level: the cache-hit path imports this module's
``CONSTRUCTION`` only.
"""

from __future__ import annotations

import re
from typing import Any

from .dtypes import callback_symbol
from .toolchain import nvrtc_version

# Part of every cache key: a change of the construction must not serve artifacts of the old one.
CONSTRUCTION = "cufft-prototype-thunk-6"  # 3: fastmath kept, invariant slot loads; 4: heavy math called;
# 5: an epilog in cuFFT's form lowered itself, without a wrapper; 6: one-expression callbacks written
# without numba (direct_ir)

BODY_NAME = "fftfuse_callback_body"


def ltoir_record(function: str, kind: str, form: Any, element_dtype: str, user_dtype: str, arch: int, *,
                 indirect: bool, narrow: bool, **extra: Any) -> dict[str, Any]:
    """What a compiled callback's LTO-IR was made for, whichever route made it (numba's or
    ``direct_ir``): the fields ``api`` stores with it."""
    return {"function": function, "symbol": callback_symbol(kind, element_dtype), "kind": kind, "form": form.value,
            "element_dtype": element_dtype, "user_dtype": user_dtype, "arch": arch, "indirect": indirect,
            "narrow": narrow, "toolkit": list(nvrtc_version()), "construction": CONSTRUCTION, **extra}


_COMPONENT = {"float32": "float", "float64": "double", "complex64": "float", "complex128": "double"}
_STRUCT = {"complex64": "%struct.float2", "complex128": "%struct.double2"}
ELEMENT_ALIGN = {"float32": 4, "float64": 8, "complex64": 8, "complex128": 16}


# libdevice's accurate sine, cosine and tangent carry a slow path for huge arguments (Payne-Hanek
# reduction through a table in local memory). Inlined into cuFFT's kernel, that code costs the FFT
# registers and a stack frame at every element: a phase ramp computed with math.cos/math.sin ran
# 4.6x one plain FFT inlined (H100), where called it takes the cost of a call. The fast variants
# (__nv_fast_sinf, fastmath) and sinpi/cospi have no such path and stay inlined.
_HEAVY_MATH = re.compile(r"@\"?__nv_(?:sincos|sin|cos|tan)f?\"?\(")


def calls_heavy_math(modules: list[str]) -> bool:
    """Whether numba's code calls a libdevice function too large to inline into cuFFT's kernel."""
    return any(_HEAVY_MATH.search(module) for module in modules)


class ThunkError(RuntimeError):
    """numba's NVVM IR does not have the shape the thunk adapts (a numba-cuda ABI change)."""


# ---------------------------------------------------------------------------------------------
# Reading numba's definition
# ---------------------------------------------------------------------------------------------

_DEFINE_RE = r"^define\s+(?P<head>[^@\n]*?)(?P<ret>\{{[^}}\n]*\}}|\S+)\s+@(?P<name>\"{0}\"|{0})\((?P<params>.*)\)(?P<tail>[^{{\n]*)\n?\{{"


def split_params(text: str) -> list[str]:
    """The parameter types of an LLVM parameter list, names dropped.

    >>> split_params('{float, float}* %"a", i64 %"b", float %".3", i8* %d')
    ['{float, float}*', 'i64', 'float', 'i8*']
    """
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch in "{[<(") - (ch in "}]>)")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [re.sub(r"\s+%(\"[^\"]*\"|[-\w.$]+)$", "", p.strip()) for p in out]


def find_definition(module: str, name: str) -> re.Match | None:
    """The ``define`` line of function ``name`` in an LLVM IR module (None if not defined there)."""
    return re.search(_DEFINE_RE.format(re.escape(name)), module, re.MULTILINE)


# ---------------------------------------------------------------------------------------------
# Writing the thunk
# ---------------------------------------------------------------------------------------------


def prototype(kind: str, element_dtype: str) -> tuple[str, list[str]]:
    """cicc's LLVM types of cuFFT's callback prototype: (return type, parameter types)."""
    element = _STRUCT.get(element_dtype, _COMPONENT[element_dtype])
    if kind == "prolog":
        return element, ["i8*", "i64", "i8*", "i8*"]
    return "void", ["i8*", "i64", element, "i8*", "i8*"]


def thunk_ir(kind: str, element_dtype: str, symbol: str, body_ret: str, body_params: list[str],
             body_name: str = BODY_NAME) -> str:
    """NVVM IR of the function ``symbol`` with cuFFT's prototype, calling ``body_name``.

    ``body_ret`` and ``body_params`` are the types of numba's definition. Raises
    :class:`ThunkError` when they do not match what cuFFT passes.
    """
    ret, params = prototype(kind, element_dtype)
    component = _COMPONENT[element_dtype]
    complex_ = element_dtype in _STRUCT
    what = f"numba's {kind} for {element_dtype}: {body_ret} ({', '.join(body_params)})"
    lines: list[str] = []
    args: list[str] = []
    queue = list(body_params)

    def pointer(value: str) -> None:
        if not queue:
            raise ThunkError(f"{what}: fewer parameters than cuFFT passes")
        t = queue.pop(0)
        if t == "i8*" or t == "ptr":
            args.append(f"{t} {value}")
        elif t.endswith("*"):
            lines.append(f"  {value}.c = bitcast i8* {value} to {t}")
            args.append(f"{t} {value}.c")
        else:
            raise ThunkError(f"{what}: expected a pointer where cuFFT passes a void*, found {t}")

    def exact(value: str, t: str) -> None:
        if not queue or queue.pop(0) != t:
            raise ThunkError(f"{what}: expected {t} where cuFFT passes {t}")
        args.append(f"{t} {value}")

    pointer("%data")
    exact("%offset", "i64")
    if kind == "epilog":
        element = params[2]
        if not complex_:
            exact("%element", component)
        elif queue[:2] == [component, component]:  # split into two scalars (numba's C ABI)
            lines += [f"  %re = extractvalue {element} %element, 0", f"  %im = extractvalue {element} %element, 1"]
            queue[:2] = []
            args += [f"{component} %re", f"{component} %im"]
        elif queue and queue[0] == f"{{{component}, {component}}}":  # a literal struct by value
            literal = queue.pop(0)
            lines += [f"  %re = extractvalue {element} %element, 0", f"  %im = extractvalue {element} %element, 1",
                      f"  %lit.0 = insertvalue {literal} undef, {component} %re, 0",
                      f"  %lit = insertvalue {literal} %lit.0, {component} %im, 1"]
            args.append(f"{literal} %lit")
        else:
            raise ThunkError(f"{what}: the element is neither two {component} nor {{{component}, {component}}}")
    pointer("%info")
    pointer("%shared")
    if queue:
        raise ThunkError(f"{what}: more parameters than cuFFT passes ({', '.join(queue)} left)")

    call = f"call {body_ret} @\"{body_name}\"({', '.join(args)})"
    if kind == "epilog":
        lines += [("  " if body_ret == "void" else "  %r = ") + call, "  ret void"]
    elif not complex_:
        if body_ret != component:
            raise ThunkError(f"{what}: returns {body_ret}, expected {component}")
        lines += [f"  %r = {call}", f"  ret {ret} %r"]
    else:
        if body_ret != f"{{{component}, {component}}}":
            raise ThunkError(f"{what}: returns {body_ret}, expected {{{component}, {component}}}")
        lines += [f"  %r = {call}", f"  %re = extractvalue {body_ret} %r, 0", f"  %im = extractvalue {body_ret} %r, 1",
                  f"  %v.0 = insertvalue {ret} undef, {component} %re, 0",
                  f"  %v = insertvalue {ret} %v.0, {component} %im, 1", f"  ret {ret} %v"]
    names = ["%data", "%offset", "%info", "%shared"] if kind == "prolog" else ["%data", "%offset", "%element", "%info", "%shared"]
    signature = ", ".join(f"{t} {n}" for t, n in zip(params, names))
    return f"define {ret} @\"{symbol}\"({signature}) {{\nentry:\n" + "\n".join(lines) + "\n}\n"


def alignment_annotation(kind: str, element_dtype: str, symbol: str, module: str) -> str:
    """``!nvvm.annotations`` giving the complex element cicc's alignment (float2: 8, double2: 16).

    It changes nothing once the callback is inlined; it makes the PTX signature identical to the
    CUDA C++ declaration's, so even a call that is not inlined passes the element the same way.
    """
    if element_dtype not in _STRUCT:
        return ""
    if "!nvvm.annotations" in module:
        raise ThunkError("numba's module already has !nvvm.annotations; the thunk cannot add its own")
    ret, params = prototype(kind, element_dtype)
    index = 0 if kind == "prolog" else 3  # 0: the return value, 1..n: the parameters
    align = ELEMENT_ALIGN[element_dtype]
    return (f"\n!nvvm.annotations = !{{!90001}}\n"
            f"!90001 = !{{{ret} ({', '.join(params)})* @\"{symbol}\", !\"align\", i32 {index << 16 | align}}}\n")


def align_element_accesses(body: str, data: str, element_dtype: str) -> str:
    """Loads and stores of a complex element at ``data[i]`` marked with the element's alignment.

    numba gives ``{float, float}`` the alignment of a float (4), so NVVM moves a complex64
    element as two scalar accesses; cuFFT's buffers hold whole float2/double2 elements (8- or
    16-aligned), which a C++ callback reads and writes in one vector access. Only accesses
    through a one-index GEP of ``data`` (cuFFT's buffer, the callback's first parameter) are
    marked; ``body`` is the IR text from the body's opening brace on.
    """
    if element_dtype not in _STRUCT:
        return body
    c = _COMPONENT[element_dtype]
    t = re.escape(f"{{{c}, {c}}}")
    end = re.search(r"^\}", body, re.M)
    head, tail = (body[: end.end()], body[end.end():]) if end else (body, "")
    gep = re.compile(rf"^\s*(%(?:\"[^\"]*\"|[-\w.$]+)) = getelementptr (?:inbounds )?{t}, {t}\* {re.escape(data)}, i64 [^,\n]+$", re.M)
    slots = {m.group(1) for m in gep.finditer(head)}
    if not slots:
        return body
    align = ELEMENT_ALIGN[element_dtype]

    def mark(m: re.Match) -> str:
        return m.group(0) + f", align {align}" if m.group("ptr") in slots else m.group(0)

    access = re.compile(rf"(?:load {t}, {t}\*|store {t} [^,\n]+, {t}\*) (?P<ptr>%(?:\"[^\"]*\"|[-\w.$]+))$", re.M)
    return access.sub(mark, head) + tail


def add_thunk(modules: list[str], kind: str, element_dtype: str, symbol: str, body_name: str = BODY_NAME) -> list[str]:
    """``modules`` with ``body_name`` made internal + alwaysinline and the thunk beside it.

    The thunk goes into the module that defines the body, so the two types meet in one module.
    A body that calls heavy math (:func:`calls_heavy_math`) is made noinline instead: cuFFT's
    kernel then calls it directly (a direct call, not the indirect call of a mismatched prototype).
    """
    inline = "noinline" if calls_heavy_math(modules) else "alwaysinline"
    out, found = [], False
    for module in modules:
        match = find_definition(module, body_name)
        if match is None:
            out.append(module)
            continue
        if found:
            raise ThunkError(f"{body_name} is defined in two of numba's modules")
        found = True
        head = match.group("head")
        for linkage in ("external", "dso_local", "linkonce_odr", "weak_odr"):
            head = re.sub(rf"\b{linkage}\s+", "", head)
        tail = re.sub(r"\b(?:noinline|alwaysinline)\b", "", match.group("tail")).rstrip()
        header = (f"define internal {head}{match.group('ret')} @{match.group('name')}({match.group('params')})"
                  f"{tail} {inline}\n{{")
        first = re.search(r"%(\"[^\"]*\"|[-\w.$]+)", match.group("params"))
        text = module[: match.start()] + header + align_element_accesses(module[match.end():], first.group(0), element_dtype)
        types = ""
        if element_dtype in _STRUCT:
            c = _COMPONENT[element_dtype]
            types = f"{_STRUCT[element_dtype]} = type {{{c}, {c}}}\n"
        thunk = thunk_ir(kind, element_dtype, symbol, match.group("ret"), split_params(match.group("params")), body_name)
        out.append(text.rstrip() + "\n\n" + types + thunk + alignment_annotation(kind, element_dtype, symbol, text))
    if not found:
        raise ThunkError(f"numba's NVVM IR defines no function {body_name!r}")
    return out


# ---------------------------------------------------------------------------------------------
# numba-cuda and libNVVM (imported lazily)
# ---------------------------------------------------------------------------------------------


def numba_nvvm_ir(pyfunc: Any, return_type: Any, args: tuple, cc: tuple[int, int],
                  body_name: str = BODY_NAME, *, fastmath: bool = False) -> list[str]:
    """NVVM IR modules of ``pyfunc`` lowered by numba-cuda with the C ABI under ``body_name``.

    ``compile_cuda`` is numba-cuda's own lowering step behind ``cuda.compile``; its IR is what
    ``cuda.compile`` hands to libNVVM. It is not public API: pyproject.toml pins numba-cuda, and
    tests/test_inlining.py fails loudly when the shape changes. ``fastmath``: numba-cuda's option
    (approximate float32 math functions, fast-math flags on arithmetic).
    """
    from numba.cuda.compiler import compile_cuda

    cres = compile_cuda(pyfunc, return_type, args, cc=cc, abi="c", abi_info={"abi_name": body_name},
                        nvvm_options={"opt": 3}, fastmath=fastmath)
    return list(cres.library.llvm_strs)


def compile_nvvm(modules: list[str], arch: int, *, output: str = "ltoir") -> bytes:
    """Compile NVVM IR modules in one libNVVM program (with libdevice) to LTO-IR or PTX."""
    from numba.cuda.cudadrv import nvvm

    options: dict[str, Any] = {"arch": f"compute_{arch}", "opt": 3}
    if output == "ltoir":
        options["gen-lto"] = None
    code = nvvm.compile_ir(list(modules), **options)
    return bytes(code).rstrip(b"\x00") if output == "ptx" else bytes(code)
