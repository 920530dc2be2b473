"""The wording of parameters that several public functions share, defined once.

Docstrings name a shared parameter as ``{operand}``, ``{axes}``...; ``shared_doc`` fills them in.
"""

from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)

PARAMETERS = {
    "operand": """operand: a NumPy or CuPy array, a PyTorch tensor (CPU or CUDA), or any object with
            ``__cuda_array_interface__``. The result is of the operand's framework and device.""",
    "axes": """axes: the axes to transform, 1 to 3 of them, an int or a sequence (negative ones count
            from the end). Default: the last up-to-3 axes. For rfft/irfft the last of them is
            the halved one.""",
    "direction": """direction: ``FFTDirection.FORWARD`` / ``INVERSE``, ``'forward'`` / ``'inverse'``
            (any case) or -1 / 1. Default: the transform's own (forward for fft and rfft).""",
    "norm": """norm: ``'backward'`` (the inverse scaled by 1/n, SciPy's default), ``'ortho'``
            (1/sqrt(n) both ways) or ``'forward'`` (the forward scaled by 1/n), as in SciPy.
            None (the default) leaves both unscaled, as cuFFT does. The scale is fused into the
            callbacks, never a separate pass.""",
    "options": """options: an ``FFTOptions``, or a dict of its fields.""",
    "execution": """execution: ``'cuda'``, ``'cpu'``, an ``ExecutionCUDA`` / ``ExecutionCPU``, or a dict
            with ``'name'``. Default: where the operand lives. An operand in the other memory space
            is copied to where the FFT runs (with GPU callback data, for the CPU), and the result
            comes back to the operand's memory space, framework and device.""",
    "prolog": """prolog: runs on each input element as cuFFT loads it: a Python function, a dict
            ``{'fn': f, 'data': array, 'params': {name: value}}`` (data broadcasting to the array,
            values of ``f``'s keyword-only parameters; both optional), a ``DeviceCallable``, or
            LTO-IR as ``{'ltoir': bytes, 'data': pointer}``. ``f(x, i, j)`` also receives the
            element's index.""",
    "epilog": """epilog: runs on each result element as cuFFT stores it; the same forms as ``prolog``.""",
    "stream": """stream: a CuPy or PyTorch stream, or a ``cudaStream_t`` as int. Default: CuPy's
            current stream. A GPU operand run on the CPU is copied to the host and its result back
            in this stream's order; a host operand on the CPU takes none (0, CUDA's default
            stream, is allowed).""",
    "raises": """Raises:
        TypeError: a callback that cannot be compiled, or an operand or option of the wrong type.
        ValueError: an option, direction or callback data that does not fit this FFT.
        LayoutError: axes or dtypes no FFT can take (``UnsupportedLayoutError`` is the same class).
        NoGPUError: a GPU execution where CUDA finds no GPU (run with ``execution='cpu'`` instead).""",
}

# The parameters of fft, ifft, rfft and irfft, in their order.
PARAMETERS["parameters"] = "\n        ".join(
    PARAMETERS[name] for name in ("operand", "axes", "options", "execution", "prolog", "epilog", "stream",
                                  "direction", "norm")
)


def shared_doc(fn: F) -> F:
    """Fill ``{name}`` placeholders of ``fn``'s docstring with the shared parameter wording."""
    if fn.__doc__:
        # The wording is indented for a module-level docstring (4 spaces); a method's docstring
        # sits deeper, and its continuation lines must move with it or the sections misparse.
        shift = " " * max(0, _indent(fn.__doc__) - 4)
        fn.__doc__ = fn.__doc__.format(**{k: v.replace("\n", "\n" + shift) for k, v in PARAMETERS.items()})
    return fn


def _indent(doc: str) -> int:
    """The common indentation of a docstring's lines after the first (blank lines aside)."""
    widths = [len(line) - len(line.lstrip()) for line in doc.splitlines()[1:] if line.strip()]
    return min(widths, default=0)
