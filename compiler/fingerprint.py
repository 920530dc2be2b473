"""Content fingerprints of Python functions, for caching their compiled form.

:func:`function_fingerprint` returns a sha256 hex digest of *what a function computes*:
its bytecode and constants (nested code objects included), default arguments, closure
values, and every global it reads, resolved by value. Where the function was defined
(file name, line numbers, qualified name) does not enter the digest, so the same lambda
built by ``exec`` or written in two files fingerprints the same.

Globals are resolved by these rules:

* ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, and tuples and
  frozensets of them: by value, tagged with their type (``1``, ``1.0`` and ``True`` differ).
* numpy scalars, arrays (dtype, shape and contents) and dtypes. Arrays are hashed on every
  call, so a large global array costs time proportional to its size each time.
* modules: by name and ``__version__``, plus the value of every attribute of the module
  that the function names (``mymod.SCALE``); an attribute that cannot be fingerprinted makes
  the function uncacheable, as a global would.
* Python functions: recursively, wherever they are defined; recursion is cut at functions
  already being fingerprinted.
* numba-jitted functions (dispatchers, ``@vectorize`` ufuncs): by their Python function and
  target options. (The compiler compiles them afresh from that function: what they compiled
  before may hold globals since changed.)
* enum members: by class name, member name and value; enum classes: by name and every
  member; namedtuple instances: by class name, field names and items, each by value.
* functions and ufuncs of CuPy and SciPy: by qualified name and the library's version.
* builtin functions, numpy ufuncs and numpy functions, and classes of the standard library,
  numpy and numba: by qualified name; numba types by ``repr``; numpy scalars by their full
  dtype (structured fields and datetime units included) and bytes.
* objects whose class defines ``__fftfuse_fingerprint__(self) -> bytes | str``: by that value,
  tagged with the class's qualified name. The class promises that the value identifies
  everything a compiler can read off the object (nvmath.device's FFT returns its description
  and the versions of its code generator). ``found=`` collects the objects met this way.

Anything else (lists, dicts, instances or classes of your own, which numba would read
attributes of) raises :class:`UncacheableError`, because it could change without the
fingerprint noticing.

Cost: each code object is analysed once (bytecode scan, constants) and cached by identity;
after that a call walks only the globals, defaults and closures, a few microseconds for a
small function (plus hashing the contents of any global arrays).

>>> def double(x):
...     return 2 * x
>>> def twice(x):
...     return 2 * x
>>> function_fingerprint(double) == function_fingerprint(twice)
True
>>> len(function_fingerprint(double))
64
>>> def thrice(x):
...     return 3 * x
>>> function_fingerprint(thrice) == function_fingerprint(double)
False
>>> TABLE = [1, 2, 3]
>>> def lookup(i):
...     return TABLE[i]
>>> try:
...     function_fingerprint(lookup)
... except UncacheableError as err:
...     print(err)
global 'TABLE' read by lookup is a list, which cannot be fingerprinted (mutable or opaque value)
"""

from __future__ import annotations

import builtins
import enum
import sys
from types import BuiltinFunctionType, CodeType, FunctionType, ModuleType
from typing import Any, Callable

from fftfuse_cache.hashing import sha256

__all__ = ["UncacheableError", "code_alone", "function_fingerprint", "jitted_python_function"]


