"""Native CPU code as bytes: LLVM IR -> object code or a shared library, and back to callable addresses.

The CPU callbacks are numba ``cfunc`` loops. Their LLVM IR (numba's public ``inspect_llvm``)
is compiled here by llvmlite into one relocatable object for this machine. Where a C compiler
driver (``cc``, ``gcc`` or ``clang``) is on the PATH of a Linux machine, the object is linked
into a shared library, which another process loads with ``ctypes`` alone: no numba, no
llvmlite, no compiling. Elsewhere the store keeps the object itself, which another process
loads with llvmlite's MCJIT. Either way the store holds raw bytes, and the loops are called
through ctypes.

Which machine the code suits is :func:`cpu_identity`: on Linux it is read from
``/proc/cpuinfo`` (every processor's model and feature flags) and the C library's version,
so a process that only loads stored code never imports llvmlite; elsewhere it is LLVM's own
view of the host. The LLVM version is in the toolchain stamp of the store key.

numba's C wrapper keeps an error path that calls numba's runtime (``numba_do_raise`` and
friends, only in numba's own extension module). The loops are compiled so that path is
never taken (they catch every exception of the callback and return a status instead, see
``cpu_loops``), and those few symbols are given bodies that trap. Any other undefined symbol that is not a C math
function or an LLVM intrinsic (numba's allocator, say) makes the code not persistable: it
then runs from numba in this process only.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import re
import sys
import threading
from typing import Any

__all__ = ["FORMATS", "NativeLibrary", "SharedLibrary", "cpu_identity", "cpuinfo_identity", "emit_object",
           "link_shared", "load_native", "load_object", "persistable"]

log = logging.getLogger("fftfuse.compiler")

# numba runtime functions reached only from the error path of numba's cfunc wrapper (or from
# releasing arrays that own memory, which the loops' arrays never do).
_ERROR_PATH = frozenset({
    "NRT_Free", "NRT_MemInfo_call_dtor", "NRT_decref", "numba_do_raise", "numba_gil_ensure",
    "numba_gil_release", "numba_runtime_build_excinfo_struct", "numba_unpickle", "numba_fatal_error",
})
# Functions the loaded code may call that every CPython process has: the C library's maths
# and CPython's own API (the error path above, under a trap). The patterns stay text, compiled
# (and cached) by ``re`` when code is first emitted, not when a loading process imports this.
_LIBM = (
    r"(a?(sin|cos|tan)h?|atan2|exp[2m]?1?|expm1|log(10|1p|2)?|pow|sqrt|cbrt|hypot|fabs|floor|ceil|"
    r"trunc|round|rint|nearbyint|fmod|remainder|copysign|erfc?|[lt]gamma|ldexp|frexp|modf)f?"
)
_DECLARE = r'^declare (.*?)@"?([\w.$]+)"?\((.*)\)(.*)$'

#: How stored native code is kept: a linked shared library, or a relocatable object for MCJIT.
FORMATS = ("shared", "object")

_llvm_lock = threading.Lock()
_OBJECT_MAGIC = {"linux": b"\x7fELF", "darwi": b"\xcf\xfa\xed\xfe"}
_ET_REL, _ET_DYN = 1, 3  # ELF file types: relocatable object, shared object
# /proc/cpuinfo fields that differ between the processors of one machine, or from read to read.
_VOLATILE = frozenset({
    "processor", "cpu mhz", "bogomips", "core id", "physical id", "siblings", "cpu cores", "apicid",
    "initial apicid", "clock", "power management",
})
_LINK_TIMEOUT_S = 60


@functools.cache
def _llvm() -> Any:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def cpu_identity() -> dict[str, str]:
    """What native code is compiled for: the platform, the CPU's name and a digest of its features.

    On Linux: from ``/proc/cpuinfo`` and the C library (:func:`cpuinfo_identity`), without
    llvmlite; elsewhere, or without ``/proc``: LLVM's triple, host CPU and host features.

    >>> sorted(cpu_identity())
    ['cpu', 'features', 'platform']
    """
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                return cpuinfo_identity(f.read())
        except (OSError, ValueError):
            pass
    llvm = _llvm()
    return {
        "platform": llvm.get_process_triple(),
        "cpu": llvm.get_host_cpu_name(),
        "features": _digest(llvm.get_host_cpu_features().flatten()),
    }


def cpu_summary(identity: dict[str, str]) -> str:
    """One line naming the CPU of :func:`cpu_identity` (for listings; the key uses every field).

    >>> cpu_summary({"platform": "linux-x86_64-glibc2.36", "cpu": "znver3", "features": "0f06"})
    'znver3 (linux-x86_64-glibc2.36)'
    """
    return f"{identity.get('cpu', '?')} ({identity.get('platform', '?')})"


def cpuinfo_identity(cpuinfo: str) -> dict[str, str]:
    r""":func:`cpu_identity` from the text of a Linux ``/proc/cpuinfo``, for this machine and C library.

    Every processor's description counts (model, stepping, feature flags, ...) except the fields
    that change from core to core or read to read (clock, numbering), so a machine whose CPUs
    differ in any way LLVM could compile for gets another identity.

    >>> a = cpuinfo_identity("processor : 0\nmodel name : X\nflags : sse2 avx2\ncpu MHz : 2400.1\n")
    >>> b = cpuinfo_identity("processor : 0\nmodel name : X\nflags : sse2 avx2\ncpu MHz : 3100.7\n")
    >>> c = cpuinfo_identity("processor : 0\nmodel name : X\nflags : sse2\ncpu MHz : 2400.1\n")
    >>> a == b, a == c, a["cpu"]
    (True, False, 'X')
    """
    processors: set[str] = set()
    name = ""
    for block in cpuinfo.split("\n\n"):
        fields = []
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            key, value = key.strip(), " ".join(value.split())
            if sep and key.lower() not in _VOLATILE:
                fields.append(f"{key}={value}")
                if key in ("model name", "cpu model", "cpu") and not name:
                    name = value
        if fields:
            processors.add("\n".join(sorted(fields)))
    if not processors:
        raise ValueError("no processor described in /proc/cpuinfo")
    libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else "libc"
    return {
        "platform": f"{sys.platform}-{os.uname().machine}-{libc}".replace(" ", ""),
        "cpu": name or "unknown",
        "features": _digest("\n\n".join(sorted(processors))),
    }


def _stub_error_path(ir: str) -> tuple[str, list[str]]:
    """``ir`` with numba's error-path functions defined as traps; the other undefined symbols."""
    lines, unresolved, trap = [], [], False
    for line in ir.splitlines():
        m = re.match(_DECLARE, line)
        if m is None:
            lines.append(line)
            continue
        ret, name, params, _ = m.groups()
        if name in _ERROR_PATH:
            lines.append(f"define internal {ret}@{name}({params}) {{\n  call void @llvm.trap()\n  unreachable\n}}")
            trap = True
        else:
            if not (name.startswith("llvm.") or name.startswith("Py") or re.fullmatch(_LIBM, name)):
                unresolved.append(name)
            lines.append(line)
    if trap and "@llvm.trap()" not in ir:
        lines.append("declare void @llvm.trap()")
    return "\n".join(lines), unresolved


