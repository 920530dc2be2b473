"""Python function -> LTO-IR: numba-cuda lowers it, ``fftfuse_compiler.thunk`` gives it cuFFT's prototype.

Three numba-cuda behaviours are handled here:

* a ``cuda.jit(device=True)`` callee is compiled for the *current GPU* (numba asks
  ``get_current_device()``), which fails without a GPU and ignores the requested target.
  ``_target_architecture`` answers that question with the target for the duration of our
  compile, under numba's compiler lock so no other compile sees it.
* the user's code is inlined into the generated wrapper at numba's IR level (one compile
  pipeline, not two); an epilog already in cuFFT's form, reading its data from ``user_info``
  itself, is lowered without a wrapper. When that fails, the user's function is typed on its own,
  so a wrong return kind is reported in the user's terms instead of as a numba error inside the
  wrapper.
* numba-cuda's first compile imports scipy.linalg, for nothing a GPU can use:
  ``_numpy_support_without_scipy`` says why and skips it.
"""

from __future__ import annotations

import cmath
import contextlib
import importlib
import math
import sys
from typing import Any, Iterator

from .dtypes import callback_symbol
from .forms import Form, callback_error
# The typing shared with the CPU backend lives in numba_types; its names stay importable from here.
from .numba_types import check_result_type, compile_error, numba_type, user_argument_types  # noqa: F401
from .thunk import add_thunk, compile_nvvm, ltoir_record, numba_nvvm_ir
from .wrappers import jit_tree, make_wrapper


class _TargetDevice:
    def __init__(self, cc: tuple[int, int]):
        self.compute_capability = cc


@contextlib.contextmanager
def _target_architecture(cc: tuple[int, int]) -> Iterator[None]:
    import numba.cuda.dispatcher as dispatcher
    from numba.core.compiler_lock import global_compiler_lock

    with global_compiler_lock:
        _numpy_support_without_scipy()
        original = dispatcher.get_current_device
        dispatcher.get_current_device = lambda: _TargetDevice(cc)
        try:
            yield
        finally:
            dispatcher.get_current_device = original


# Public for other kernels built from the user's functions without a GPU (the chain's one kernel).
target_architecture = _target_architecture


def _numpy_support_without_scipy() -> None:
    """Load numba-cuda's NumPy functions (``numba.cuda.np.arraymath``) without their BLAS probe.

    numba-cuda loads that module at its first compile, and the module asks, on import, whether
    scipy's BLAS is there (importing scipy.linalg: 0.13 s of a 0.8 s first compile), to pick how
    np.correlate and np.convolve compute. GPU code calls no host BLAS, and neither function types
    on the GPU in numba-cuda 0.30 either way, so here the probe answers "no" without importing
    anything. Only that import sees the answer; a layout this does not know is left alone.
    Called under numba's compiler lock, before numba's first compile can load the module.
    """
    if "numba.cuda.np.arraymath" in sys.modules:
        return
    try:
        linalg = importlib.import_module("numba.cuda.np.linalg")
    except ImportError:
        return
    probe = getattr(linalg, "ensure_blas", None)
    if probe is None:
        return

    def no_host_blas() -> None:
        raise ImportError("no host BLAS is callable from GPU code")

    linalg.ensure_blas = no_host_blas
    try:
        importlib.import_module("numba.cuda.np.arraymath")
    finally:
        linalg.ensure_blas = probe


def compile_ltoir(
    fn: Any,
    kind: str,
    form: Form,
    element_dtype: str,
    user_dtype: Any,
    arch: int,
    *,
    indirect: bool = False,
    narrow: bool = False,
    output: str = "ltoir",
    terms: Any = None,
) -> tuple[bytes, dict]:
    """Compile ``fn`` to LTO-IR under cuFFT's callback name for ``kind`` and ``element_dtype``.

    Returns the LTO-IR and metadata describing it. ``user_dtype`` is the element type of the
    user data (``user_info``); ``indirect`` makes ``user_info`` a pointer to a slot that holds
    the data pointer (see ``wrappers.make_wrapper``); ``narrow`` computes Python float literals
    in single precision (``wrappers.narrow_literals``). ``output="ptx"`` gives PTX text instead,
    for inspecting the signature. The callback has cuFFT's exact prototype and no calls left
    (``fftfuse_compiler.thunk``), so cuFFT's kernels inline it.
    """
    if output not in ("ltoir", "ptx"):
        raise ValueError(f"output must be 'ltoir' or 'ptx', got {output!r}")
    modules = callback_nvvm_ir(fn, kind, form, element_dtype, user_dtype, arch, indirect=indirect, narrow=narrow,
                               terms=terms)
    code = compile_nvvm(modules, arch, output=output)
    meta = ltoir_record(getattr(getattr(fn, "py_func", fn), "__qualname__", repr(fn)), kind, form, element_dtype,
                        str(numba_type(user_dtype if user_dtype is not None else element_dtype)), arch,
                        indirect=indirect, narrow=narrow)
    return code, meta