class UncacheableError(Exception):
    """A value reachable from a function cannot be fingerprinted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def function_fingerprint(fn: Callable[..., Any], found: list[Any] | None = None) -> str:
    """Return the sha256 hex digest of what ``fn`` computes.

    ``fn`` is a Python function or a numba dispatcher. Raises :class:`UncacheableError`
    when a default, closure value or global it reads cannot be fingerprinted. ``found``, where
    given, receives every object encoded through ``__fftfuse_fingerprint__`` (what a cache may
    select kernels by).
    """
    snapshot = _leaf_snapshot(fn)  # a leaf reaches plain values only: it never meets such objects
    if snapshot is not None:
        digest = _LEAF_MEMO.get(snapshot)
        if digest is not None:
            return digest
    hasher = _Hasher(found)
    hasher.value(fn, ("function {!r}", getattr(fn, "__qualname__", fn)))
    digest = sha256(b"".join(hasher.parts)).hexdigest()
    if snapshot is not None:
        if len(_LEAF_MEMO) >= 4096:
            _LEAF_MEMO.clear()
        _LEAF_MEMO[snapshot] = digest
    return digest


def code_alone(fn: Any) -> bool:
    """Whether what ``fn`` computes follows from its code object alone: a Python function without
    defaults or closure whose code (nested code included) reads no global and imports nothing
    (``lambda v: v * 0.5``, ``def mul(v, d): return v * d``). Functions with equal code objects
    (Python's ``==``: bytecode, names and constants by type and value) then have one fingerprint,
    so a cache whose key holds the code object needs none. Asked on each call: a function's
    defaults can be set after it is made.

    >>> code_alone(lambda v: v * 0.5), code_alone(lambda v, s=2: v * s), code_alone(lambda v: abs(v))
    (True, False, False)
    """
    if type(fn) is not FunctionType or fn.__defaults__ is not None or fn.__kwdefaults__ is not None:
        return False
    code = fn.__code__
    alone = _ALONE.get(code)
    if alone is None:
        info = _code_info(code)
        alone = not (info.global_names or info.import_names or code.co_freevars)
        if len(_ALONE) >= _CODE_CACHE_MAX:
            _ALONE.clear()
        _ALONE[code] = alone
    return alone


# code_alone's answers by code object (equal code objects read the same names); it runs on every
# FFT call with a callback, where this look-up costs less than _code_info's.
_ALONE: dict[CodeType, bool] = {}


# The hot path: FFT calls fingerprint their callbacks on every call. For a *leaf* function (its
# defaults, closure values and the globals it reads are all immutable plain values, compared by
# exact value and type), those values and the code object determine the digest, so a snapshot of
# them is an exact memo key: nothing is re-hashed while they are unchanged, and any change of
# value misses the memo. Functions reaching modules, other functions or arrays take the full walk.
_LEAF_MEMO: dict[tuple, str] = {}
_LEAF_TYPES = frozenset({bool, int, str, bytes, type(None)})


def _leaf_value(value: Any) -> Any:
    """An exact, hashable stand-in for an immutable plain value, or _MISSING if not one."""
    t = type(value)
    if t in _LEAF_TYPES:
        return (t, value)
    if t is float or t is complex:
        return (t, repr(value))  # repr tells -0.0 from 0.0, and nan equals itself
    if t.__module__ == "numpy" and t.__name__ not in _NUMPY_NOT_LEAF and getattr(value, "shape", None) == ():
        # An immutable NumPy scalar: its type, dtype (datetime unit, byte order) and bits.
        return (t, value.dtype, value.tobytes())
    if t is BuiltinFunctionType or (t is type and _trusted_class(value)):
        return (t, value)  # held, so its identity cannot be reused by another object
    return _MISSING


# ndarray is mutable; a structured scalar (np.void) may be a view into an array.
_NUMPY_NOT_LEAF = frozenset({"ndarray", "void", "record"})


def _leaf_snapshot(fn: Any) -> tuple | None:
    code = getattr(fn, "__code__", None)
    if type(fn) is not FunctionType or code is None or fn.__kwdefaults__:
        return None
    info = _code_info(code)
    if info.import_names:
        return None
    if not info.global_names and fn.__defaults__ is None and fn.__closure__ is None:
        return (code,)  # the code alone (``lambda v: v * 0.5``, made anew per call): the commonest case
    values: list[Any] = [code]
    for value in fn.__defaults__ or ():
        leaf = _leaf_value(value)
        if leaf is _MISSING:
            return None
        values.append(leaf)
    values.append(None)
    for cell in fn.__closure__ or ():
        try:
            leaf = _leaf_value(cell.cell_contents)
        except ValueError:
            return None
        if leaf is _MISSING:
            return None
        values.append(leaf)
    values.append(None)
    fn_globals = fn.__globals__
    for name in info.global_names:
        value = fn_globals.get(name, _MISSING)
        if value is _MISSING:
            value = _builtin(fn_globals, name)  # abs, range, ...
        leaf = _leaf_value(value) if value is not _MISSING else (None, None)
        if leaf is _MISSING:
            return None
        values.append(leaf)
    return tuple(values)


# CO_NESTED only says where a function was defined, not what it does.
_CO_NESTED = 0x10

# Opcodes whose name argument is an attribute or imported member, not a global variable.
_ATTR_OPS = frozenset(
    {"LOAD_ATTR", "STORE_ATTR", "DELETE_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR", "IMPORT_FROM"}
)


def _lp(data: bytes) -> bytes:
    """Length-prefix ``data`` so concatenated fields cannot run into each other."""
    return len(data).to_bytes(4, "little") + data


# Encoded names recur on every call (global names, module names), so they are memoised.
_TEXT_CACHE: dict[str, bytes] = {}


def _text(s: str) -> bytes:
    """Length-prefixed utf-8 encoding of ``s``."""
    encoded = _TEXT_CACHE.get(s)
    if encoded is None:
        encoded = _lp(s.encode("utf-8", "surrogatepass"))
        if len(s) <= 256:
            if len(_TEXT_CACHE) >= 16384:
                _TEXT_CACHE.clear()
            _TEXT_CACHE[s] = encoded
    return encoded


_SIMPLE_TYPES = frozenset({bool, int, float, complex, str, bytes, tuple, frozenset, type(Ellipsis)})


def _encode_simple(value: Any) -> bytes | None:
    """Type-tagged encoding of an immutable plain value, or None if it is not one."""
    t = type(value)
    if value is None:
        return b"N"
    if t is bool:
        return b"T" if value else b"F"
    if t is int:
        return b"i" + _lp(hex(value).encode())  # hex: no digit limit, unlike str()
    if t is float:
        return b"f" + _lp(value.hex().encode())
    if t is complex:
        return b"c" + _lp(value.real.hex().encode()) + _lp(value.imag.hex().encode())
    if t is str:
        return b"s" + _text(value)
    if t is bytes:
        return b"y" + _lp(value)
    if t is tuple or t is frozenset:
        encoded = []
        for item in value:
            e = _encode_simple(item)
            if e is None:
                return None
            encoded.append(e)
        if t is frozenset:
            encoded.sort()  # set order is not stable across processes
        return (b"t" if t is tuple else b"z") + len(encoded).to_bytes(4, "little") + b"".join(encoded)
    if value is Ellipsis:
        return b"E"
    return None


class _CodeInfo:
    """What a code object contributes, computed once per code object."""

    __slots__ = ("code", "digest", "global_names", "attr_names", "import_names")

    def __init__(
        self,
        code: CodeType,
        digest: bytes,
        global_names: tuple[str, ...],
        attr_names: tuple[str, ...],
        import_names: tuple[str, ...],
    ) -> None:
        self.code = code  # keeps id(code) valid while cached
        self.digest = digest
        self.global_names = global_names  # sorted, includes names read by nested code
        self.attr_names = attr_names  # sorted attribute names, consulted on modules
        self.import_names = import_names


# Code objects are immutable, so their part of the digest is cached by identity.
_CODE_CACHE: dict[int, _CodeInfo] = {}
_CODE_CACHE_MAX = 4096


def _code_info(code: CodeType) -> _CodeInfo:
    info = _CODE_CACHE.get(id(code))
    if info is not None and info.code is code:
        return info
    info = _analyse_code(code)
    if len(_CODE_CACHE) >= _CODE_CACHE_MAX:
        _CODE_CACHE.clear()
    _CODE_CACHE[id(code)] = info
    return info


def _analyse_code(code: CodeType) -> _CodeInfo:
    import dis  # only when a code object is seen for the first time

    global_names: set[str] = set()
    attr_names: set[str] = set()
    import_names: set[str] = set()
    for ins in dis.get_instructions(code):
        if ins.opcode not in dis.hasname:
            continue
        if ins.opname in _ATTR_OPS:
            attr_names.add(ins.argval)
        elif ins.opname == "IMPORT_NAME":
            import_names.add(ins.argval)
        else:  # LOAD_GLOBAL, STORE_GLOBAL, LOAD_NAME, ... and any future global-reading op
            global_names.add(ins.argval)

    parts = [
        b"C",
        code.co_argcount.to_bytes(4, "little"),
        code.co_posonlyargcount.to_bytes(4, "little"),
        code.co_kwonlyargcount.to_bytes(4, "little"),
        (code.co_flags & ~_CO_NESTED).to_bytes(4, "little"),
        _lp(code.co_code),
        _lp(getattr(code, "co_exceptiontable", b"")),
    ]
    for names in (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars):
        parts.append(len(names).to_bytes(4, "little"))
        parts.extend(_text(n) for n in names)
    parts.append(len(code.co_consts).to_bytes(4, "little"))
    for const in code.co_consts:
        if type(const) is CodeType:
            nested = _code_info(const)
            parts.append(b"C" + nested.digest)
            global_names.update(nested.global_names)
            attr_names.update(nested.attr_names)
            import_names.update(nested.import_names)
            continue
        encoded = _encode_simple(const)
        if encoded is None:  # compilers only emit plain constants; be safe anyway
            encoded = b"r" + _text(f"{type(const).__qualname__}:{const!r}")
        parts.append(encoded)
    digest = sha256(b"".join(parts)).digest()
    return _CodeInfo(
        code, digest, tuple(sorted(global_names)), tuple(sorted(attr_names)), tuple(sorted(import_names))
    )


_MISSING = object()

# Encodings of objects identified by name alone (builtins, classes, ufuncs), by identity.
_NAMED_CACHE: dict[int, tuple[Any, bytes]] = {}

# A label says where a value was found, for error messages: a format string and its
# arguments, formatted only when an error is raised.
Label = tuple


def _describe(label: Label) -> str:
    return label[0].format(*label[1:])


def _qualified_name(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or ""
    return f"{module}.{name}"


class _Hasher:
    """Collects the byte encoding of a function and everything it reaches."""

    def __init__(self, found: list[Any] | None = None) -> None:
        self.parts: list[bytes] = []
        self._found = found
        # id -> ordinal of functions/dispatchers already encoded (cuts recursion, shares callees).
        self._seen: dict[int, int] = {}
        # ids of modules being encoded right now (a module may reach itself through attributes).
        self._modules_active: set[int] = set()

    def value(self, value: Any, label: Label, attr_names: tuple[str, ...] = ()) -> None:
        """Append the encoding of ``value``; ``label`` names it in error messages.

        ``attr_names`` are the attribute names the referencing code uses, consulted for modules.
        """
        t = type(value)
        if t in _SIMPLE_TYPES or value is None:
            encoded = _encode_simple(value)
            if encoded is not None:
                self.parts.append(encoded)
                return
        if t is FunctionType:
            library = _library_function(value, value.__module__)
            if library is not None:
                self.parts.append(library)
            else:
                self._function(value)
            return
        if t is ModuleType:
            self._module(value, attr_names)
            return
        if t is tuple:  # a tuple holding functions or arrays
            self.parts.append(b"t" + len(value).to_bytes(4, "little"))
            for i, item in enumerate(value):
                self.value(item, ("{}[{}]", _describe(label), i), attr_names)
            return
        named = _NAMED_CACHE.get(id(value))
        if named is not None and named[0] is value:
            self.parts.append(named[1])
            return
        encoded = self._named(value, t, label)
        if encoded is not None:
            if len(_NAMED_CACHE) >= 4096:
                _NAMED_CACHE.clear()
            _NAMED_CACHE[id(value)] = (value, encoded)  # holds value, so the id stays valid
            self.parts.append(encoded)
            return
        self._other(value, t, label)

    def _named(self, value: Any, t: type, label: Label) -> bytes | None:
        """Encoding of a value identified by its qualified name, or None if it is not one."""
        if t is BuiltinFunctionType:
            owner = getattr(value, "__self__", None)
            if owner is not None and type(owner) is not ModuleType:
                raise _uncacheable(label, value, "bound to an object")
            return b"B" + _text(_qualified_name(value))
        if isinstance(value, type):
            if _trusted_class(value):
                return b"K" + _text(_qualified_name(value))
            return None  # a class of the user's: by content in _other, or refused
        if t.__name__ in ("method_descriptor", "wrapper_descriptor", "classmethod_descriptor"):
            owner = getattr(value, "__objclass__", None)
            return b"B" + _text(f"{_qualified_name(owner)}.{value.__name__}")
        own_module = getattr(value, "__module__", None)
        library = _library_function(value, own_module if type(own_module) is str else t.__module__)
        if library is not None:
            return library
        if t.__module__ == "numpy":
            if t.__name__ == "ufunc":
                return b"B" + _text(f"numpy.{value.__name__}")
            if t.__name__ == "_ArrayFunctionDispatcher":  # np.where, np.real, ...
                return b"B" + _text(_qualified_name(value))
        return None

    def _other(self, value: Any, t: type, label: Label) -> None:
        if getattr(t, "__fftfuse_fingerprint__", None) is not None:
            self._declared(value, t, label)
            return
        module = t.__module__ or ""
        if module == "numpy" or module.startswith("numpy."):
            self._numpy(value, label)
            return
        py_func = jitted_python_function(value)
        if py_func is not None:
            self._dispatcher(value, py_func)
            return
        if isinstance(value, type):
            self._class(value, label)
            return
        if isinstance(value, enum.Enum):
            self.parts.append(b"e" + _text(value.name))
            self._class(t, label)
            return
        if isinstance(value, tuple) and isinstance(getattr(t, "_fields", None), tuple):
            self._class(t, label)  # a namedtuple
            self.parts.append(b"t" + len(value).to_bytes(4, "little"))
            for name, item in zip(t._fields, value):
                self.value(item, ("field {!r} of {}", name, _describe(label)))
            return
        if module.startswith("numba"):
            self.parts.append(b"n" + _text(f"{_qualified_name(t)}:{value!r}"))
            return
        raise _uncacheable(label, value, "mutable or opaque value")

    def _declared(self, value: Any, t: type, label: Label) -> None:
        """An object that states its own identity (``__fftfuse_fingerprint__``)."""
        try:
            identity = value.__fftfuse_fingerprint__()
        except Exception as exc:  # what it needs (a library, a GPU) is missing: not cacheable
            raise _uncacheable(label, value, f"its __fftfuse_fingerprint__ failed: {exc}") from None
        if isinstance(identity, str):
            identity = identity.encode("utf-8", "surrogatepass")
        if not isinstance(identity, bytes):
            raise _uncacheable(label, value, f"its __fftfuse_fingerprint__ returned a {type(identity).__name__}, "
                                             "not bytes or str")
        self.parts.append(b"P" + _text(_qualified_name(t)) + _lp(identity))
        if self._found is not None:
            self._found.append(value)

    def _class(self, cls: type, label: Label) -> None:
        """A class of the user's, by the values numba can read off it (enums, namedtuples)."""
        if not self._once(cls):
            return
        self.parts.append(b"K" + _text(_qualified_name(cls)))
        if issubclass(cls, enum.Enum):
            members = list(cls.__members__.items())  # aliases included: Color.RED may be one
            self.parts.append(b"m" + len(members).to_bytes(4, "little"))
            for name, member in members:
                self.parts.append(_text(name))
                self.value(member.value, ("{}.{}", _qualified_name(cls), name))
            return
        fields = getattr(cls, "_fields", None)
        if issubclass(cls, tuple) and isinstance(fields, tuple):
            self.value(fields, label)
            defaults = getattr(cls, "_field_defaults", {})
            for name in sorted(defaults):
                self.parts.append(_text(name))
                self.value(defaults[name], ("default of {}.{}", _qualified_name(cls), name))
            return
        del self._seen[id(cls)]
        raise _uncacheable(label, cls, "a class: numba would read its attributes, which are not fingerprinted")

    def _once(self, obj: Any) -> bool:
        """Record ``obj``; return False (after writing a back-reference) if already seen."""
        ordinal = self._seen.get(id(obj))
        if ordinal is not None:
            self.parts.append(b"R" + ordinal.to_bytes(4, "little"))
            return False
        self._seen[id(obj)] = len(self._seen)
        return True

    def _function(self, fn: FunctionType) -> None:
        if not self._once(fn):
            return
        try:
            self._function_body(fn)
        except UncacheableError:
            # Forget fn, so a later reference raises too instead of writing a back-reference.
            del self._seen[id(fn)]
            raise

    def _function_body(self, fn: FunctionType) -> None:
        info = _code_info(fn.__code__)
        parts = self.parts
        parts.append(b"F" + info.digest)
        owner = fn.__qualname__
        attrs = info.attr_names

        defaults = fn.__defaults__ or ()
        parts.append(b"d" + len(defaults).to_bytes(4, "little"))
        for i, default in enumerate(defaults):
            self.value(default, ("default argument {} of {}", i, owner), attrs)
        kwdefaults = fn.__kwdefaults__ or {}
        parts.append(b"k" + len(kwdefaults).to_bytes(4, "little"))
        for name in sorted(kwdefaults):
            parts.append(_text(name))
            self.value(kwdefaults[name], ("keyword default {!r} of {}", name, owner), attrs)

        closure = fn.__closure__ or ()
        parts.append(b"l" + len(closure).to_bytes(4, "little"))
        for name, cell in zip(fn.__code__.co_freevars, closure):
            try:
                contents = cell.cell_contents
            except ValueError:
                raise UncacheableError(f"closure variable {name!r} of {owner} is not bound yet") from None
            self.value(contents, ("closure variable {!r} of {}", name, owner), attrs)

        fn_globals = fn.__globals__
        for name in info.global_names:
            parts.append(b"g" + _text(name))
            value = fn_globals.get(name, _MISSING)
            if value is _MISSING:
                value = _builtin(fn_globals, name)
                if value is _MISSING:
                    parts.append(b"U")  # unbound: calling fn raises NameError either way
                    continue
            self.value(value, ("global {!r} read by {}", name, owner), attrs)
        for name in info.import_names:
            parts.append(b"I" + _text(name))
            module = sys.modules.get(name)
            if module is not None:
                self._module(module, attrs)

    def _module(self, module: ModuleType, attr_names: tuple[str, ...]) -> None:
        version = getattr(module, "__version__", None)
        self.parts.append(b"M" + _text(module.__name__) + _text(version if type(version) is str else ""))
        if id(module) in self._modules_active:
            return
        self._modules_active.add(id(module))
        try:
            namespace = module.__dict__  # not getattr: avoid triggering lazy module loaders
            for name in attr_names:
                attr = namespace.get(name, _MISSING)
                if attr is _MISSING:
                    continue
                self.parts.append(b"a" + _text(name))
                self.value(attr, ("module attribute {}.{}", module.__name__, name), attr_names)
        finally:
            self._modules_active.discard(id(module))

    def _dispatcher(self, dispatcher: Any, py_func: FunctionType) -> None:
        if not self._once(dispatcher):
            return
        try:
            self.parts.append(b"D" + _text(_qualified_name(type(dispatcher))))
            options = getattr(dispatcher, "targetoptions", None)
            text = repr(sorted(options.items(), key=lambda kv: str(kv[0]))) if isinstance(options, dict) else ""
            self.parts.append(_text(text))
            self._function(py_func)
        except UncacheableError:
            del self._seen[id(dispatcher)]
            raise

    def _numpy(self, value: Any, label: Label) -> None:
        import numpy as np  # already loaded: the value came from it

        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise _uncacheable(label, value, "an array of Python objects")
            shape = ",".join(map(str, value.shape))
            self.parts.append(b"A" + _text(_qualified_name(type(value))) + _dtype_text(value.dtype) + _text(shape))
            # Hashed apart, so a large array adds 32 bytes to the parts rather than a copy.
            flat = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
            self.parts.append(sha256(flat).digest())
        elif isinstance(value, np.generic):
            self.parts.append(b"S" + _text(_qualified_name(type(value))) + _dtype_text(value.dtype) + _lp(value.tobytes()))
        elif isinstance(value, np.dtype):
            self.parts.append(b"Y" + _dtype_text(value))
        else:
            raise _uncacheable(label, value, "an unsupported numpy object")


def _dtype_text(dtype: Any) -> bytes:
    """A dtype in full: ``str`` alone is ``'|V8'`` for every 8-byte record."""
    return _text(dtype.str) + _text(repr(dtype.descr)) + _text(str(dtype.isalignedstruct))


# Classes of these packages are known to numba by identity; they count by qualified name.
_TRUSTED_PACKAGES = frozenset(
    {"builtins", "numpy", "numba", "math", "cmath", "operator", "enum", "collections", "typing", "ctypes"}
)


# Array libraries whose functions count by qualified name and the library's version, as numpy's
# do: their code is the library's, not the user's, and holds values no fingerprint can read
# (CuPy's FFT functions read Cython functions and per-device caches).
_ARRAY_LIBRARIES = frozenset({"cupy", "cupyx", "scipy"})


def _library_function(value: Any, module: str | None) -> bytes | None:
    """The encoding of a callable defined in one of the array libraries, or None."""
    package = (module or "").partition(".")[0]
    if package not in _ARRAY_LIBRARIES or isinstance(value, type) or not callable(value):
        return None
    version = getattr(sys.modules.get(package), "__version__", "")
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None) or type(value).__qualname__
    return b"L" + _text(f"{module}.{name}@{version if type(version) is str else ''}")