def emit_object(modules: list[str], code_model: str = "jitdefault") -> bytes:
    """One object file for this machine from numba's LLVM IR ``modules`` (linked together).

    ``code_model``: LLVM's JIT default for an object MCJIT loads, whose sections may lie
    anywhere in memory; ``"small"`` for one linked into a shared library, whose code reaches its
    constants relative to itself. The JIT model addresses each constant through a 64-bit
    immediate, and a vectorized loop then reloads its shuffle masks on every iteration (a
    complex64 filter epilog, 64 x 1024, on the CI VM: 10-18% slower than the same loop from
    numba's JIT, the small model's as fast).

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
            reloc="pic", codemodel=code_model,
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
        if (magic is not None and not obj.startswith(magic)) or (magic == b"\x7fELF" and _elf_type(obj) != _ET_REL):
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


def _elf_type(data: bytes) -> int:
    """The ELF file type (``e_type``) of ``data``, 0 if it is not a little-endian ELF file."""
    if len(data) < 64 or not data.startswith(b"\x7fELF") or data[5] != 1:
        return 0
    return int.from_bytes(data[16:18], "little")


def _compiler_driver() -> str | None:
    import shutil

    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _linker() -> str | None:
    """The C compiler driver that links shared libraries here: on Linux, the first on the PATH."""
    if not sys.platform.startswith("linux"):
        return None
    driver = _compiler_driver()
    if driver is None:
        log.info("no C compiler driver (cc, gcc, clang) on the PATH: CPU loops are stored as object code")
    return driver


def link_shared(obj: bytes) -> bytes | None:
    """A shared library linked from the object :func:`emit_object` made; None where that cannot be done.

    Linux only, with the C compiler driver on the PATH (it links in the C maths library and
    the compiler's own support routines). Linked with ``-Bsymbolic``: the library's calls to its
    own functions never bind to a same-named function of another loaded library.
    """
    driver = _linker()
    if driver is None:
        return None
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fftfuse-link-") as work:
        source, target = os.path.join(work, "loops.o"), os.path.join(work, "loops.so")
        with open(source, "wb") as f:
            f.write(obj)
        try:
            done = subprocess.run([driver, "-shared", "-Wl,-Bsymbolic", "-o", target, source, "-lm"],
                                  capture_output=True, text=True, timeout=_LINK_TIMEOUT_S, cwd=work)
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("linking CPU loops with %s failed (%s): they are stored as object code", driver, exc)
            return None
        if done.returncode != 0:
            log.info("linking CPU loops with %s failed: %s", driver, done.stderr.strip()[-500:])
            return None
        with open(target, "rb") as f:
            return f.read()


class SharedLibrary:
    """A shared library from :func:`link_shared`, loaded into this process with ctypes.

    The bytes never become a file anyone else could change: they go to an anonymous memory
    file (``memfd_create``) sealed against writes, or where that cannot be loaded from, to a new
    file only this user can read, in a new directory only this user can enter, removed once
    loaded. The library stays loaded for the life of the process (ctypes never unloads one), and
    so does its memory file: glibc knows a loaded library by its path, and a closed descriptor's
    number, reused, would name an old library.
    """

    def __init__(self, data: bytes) -> None:
        if _elf_type(data) != _ET_DYN:
            raise ValueError(f"not a shared library for this platform (starts with {data[:4]!r})")
        try:
            self._library = self._from_memory(data)
        except (AttributeError, OSError) as exc:  # no memfd_create or seals, or memory files may not hold code
            log.debug("loading CPU loops from memory failed (%s); using a private file", exc)
            self._library = self._from_file(data)

    @staticmethod
    def _from_memory(data: bytes) -> ctypes.CDLL:
        import fcntl

        fd = os.memfd_create("fftfuse-loops", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            with open(fd, "wb", closefd=False) as f:
                f.write(data)
            # Sealed: what is loaded is exactly the bytes checked, whoever else can reach the file.
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK
                        | fcntl.F_SEAL_SEAL)
            return ctypes.CDLL(f"/proc/self/fd/{fd}")
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _from_file(data: bytes) -> ctypes.CDLL:
        import tempfile

        folder = tempfile.mkdtemp(prefix="fftfuse-loops-")  # mode 0700
        path = os.path.join(folder, hashlib.sha256(data).hexdigest() + ".so")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return ctypes.CDLL(path)
        finally:
            if os.path.lexists(path):
                os.unlink(path)
            os.rmdir(folder)

    def address(self, symbol: str) -> int:
        try:
            return ctypes.cast(self._library[symbol], ctypes.c_void_p).value
        except AttributeError:
            raise ValueError(f"symbol {symbol!r} is not in the loaded shared library") from None


_shared: dict[str, SharedLibrary] = {}
_shared_lock = threading.Lock()


def load_native(data: bytes, form: str) -> NativeLibrary | SharedLibrary:
    """Load native code stored in one of :data:`FORMATS`; ValueError or OSError if it cannot be.

    Loading the same shared library twice gives the one already loaded.
    """
    if form == "object":
        return load_object(data)
    if form != "shared":
        raise ValueError(f"unknown native code format {form!r}; expected one of {FORMATS}")
    digest = hashlib.sha256(data).hexdigest()
    with _shared_lock:
        library = _shared.get(digest)
        if library is None:
            library = _shared[digest] = SharedLibrary(data)
    return library


def persistable(modules: list[str], symbols: list[str]) -> tuple[bytes, str]:
    """What to store for numba's LLVM IR ``modules`` and its format: a shared library linked from
    their object where one links here and loads with every one of ``symbols``, else the object
    itself, for MCJIT (see :func:`emit_object`'s code models).

    Raises ValueError as :func:`emit_object`."""
    shared = link_shared(emit_object(modules, "small")) if _linker() is not None else None
    if shared is not None:
        try:
            library = load_native(shared, "shared")
            for symbol in symbols:
                library.address(symbol)
        except (OSError, ValueError) as exc:
            log.info("the linked CPU loops do not load (%s): they are stored as object code", exc)
        else:
            return shared, "shared"
    return emit_object(modules), "object"
