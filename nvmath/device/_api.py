"""The public device FFT: ``FFT(...)`` (nvmath-python 1.0's spelling) and ``fft(...)`` (the earlier one).

Both describe one cuFFTDx FFT for numba-cuda kernels. Creating one checks every value (a bad
one raises ValueError naming what was expected) and, for ``"suggested"`` knobs, asks cuFFTDx;
traits are read on first use, and the device function's LTO-IR is generated when a kernel
first needs it (or ``.files`` is read), through the persistent cache.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from . import _descriptor as dsc

__all__ = ["FFT", "fft", "Dim3", "ComputeCapability", "current_device_sm"]


class Dim3(NamedTuple):
    """CUDA block dimensions; a tuple, so it goes straight into a kernel launch."""

    x: int = 1
    y: int = 1
    z: int = 1


class ComputeCapability(NamedTuple):
    """A GPU architecture: ``ComputeCapability(9, 0)`` is sm_90.

    >>> ComputeCapability(9, 0).integer
    90
    """

    major: int
    minor: int

    @property
    def integer(self) -> int:
        """The architecture as one number, major x 10 + minor (``90`` for sm_90)."""
        return self.major * 10 + self.minor


def current_device_sm() -> ComputeCapability:
    """The current GPU's architecture, for ``FFT(sm=...)``: what ``sm=None`` targets (a GPU newer
    than cuFFTDx knows gets the newest one it knows). Raises ValueError where no GPU is usable."""
    arch = dsc.parse_arch(None)
    return ComputeCapability(arch // 10, arch % 10)


def _numpy_type(name: str) -> Any:
    """The element type of a value-type name: a NumPy scalar type (``np.complex64``), or for half
    precision nvmath.device's numba vector types ``float16x4_type`` (``complex<__half2>``: RRII) and
    ``float16x2_type`` (``__half2``); where numba-cuda is not installed, their NumPy equivalents
    ``np_float16x4`` / ``np_float16x2`` (structured dtypes of the same bytes)."""
    import numpy as np

    if name in ("float16x2", "complex32", "float16x4"):
        from . import _numba
        from ._half_dtypes import NP_DTYPES

        vector = "float16x4" if name == "float16x4" else "float16x2"
        numba_type = _numba.half_vector_type(vector)
        return NP_DTYPES[vector] if numba_type is None else numba_type
    return getattr(np, name)


class FFT:
    """A cuFFTDx FFT to call from numba-cuda kernels.

    Args:
        size: the FFT's length.
        precision: the real type of the data: ``np.float32``, ``np.float64`` or ``np.float16`` (half
            precision computes two FFTs at once in one value: see :mod:`nvmath.device.types`).
        fft_type: ``"c2c"``, ``"r2c"`` or ``"c2r"``.
        execution: ``"Block"`` (the threads of a block compute together, with shared memory) or
            ``"Thread"`` (each thread computes its own FFTs).
        sm: the target architecture (``90``, ``(9, 0)``, ``"sm_90"``); default: the current GPU's.
        direction: ``"forward"`` or ``"inverse"``; defaults to forward for r2c, inverse for c2r.
        ffts_per_block: how many FFTs a block computes (Block execution): a positive integer,
            ``"suggested"`` (cuFFTDx's choice for performance) or None (cuFFTDx's default).
        elements_per_thread: how many elements each thread holds, same values as ``ffts_per_block``.
        real_fft_options: for r2c/c2r, ``{"complex_layout": "natural" | "packed" | "full",
            "real_mode": "normal" | "folded"}``.

    In a kernel, ``fft.execute(thread_data, shared_mem)`` (or ``fft(thread_data, shared_mem)``)
    transforms ``thread_data``, a local array of ``storage_size`` elements of ``value_type``, with
    ``shared_mem`` (``shared_memory_size`` bytes of dynamic shared memory) as scratch;
    ``fft.execute(shared_data)`` (Block) transforms data held in shared memory;
    ``fft.execute(thread_data)`` (Thread) needs no shared memory. Element ``i`` of a thread's
    data is element ``threadIdx.x + i * stride`` of its FFT.
    """

    _fftfuse_device_fft = True  # kernels using one are kept by the kernel cache (_numba.is_device_fft)

    def __init__(self, size: int, precision: Any, fft_type: str, execution: str, *, sm: Any = None,
                 direction: str | None = None, ffts_per_block: Any = None, elements_per_thread: Any = None,
                 real_fft_options: dict | None = None) -> None:
        self._spec = dsc.make_spec(size=size, precision=precision, fft_type=fft_type, execution=execution, sm=sm,
                                   direction=direction, ffts_per_block=ffts_per_block,
                                   elements_per_thread=elements_per_thread, real_fft_options=real_fft_options)
        from . import _numba

        _numba.register(FFT)

    @property
    def spec(self) -> dsc.Spec:
        """The checked description (hashable: equal descriptions are one FFT for numba and the cache)."""
        return self._spec

    def __fftfuse_fingerprint__(self) -> str:
        """What decides the code of a kernel calling this FFT (fftfuse_compiler.fingerprint's protocol):
        the description, the versions of libmathdx, cuFFTDx and the toolchain (the key of its
        LTO-IR in the store) and the revision of its numba lowering."""
        from . import _numba

        return f"{dsc.artifact_key(self._spec, dsc.API_REGISTER)}/{_numba.LOWERING_REVISION}"

    def __repr__(self) -> str:
        s = self._spec
        return (f"FFT(size={s.size}, precision=np.{s.precision}, fft_type={s.fft_type!r}, execution={s.execution!r}, "
                f"sm={s.arch}, direction={s.direction!r}, ffts_per_block={self.ffts_per_block}, "
                f"elements_per_thread={self.elements_per_thread})")

    # What was asked --------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._spec.size

    @property
    def precision(self) -> Any:
        import numpy as np

        return getattr(np, self._spec.precision)

    @property
    def fft_type(self) -> str:
        return self._spec.fft_type

    @property
    def direction(self) -> str:
        return self._spec.direction

    @property
    def execution(self) -> str:
        return self._spec.execution

    @property
    def sm(self) -> ComputeCapability:
        return ComputeCapability(self._spec.arch // 10, self._spec.arch % 10)

    @property
    def real_fft_options(self) -> dict | None:
        options = self._spec.real_fft_options
        return dict(options) if options is not None else None

    # What cuFFTDx decided ----------------------------------------------------------------------
    @functools.cached_property
    def _traits(self) -> dsc.Traits:
        return dsc.traits(self._spec)

    @property
    def ffts_per_block(self) -> int | None:
        """FFTs a block computes (Block execution; None for Thread)."""
        return self._traits.ffts_per_block

    @property
    def elements_per_thread(self) -> int:
        """Elements of its FFT each thread holds."""
        return self._traits.elements_per_thread

    @property
    def value_type(self) -> Any:
        """Element type of the thread data: np.complex64 for float32 FFTs, np.complex128 for float64,
        ``float16x4_type`` for float16 (one element of two batched FFTs: real, real, imaginary,
        imaginary; see :mod:`nvmath.device.types`)."""
        return _numpy_type(self._traits.value_type)

    @property
    def input_type(self) -> Any:
        """Element type of the input: value_type, or the real type for r2c (``float16x2_type`` for float16)."""
        return _numpy_type(self._traits.input_type)

    @property
    def output_type(self) -> Any:
        """Element type of the output: value_type, or the real type for c2r (``float16x2_type`` for float16)."""
        return _numpy_type(self._traits.output_type)

    @property
    def storage_size(self) -> int:
        """Length of the per-thread array (``cuda.local.array(storage_size, value_type)``)."""
        return self._traits.storage_size

    @property
    def shared_memory_size(self) -> int | None:
        """Bytes of dynamic shared memory a block needs (Block execution; None for Thread)."""
        return self._traits.shared_memory_size

    @property
    def stride(self) -> int:
        """Distance, in FFT elements, between consecutive elements of one thread's data."""
        return self._traits.stride

    @property
    def block_dim(self) -> Dim3 | None:
        """Block dimensions to launch with (Block execution; None for Thread)."""
        dims = self._traits.block_dim
        return Dim3(*dims) if dims is not None else None

    @property
    def implicit_type_batching(self) -> int:
        """FFTs batched in one value_type element (2 for half precision, else 1). A half-precision Block
        FFT computes ``ffts_per_block`` FFTs with ``block_dim.y == ffts_per_block // 2`` rows of
        threads, each row two FFTs; a Thread one computes two FFTs per thread."""
        return self._traits.implicit_type_batching

    @property
    def input_length(self) -> int:
        return self._traits.input_length

    @property
    def output_length(self) -> int:
        return self._traits.output_length

    def valid(self, *knobs: str) -> list[tuple[int, ...]]:
        """The combinations of ``knobs`` (``"elements_per_thread"``, ``"ffts_per_block"``) cuFFTDx implements
        for this FFT, e.g. ``FFT(...).valid("elements_per_thread", "ffts_per_block")``."""
        base = self._spec._replace(ffts_per_block=None, elements_per_thread=None)
        return dsc.valid_knobs(base, knobs)

    # Code ------------------------------------------------------------------------------------
    def _artifact(self, api: str) -> dsc.Artifact:
        return dsc.artifact(self._spec, api)

    @property
    def ltoir(self) -> bytes:
        """LTO-IR of the execute function (register data with shared scratch for Block)."""
        return self._artifact(dsc.API_REGISTER).ltoir

    @property
    def symbol(self) -> str:
        return self._artifact(dsc.API_REGISTER).symbol

    @property
    def files(self) -> list[Any]:
        """The code to link, for ``cuda.jit(link=fft.files)`` (optional: calling it links it too)."""
        from . import _numba

        return [_numba.linkable(self, dsc.API_REGISTER)]

    def execute(self, *args: Any) -> None:
        raise RuntimeError("FFT.execute() runs inside a numba-cuda kernel (@cuda.jit) only")

    def __call__(self, *args: Any) -> None:
        raise RuntimeError("a device FFT is called inside a numba-cuda kernel (@cuda.jit) only")



def fft(*, fft_type: str, size: int, precision: Any, direction: str | None = None, execution: str = "Block",
        ffts_per_block: Any = None, elements_per_thread: Any = None, sm: Any = None,
        real_fft_options: dict | None = None, compiler: str | None = "numba") -> FFT:
    """The earlier spelling of :class:`FFT`: keywords only, ``compiler="numba"``.

    The result is called in a kernel as ``fft_fwd(thread_data, shared_mem)`` and its ``.files`` go
    into ``cuda.jit(link=...)``.
    """
    if compiler not in ("numba", None):
        raise ValueError(f"compiler={compiler!r} is not supported; expected 'numba' (numba-cuda kernels)")
    return FFT(size, precision, fft_type, execution, sm=sm, direction=direction, ffts_per_block=ffts_per_block,
               elements_per_thread=elements_per_thread, real_fft_options=real_fft_options)
