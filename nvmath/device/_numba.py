"""numba-cuda typing and lowering of device FFT objects: ``fft(data, scratch)`` and ``fft.execute(...)``.

An FFT object is a compile-time constant in a kernel (its numba type carries the description).
A call lowers to a C-ABI call of the cuFFTDx function's symbol with the arrays' data pointers,
and adds that function's LTO-IR to the kernel's link, so ``cuda.jit(link=...)`` is optional
(the same LTO-IR object is used for ``FFT.files``, so listing it there too links it once).
Traits read inside a kernel (``fft.storage_size``) are constants, usable as array shapes.

Half precision: the data of a float16 FFT is ``float16x4`` (RRII: the real parts of the two
FFTs cuFFTDx batches in one value, then their imaginary parts), the real data of an r2c/c2r one
``float16x2``. Both are numba types built here (:func:`half_vector_type`), with a constructor,
lanes ``.x .y .z .w`` and the size and alignment of cuFFTDx's ``complex<__half2>`` / ``__half2``
(8 / 4 bytes), so an array of them is what the cuFFTDx function's ``value_type*`` points to.

Registration happens once, on the first FFT object's creation (or the first use of a half
vector), and only where numba-cuda is installed: descriptors and traits need none of it.
"""

from __future__ import annotations

import functools
from typing import Any

from . import _descriptor
from ._descriptor import API_REGISTER, API_SHARED

__all__ = ["register", "linkable", "links_device_fft", "is_device_fft", "half_vector_type", "half_vector_class",
           "LOWERING_REVISION"]

#: Raised whenever the lowering below emits other code for the same FFT or half vector: it is part
#: of a device FFT's fingerprint (and of float16x2/float16x4's), so kernels kept by the kernel
#: cache are never served from an older one. (Half-precision FFTs, which execute since, typed no
#: kernel before: no stored kernel holds older code of theirs.)
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


# --- half-precision vectors ----------------------------------------------------------------------


def half_vector_type(name: str) -> Any:
    """The numba type ``float16x2`` or ``float16x4`` (None where numba-cuda is not installed)."""
    vectors = _half_vectors()
    return vectors[name][0] if vectors is not None else None


def half_vector_class(name: str) -> Any:
    """What a kernel types ``float16x2``/``float16x4`` (the constructor, or the numba type) as:
    callable like a numeric class, and a dtype for ``cuda.local.array`` and ``array.view``."""
    vectors = _half_vectors()
    if vectors is None:
        raise ImportError(f"nvmath.device.{name} is used in numba-cuda kernels; numba-cuda is not installed")
    return vectors[name][1]


@functools.lru_cache(maxsize=None)
def _half_vectors() -> dict[str, tuple[Any, Any]] | None:
    try:
        import numba.cuda  # noqa: F401
    except ImportError:
        return None
    vectors = _make_half_vectors()
    # Contexts made before these registrations (a kernel typed before any FFT existed) pick them
    # up on refresh; contexts made later install them when they are made.
    from numba.cuda.descriptor import cuda_target

    if getattr(cuda_target, "_targetctx", None) is not None:
        cuda_target.target_context.refresh()  # refreshes its typing context too
    elif getattr(cuda_target, "_typingctx", None) is not None:
        cuda_target.typing_context.refresh()
    return vectors


