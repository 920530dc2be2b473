"""numba-cuda typing and lowering of device FFT objects: ``fft(data, scratch)`` and ``fft.execute(...)``.

An FFT object is a compile-time constant in a kernel (its numba type carries the description).
A call lowers to a C-ABI call of the cuFFTDx function's symbol with the arrays' data pointers,
and adds that function's LTO-IR to the kernel's link, so ``cuda.jit(link=...)`` is optional
(the same LTO-IR object is used for ``FFT.files``, so listing it there too links it once).
Traits read inside a kernel (``fft.storage_size``) are constants, usable as array shapes.

Registration happens once, on the first FFT object's creation, and only where numba-cuda is
installed: descriptors and traits need none of it.
"""

from __future__ import annotations

import functools
from typing import Any

from . import _descriptor
from ._descriptor import API_REGISTER, API_SHARED

__all__ = ["register", "linkable", "links_device_fft", "is_device_fft", "LOWERING_REVISION"]

#: Raised whenever the lowering below emits other code for the same FFT: it is part of a device
#: FFT's fingerprint, so kernels kept by the kernel cache are never served from an older one.
LOWERING_REVISION = 1


def linkable(fft: Any, api: str) -> Any:
    """The ``numba.cuda.LTOIR`` of ``fft``'s execute function for ``api``.

    One object per description and API, shared by equal FFT objects: numba links a set of
    objects, so code listed in ``link=`` and added by a call is linked once.
    """
    return _linkable(fft.spec, api)


@functools.lru_cache(maxsize=None)
def _linkable(spec: Any, api: str) -> Any:
    from numba import cuda

    artifact = _descriptor.artifact(spec, api)
    code = cuda.LTOIR(artifact.ltoir, name=f"{artifact.symbol}.ltoir")
    code._fftfuse_device_fft = True  # marks kernels whose links the link cache keeps (links_device_fft)
    return code


def links_device_fft(library: Any) -> bool:
    """Whether a numba code library links a device FFT's code (its link is then cached)."""
    return any(is_device_fft(f) for f in library._linking_files)


def is_device_fft(obj: Any) -> bool:
    """Whether ``obj`` is a device FFT or its code (kernels using one are kept by the kernel cache)."""
    return getattr(obj, "_fftfuse_device_fft", False) is True


_registered = False


def register(fft_class: type) -> bool:
    """Teach numba-cuda about ``fft_class`` objects (device FFTs); False where numba-cuda is not installed."""
    global _registered
    if _registered:
        return True
    try:
        import numba.cuda  # noqa: F401
    except ImportError:
        return False
    _register(fft_class)
    from fftfuse_compiler import kernel_cache, link_cache

    link_cache.install(links_device_fft)
    kernel_cache.install(is_device_fft)
    _registered = True
    return True