def callback_nvvm_ir(
    fn: Any,
    kind: str,
    form: Form,
    element_dtype: str,
    user_dtype: Any,
    arch: int,
    *,
    indirect: bool = False,
    narrow: bool = False,
    terms: Any = None,
) -> list[str]:
    """The NVVM IR modules handed to libNVVM for this callback: numba's code behind the thunk.
    ``terms``: indices, broadcast data and runtime parameters (``terms.Terms``)."""
    from numba import cuda
    from numba.core import types
    from numba.core.errors import NumbaError

    cc = (arch // 10, arch % 10)
    element = numba_type(element_dtype)
    user = numba_type(user_dtype if user_dtype is not None else element_dtype)
    info = types.CPointer(types.CPointer(user)) if indirect else types.CPointer(user)
    if kind == "prolog":
        args, ret = (types.CPointer(element), types.uint64, info, types.voidptr), element
    else:
        args, ret = (types.CPointer(element), types.uint64, element, info, types.voidptr), types.void

    def build() -> tuple[Any, Any]:
        # Inlined into a wrapper at numba's IR level: one compile pipeline for both.
        device_fn = jit_tree(fn, lambda f, o: cuda.jit(device=True, inline="always", **o)(f), narrow)
        if kind == "epilog" and form is Form.CUFFT and not indirect and not (terms and terms.params):
            # Already cuFFT's prototype: numba lowers the user's function itself. A wrapper would
            # only pass the arguments on, and cost its own typing and the inlining (3 ms a miss).
            # A prolog keeps its wrapper: its E(...) refuses a result that numba's conversion to
            # the declared return type accepts (an Optional, checked for None at run time).
            body = device_fn.py_func
        else:
            body = make_wrapper(kind, form, device_fn, element, indirect=indirect, terms=terms, target="cuda")
        # numba compiles the user's code with the options of the function it lowers: pass theirs.
        fastmath = bool((getattr(device_fn, "targetoptions", None) or {}).get("fastmath"))
        try:
            return device_fn, numba_nvvm_ir(body, ret, args, cc, fastmath=fastmath)
        except NumbaError as exc:
            return device_fn, exc

    with _target_architecture(cc):
        try:
            device_fn, modules = build()
        except RecursionError:
            raise callback_error(fn, kind, "it calls a function recursively, which numba cannot compile "
                                 "for the GPU; write the recursion as a loop") from None
        except KeyError as exc:  # numba-cuda's table of NumPy ufuncs lacks this one (e.g. complex np.exp)
            if not type(exc.args[0] if exc.args else None).__name__ == "ufunc":
                raise
            name = exc.args[0].__name__
            module = "cmath" if hasattr(cmath, name) else "math" if hasattr(math, name) else None
            hint = f" (e.g. {module}.{name})" if module else ""
            raise callback_error(fn, kind, f"numba-cuda cannot compile NumPy's {name} here for the GPU; use the math "
                                 f"or cmath module's{hint}") from None
        if isinstance(modules, Exception):
            # Type the user's function alone to say, in the user's terms, what is wrong with it.
            try:
                result = device_fn.compile_device(user_argument_types(kind, form, element, user, terms)).signature.return_type
            except NumbaError as exc:
                raise compile_error(fn, kind, exc) from None
            check_result_type(fn, kind, form, element, result)
            raise compile_error(fn, kind, modules) from None
    return add_thunk(modules, kind, element_dtype, callback_symbol(kind, element_dtype))