def _make_half_vectors() -> dict[str, tuple[Any, Any]]:
    """Build and register the numba types float16x2 and float16x4.

    Model: one unsigned integer as wide as the lanes together (``{i32}`` / ``{i64}``), so the
    size *and alignment* are those of ``__half2`` (4) and ``complex<__half2>`` (8): local and
    shared arrays of them are aligned as cuFFTDx's code assumes. A lane is a float16 (numba-cuda
    holds a float16 as an ``i16``), lane ``k`` the bits ``16k .. 16k+15`` (little endian: lane x
    is at the lowest address, as in the NumPy equivalents).
    """
    from llvmlite import ir
    from numba.core.errors import TypingError
    from numba.cuda import cgutils, types
    from numba.cuda.cudaimpl import lower_constant
    from numba.cuda.extending import (core_models, infer_getattr, lower_builtin, lower_getattr_generic, models,
                                      register_model, typeof_impl)
    from numba.cuda.typing.templates import AttributeTemplate, signature

    from ._half_dtypes import LANES, NP_DTYPES

    class HalfVectorType(types.Type):
        """``float16x2`` / ``float16x4``: ``count`` float16 lanes named x, y, z, w."""

        def __init__(self, count: int) -> None:
            self.count = count
            self.lanes = LANES[:count]
            super().__init__(name=f"float16x{count}")

        @property
        def np_dtype(self) -> Any:
            """The NumPy structured dtype of the same bytes (``nvmath.device.types.np_float16x4``)."""
            return NP_DTYPES[self.name]

        def __fftfuse_fingerprint__(self) -> str:
            return f"{self.name}/{LOWERING_REVISION}"

    class HalfVectorClass(types.Callable, types.DTypeSpec, types.Opaque):
        """The type of ``float16x4`` (or ``float16x4_type``) in a kernel, as ``class(float32)`` is
        ``np.float32``'s: calling it makes a value, and it is the dtype of arrays."""

        def __init__(self, instance_type: Any) -> None:
            self.instance_type = instance_type
            super().__init__(name=f"class({instance_type})")

        @property
        def key(self) -> Any:
            return self.instance_type

        @property
        def dtype(self) -> Any:
            return self.instance_type

        def get_call_type(self, context: Any, args: Any, kws: Any) -> Any:
            vector = self.instance_type
            args = tuple(types.unliteral(a) for a in args)
            lanes = [_lane_count(vector, a) for a in args]
            if not kws and None not in lanes and sum(lanes) == vector.count:
                return signature(vector, *args)
            forms = ("x, y (real numbers) or c (a complex number: c.real, c.imag)" if vector.count == 2 else
                     "x, y, z, w (real numbers) or two float16x2 (x, y and z, w)")
            raise TypingError(f"{vector}({', '.join(map(str, args))}{', ...' if kws else ''}) is not supported; "
                              f"{vector} takes {forms}")

        def get_call_signatures(self) -> Any:
            return (), True

        def get_impl_key(self, sig: Any) -> Any:
            return type(self)

    def _lane_count(vector: Any, arg: Any) -> int | None:
        """How many lanes of ``vector`` an argument of type ``arg`` gives (None: not an argument)."""
        if isinstance(arg, HalfVectorType):
            return arg.count
        if isinstance(arg, types.Complex) and vector.count == 2:
            return 2
        if isinstance(arg, (types.Integer, types.Float)):
            return 1
        return None

    @register_model(HalfVectorType)
    class _HalfVectorModel(models.StructModel):
        def __init__(self, dmm: Any, fe_type: Any) -> None:
            super().__init__(dmm, fe_type, [("bits", types.uint32 if fe_type.count == 2 else types.uint64)])

    register_model(HalfVectorClass)(core_models.OpaqueModel)

    @lower_constant(HalfVectorClass)
    def _class_constant(context: Any, builder: Any, typ: Any, pyval: Any) -> Any:
        return context.get_dummy_value()

    @typeof_impl.register(HalfVectorType)
    def _typeof_vector_type(val: Any, c: Any) -> Any:
        return HalfVectorClass(val)

    def unpack(context: Any, builder: Any, vector: Any, value: Any) -> list[Any]:
        """The lanes of a vector value, as numba-cuda float16 values (i16)."""
        bits = cgutils.create_struct_proxy(vector)(context, builder, value=value).bits
        lane = ir.IntType(16)
        return [builder.trunc(builder.lshr(bits, ir.Constant(bits.type, 16 * k)), lane) for k in range(vector.count)]

    def pack(context: Any, builder: Any, vector: Any, lanes: list[Any]) -> Any:
        wide = ir.IntType(16 * vector.count)
        bits = ir.Constant(wide, 0)
        for k, lane in enumerate(lanes):
            bits = builder.or_(bits, builder.shl(builder.zext(lane, wide), ir.Constant(wide, 16 * k)))
        return builder.insert_value(ir.Constant(context.get_value_type(vector), ir.Undefined), bits, 0)

    @lower_builtin(HalfVectorClass, types.VarArg(types.Any))
    def _construct(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        vector = sig.return_type
        lanes = []
        for ty, value in zip(sig.args, args):
            if isinstance(ty, HalfVectorType):
                lanes.extend(unpack(context, builder, ty, value))
            elif isinstance(ty, types.Complex):
                c = context.make_complex(builder, ty, value=value)
                lanes += [context.cast(builder, part, ty.underlying_float, types.float16) for part in (c.real, c.imag)]
            else:
                lanes.append(context.cast(builder, value, ty, types.float16))
        return pack(context, builder, vector, lanes)

    @infer_getattr
    class _Lanes(AttributeTemplate):
        key = HalfVectorType

        def generic_resolve(self, vector: Any, attr: str) -> Any:
            if attr in vector.lanes:
                return types.float16
            return None

    @lower_getattr_generic(HalfVectorType)
    def _lane(context: Any, builder: Any, vector: Any, value: Any, attr: str) -> Any:
        return unpack(context, builder, vector, value)[vector.lanes.index(attr)]

    vectors = {}
    for count in (2, 4):
        vector = HalfVectorType(count)
        vectors[vector.name] = (vector, HalfVectorClass(vector))
    return vectors


def _fft_types(fft: Any) -> tuple[Any, set[Any]]:
    """The numba type of ``fft``'s value_type, and every element type its data arrays may hold:
    value_type; for r2c/c2r also the real side's type (``float32``, or ``float16x2`` and
    ``float16`` for half precision: the same storage, read as real values)."""
    import numpy as np
    from numba.cuda import types
    from numba.np.numpy_support import from_dtype

    def numba_type(t: Any) -> Any:
        return t if isinstance(t, types.Type) else from_dtype(np.dtype(t))

    value = numba_type(fft.value_type)
    allowed = {value}
    if fft.fft_type != "c2c":  # real data may sit in the same storage
        allowed |= {numba_type(fft.input_type), numba_type(fft.output_type), numba_type(fft.precision)}
    return value, allowed


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
    _half_vectors()  # kernels of half-precision FFTs use them
    from fftfuse_compiler import kernel_cache, link_cache

    link_cache.install(links_device_fft)
    kernel_cache.install(is_device_fft)
    _registered = True
    return True


def _register(fft_class: type) -> None:
    from llvmlite import ir
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
        value, allowed = _fft_types(fft)
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
        # extern "C" void symbol(FFT::value_type* ...) (libmathdx's wrapper): value_type is
        # complex<float>/complex<double>, or complex<__half2> (float16x4, 8 bytes) for half precision.
        pointee = context.get_value_type(_fft_types(fft)[0])
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