def _register(fft_class: type) -> None:
    import numpy as np
    from llvmlite import ir
    from numba.np.numpy_support import from_dtype
    from numba.cuda import types
    from numba.cuda.cudaimpl import lower_constant
    from numba.core.errors import TypingError
    from numba.cuda.extending import (intrinsic, lower_builtin, models, overload_attribute, overload_method,
                                      register_model, typeof_impl)

    class FFTType(types.Type):
        """The numba type of one FFT description (types with equal descriptions are one type)."""

        def __init__(self, fft: Any) -> None:
            self.fft = fft
            super().__init__(name=f"cufftdx.FFT({fft.spec.key()})")

    @register_model(FFTType)
    class _NoData(models.StructModel):
        def __init__(self, dmm: Any, fe_type: Any) -> None:
            super().__init__(dmm, fe_type, [])

    @lower_constant(FFTType)
    def _constant(context: Any, builder: Any, typ: Any, pyval: Any) -> Any:
        return context.get_dummy_value()

    @typeof_impl.register(fft_class)
    def _typeof(val: Any, c: Any) -> FFTType:
        return FFTType(val)

    def _attribute(name: str) -> None:
        @overload_attribute(FFTType, name, inline="always")
        def _get(fft_type):
            value = getattr(fft_type.fft, name)
            return lambda fft_type: value

    for name in ("size", "storage_size", "shared_memory_size", "stride", "elements_per_thread", "ffts_per_block",
                 "implicit_type_batching", "value_type", "input_type", "output_type", "block_dim", "direction",
                 "fft_type", "execution", "precision"):
        _attribute(name)

    def _element_type(fft: Any, data: Any, what: str) -> Any:
        value = from_dtype(np.dtype(fft.value_type))
        allowed = {value}
        if fft.fft_type != "c2c":  # real data may sit in the same storage
            allowed.add(from_dtype(np.dtype(fft.precision)))
        if not isinstance(data, types.Array):
            raise TypingError(f"{what} of a device FFT must be an array (cuda.local.array or cuda.shared.array), "
                              f"got {data}")
        if data.layout not in "CF":  # the function gets a bare pointer: the elements must be adjacent
            raise TypingError(f"{what} of a device FFT must be a contiguous array, got {data}")
        if data.dtype not in allowed:
            raise TypingError(f"{what} of this device FFT must hold {value} (its value_type), got an array of "
                              f"{data.dtype}")
        return value

    def _api(fft: Any, has_scratch: bool) -> str:
        if has_scratch or fft.execution == "Thread":
            return API_REGISTER
        return API_SHARED

    def _emit(context: Any, builder: Any, arg_types: Any, args: Any) -> Any:
        """Call the FFT's function on the arrays' data pointers; its LTO-IR joins the kernel's link."""
        from numba.cuda import cgutils

        fft = arg_types[0].fft
        has_scratch = len(arg_types) > 2 and not isinstance(arg_types[2], (types.NoneType, types.Omitted))
        api = _api(fft, has_scratch)
        context.active_code_library.add_linking_file(linkable(fft, api))
        pointee = context.get_value_type(from_dtype(np.dtype(fft.value_type)))
        pointers = []
        for array_type, array in list(zip(arg_types, args))[1:3 if has_scratch else 2]:
            ptr = cgutils.create_struct_proxy(array_type)(context, builder, value=array).data
            if ptr.type.addrspace != 0:
                ptr = builder.addrspacecast(ptr, ir.PointerType(ptr.type.pointee), "generic")
            pointers.append(builder.bitcast(ptr, ir.PointerType(pointee)))
        function_type = ir.FunctionType(ir.VoidType(), [p.type for p in pointers])
        function = cgutils.get_or_insert_function(builder.module, function_type, _descriptor.artifact(fft.spec, api).symbol)
        builder.call(function, pointers)
        return context.get_dummy_value()

    @intrinsic
    def _execute(typingctx: Any, fft_type: Any, data: Any, scratch: Any) -> Any:
        if not isinstance(fft_type, FFTType):
            return None
        fft = fft_type.fft
        if fft.spec.precision == "float16":
            raise TypingError("half-precision device FFTs give their traits here, but cannot be executed from numba "
                              "kernels yet; use np.float32 or np.float64")
        _element_type(fft, data, "the data")
        has_scratch = not isinstance(scratch, (types.NoneType, types.Omitted))
        if has_scratch:
            if fft.execution == "Thread":
                raise TypingError("a Thread FFT takes its data only: call fft(thread_data) / fft.execute(thread_data)")
            _element_type(fft, scratch, "the shared memory")
        sig = types.void(fft_type, data, scratch)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return _emit(context, builder, signature.args, args)

        return sig, codegen

    @overload_method(FFTType, "execute", inline="always")
    def _execute_method(fft_type, data, scratch=None):  # numba compares these names with the lambda's: no annotations
        return lambda fft_type, data, scratch=None: _execute(fft_type, data, scratch)

    @overload_method(FFTType, "__call__", inline="always")
    def _call_method(fft_type, data, scratch=None):
        return lambda fft_type, data, scratch=None: _execute(fft_type, data, scratch)

    # A call of the object itself is typed through __call__ above and lowered here.
    @lower_builtin(FFTType, FFTType, types.Any, types.Any)
    @lower_builtin(FFTType, FFTType, types.Any)
    def _lower_call(context, builder, sig, args):
        return _emit(context, builder, sig.args, args)