def _trusted_class(cls: type) -> bool:
    module = getattr(cls, "__module__", None) or ""
    return module.partition(".")[0] in _TRUSTED_PACKAGES and not issubclass(cls, enum.Enum)


def jitted_python_function(obj: Any) -> FunctionType | None:
    """The Python function a numba-jitted object was built from, or None if ``obj`` is not one.

    Dispatchers keep it in ``py_func``; a ``@vectorize`` ufunc (DUFunc) in its dispatcher.
    """
    py_func = getattr(obj, "py_func", None)
    if type(py_func) is FunctionType:
        return py_func
    if type(obj).__name__ == "DUFunc" and type(obj).__module__.startswith("numba"):
        py_func = getattr(getattr(obj, "_dispatcher", None), "py_func", None)
        if type(py_func) is FunctionType:
            return py_func
    return None


def _builtin(fn_globals: dict[str, Any], name: str) -> Any:
    """Look ``name`` up the way the interpreter does after the module globals."""
    space = fn_globals.get("__builtins__", builtins)
    if type(space) is ModuleType:
        space = space.__dict__
    return space.get(name, _MISSING)


def _uncacheable(label: Label, value: Any, why: str) -> UncacheableError:
    kind = type(value).__qualname__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return UncacheableError(f"{_describe(label)} is {article} {kind}, which cannot be fingerprinted ({why})")
