"""Native CPU code as bytes: LLVM IR -> object code, and object code -> callable addresses.

The CPU callbacks are numba ``cfunc`` loops. Their LLVM IR (numba's public ``inspect_llvm``)
is compiled here by llvmlite into one relocatable object for this machine, which the store
keeps as raw bytes; another process loads it with llvmlite's MCJIT, without numba and
without compiling, and calls the loops through ctypes.

numba's C wrapper keeps an error path that calls numba's runtime (``numba_do_raise`` and
friends, only in numba's own extension module). The loops are compiled so that path is
never taken (NumPy's error model, no bounds checks, callbacks without ``raise``), and those
few symbols are given bodies that trap. Any other undefined symbol that is not a C math
function or an LLVM intrinsic (numba's allocator, say) makes the code not persistable: it
then runs from numba in this process only.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import threading
from typing import Any

__all__ = ["NativeLibrary", "cpu_identity", "emit_object", "load_object"]

# numba runtime functions reached only from the error path of numba's cfunc wrapper (or from
# releasing arrays that own memory, which the loops' arrays never do).
_ERROR_PATH = frozenset({
    "NRT_Free", "NRT_MemInfo_call_dtor", "NRT_decref", "numba_do_raise", "numba_gil_ensure",
    "numba_gil_release", "numba_runtime_build_excinfo_struct", "numba_unpickle", "numba_fatal_error",
})
# Functions the loaded code may call that every CPython process has: the C library's maths
# and CPython's own API (the error path above, under a trap).
_LIBM = re.compile(
    r"(a?(sin|cos|tan)h?|atan2|exp[2m]?1?|expm1|log(10|1p|2)?|pow|sqrt|cbrt|hypot|fabs|floor|ceil|"
    r"trunc|round|rint|nearbyint|fmod|remainder|copysign|erfc?|[lt]gamma|ldexp|frexp|modf)f?"
)
_DECLARE = re.compile(r'^declare (.*?)@"?([\w.$]+)"?\((.*)\)(.*)$')

_llvm_lock = threading.Lock()
_OBJECT_MAGIC = {"linux": b"\x7fELF", "darwi": b"\xcf\xfa\xed\xfe"}


@functools.cache
def _llvm() -> Any:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


@functools.cache
def cpu_identity() -> dict[str, str]:
    """What native code is compiled for: LLVM's triple, the CPU's name and a digest of its features.

    >>> sorted(cpu_identity())
    ['cpu', 'features', 'triple']
    """
    llvm = _llvm()
    features = llvm.get_host_cpu_features().flatten()
    return {
        "triple": llvm.get_process_triple(),
        "cpu": llvm.get_host_cpu_name(),
        "features": hashlib.sha256(features.encode()).hexdigest()[:16],
    }


def _stub_error_path(ir: str) -> tuple[str, list[str]]:
    """``ir`` with numba's error-path functions defined as traps; the other undefined symbols."""
    lines, unresolved, trap = [], [], False
    for line in ir.splitlines():
        m = _DECLARE.match(line)
        if m is None:
            lines.append(line)
            continue
        ret, name, params, _ = m.groups()
        if name in _ERROR_PATH:
            lines.append(f"define internal {ret}@{name}({params}) {{\n  call void @llvm.trap()\n  unreachable\n}}")
            trap = True
        else:
            if not (name.startswith("llvm.") or name.startswith("Py") or _LIBM.fullmatch(name)):
                unresolved.append(name)
            lines.append(line)
    if trap and "@llvm.trap()" not in ir:
        lines.append("declare void @llvm.trap()")
    return "\n".join(lines), unresolved


def emit_object(modules: list[str]) -> bytes:
    """One object file for this machine from numba's LLVM IR ``modules`` (linked together).

    Raises ValueError naming the symbols the object could not find in a process without numba.
    """
    llvm = _llvm()
    with _llvm_lock:
        linked = None
        missing: list[str] = []
        for ir in modules:
            text, unresolved = _stub_error_path(ir)
            missing += unresolved
            module = llvm.parse_assembly(text)
            if linked is None:
                linked = module
            else:
                linked.link_in(module)
        if missing:
            raise ValueError(f"calls functions of numba's runtime: {sorted(set(missing))}")
        linked.verify()
        machine = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3,
            reloc="pic", codemodel="jitdefault",
        )
        return bytes(machine.emit_object(linked))


class NativeLibrary:
    """Object code loaded into this process; ``address(symbol)`` of its functions.

    It owns the code: the addresses are valid while it lives.
    """

    def __init__(self, obj: bytes) -> None:
        # LLVM does not survive a malformed object: refuse anything not in this platform's format
        # (the store's digest already rules out damage after writing).
        magic = _OBJECT_MAGIC.get(sys.platform[:5])
        if magic is not None and not obj.startswith(magic):
            raise ValueError(f"not an object file for this platform (starts with {obj[:4]!r})")
        llvm = _llvm()
        with _llvm_lock:
            machine = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine()
            self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
            self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self._engine.finalize_object()

    def address(self, symbol: str) -> int:
        with _llvm_lock:
            address = self._engine.get_function_address(symbol)
        if not address:
            raise ValueError(f"symbol {symbol!r} is not in the loaded object code")
        return address


def load_object(obj: bytes) -> NativeLibrary:
    """Load object code made by :func:`emit_object` on this machine."""
    return NativeLibrary(obj)
