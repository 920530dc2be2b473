"""cuFFTDx descriptors: the checked description of one device FFT, its traits and its LTO-IR.

:func:`make_spec` checks every value a user gives before libmathdx is asked anything, so a bad
value fails with a message that says what was expected. :func:`traits` reads the traits off
libmathdx (no code is generated for that). :func:`ltoir` generates the device function's
LTO-IR through the project's content-addressed store: NVRTC takes seconds per descriptor, so
each one is compiled once per machine. The key holds the descriptor, the architecture, the
versions of libmathdx and cuFFTDx and the toolchain stamp (a new NVRTC or numba-cuda never
reads LTO-IR made by an old one).
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, NamedTuple

from . import _mathdx as mdx

__all__ = ["Spec", "Traits", "make_spec", "traits", "ltoir", "valid_knobs", "API_REGISTER", "API_SHARED"]

# How execute() receives its data (cufftdxApi): in registers with shared scratch memory, or in
# shared memory only.
API_REGISTER = "register_memory"
API_SHARED = "shared_memory"
_API_CODES = {API_REGISTER: 0, API_SHARED: 1}

_PRECISIONS = {"float16": 3, "float32": 5, "float64": 6}  # commondxPrecision
_FFT_TYPES = {"c2c": 0, "r2c": 1, "c2r": 2}
_DIRECTIONS = {"forward": 0, "inverse": 1}
_EXECUTIONS = {"Thread": 0, "Block": 1}
_COMPLEX_LAYOUTS = {"natural": 0, "packed": 1, "full": 2}
_REAL_MODES = {"normal": 0, "folded": 1}
_KNOBS = {"elements_per_thread": mdx.KNOB_ELEMENTS_PER_THREAD, "ffts_per_block": mdx.KNOB_FFTS_PER_BLOCK}

# commondxValueType -> the name of the element type (NumPy's where NumPy has it).
VALUE_TYPE_NAMES = {
    7: "float16", 6: "float16x2", 8: "complex32", 9: "float16x4",
    12: "float32", 13: "complex64", 14: "float64", 15: "complex128",
}

# The architectures cuFFTDx generates code for (compute capability x 10).
MIN_ARCH, MAX_ARCH = 70, 121


class Spec(NamedTuple):
    """A complete, checked cuFFTDx description (hashable: it keys caches)."""

    size: int
    precision: str  # "float16", "float32", "float64"
    fft_type: str
    direction: str
    execution: str
    ffts_per_block: int | None  # None: cuFFTDx's default
    elements_per_thread: int | None
    real_fft_options: tuple[tuple[str, str], ...] | None
    arch: int  # 90 for sm_90

    def key(self) -> str:
        """A stable text form of the description, for cache keys."""
        return repr(tuple(self))


class Traits(NamedTuple):
    """What cuFFTDx decided for a description (see the FFT class for each one's meaning)."""

    value_type: str
    input_type: str
    output_type: str
    storage_size: int
    stride: int
    elements_per_thread: int
    implicit_type_batching: int
    input_length: int
    output_length: int
    block_dim: tuple[int, int, int] | None  # Block execution only
    shared_memory_size: int | None
    ffts_per_block: int | None
    suggested_ffts_per_block: int | None


def _choice(name: str, value: Any, choices: dict[str, Any]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; expected one of {', '.join(map(repr, choices))}")
    return value


def precision_name(precision: Any) -> str:
    """Canonical name of a real precision given as np.float32, "float32", np.dtype, numba's float32 ..."""
    name = None
    if isinstance(precision, str):
        name = precision
    else:
        name = getattr(precision, "__name__", None) or getattr(precision, "name", None)
        if name is None:
            try:
                import numpy as np

                name = np.dtype(precision).name
            except TypeError:
                name = None
    if name not in _PRECISIONS:
        raise ValueError(
            f"precision={precision!r} is not supported; expected the real type of the FFT's data: np.float16, "
            "np.float32 or np.float64 (complex data of np.complex64 has precision np.float32)"
        )
    return name


def _count(name: str, value: Any) -> int | None | str:
    if value is None or value == "suggested":
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name}={value!r} is not supported; expected a positive integer, 'suggested' or None")
    return int(value)


def _real_options(options: Any) -> tuple[tuple[str, str], ...] | None:
    if options is None:
        return None
    if not isinstance(options, dict) or set(options) - {"complex_layout", "real_mode"}:
        raise ValueError(
            f"real_fft_options={options!r} is not supported; expected a dict with 'complex_layout' "
            f"({', '.join(map(repr, _COMPLEX_LAYOUTS))}) and 'real_mode' ({', '.join(map(repr, _REAL_MODES))})"
        )
    layout = _choice("real_fft_options['complex_layout']", options.get("complex_layout", "natural"), _COMPLEX_LAYOUTS)
    mode = _choice("real_fft_options['real_mode']", options.get("real_mode", "normal"), _REAL_MODES)
    return (("complex_layout", layout), ("real_mode", mode))


def parse_arch(sm: Any) -> int:
    """``sm`` as architecture x 10 (90), from 90, "90", "sm_90", (9, 0), "9.0" or a ComputeCapability-like
    (.major, .minor); None: the current GPU's."""
    if sm is None:
        from fftfuse_compiler.toolchain import current_device_arch

        arch = current_device_arch()
        if arch is None:
            raise ValueError(
                "sm=None asks for the current GPU's architecture, but no CUDA GPU is usable here; pass sm= "
                "explicitly (e.g. sm=90 or sm=(9, 0)) to build descriptors and code without a GPU"
            )
        # A GPU newer than cuFFTDx knows runs code built for the newest one it knows (LTO-IR links
        # for newer architectures).
        arch = min(arch, MAX_ARCH)
    elif hasattr(sm, "major") and hasattr(sm, "minor"):
        arch = int(sm.major) * 10 + int(sm.minor)
    else:
        from fftfuse_compiler.toolchain import parse_compute_capability

        try:
            arch = parse_compute_capability(sm)
        except ValueError:
            raise ValueError(f"sm={sm!r} is not understood; pass it as 90, '90', 'sm_90' or (9, 0)") from None
    if not MIN_ARCH <= arch <= MAX_ARCH:
        raise ValueError(
            f"sm={sm!r} (sm_{arch}) is outside the architectures cuFFTDx generates code for "
            f"(sm_{MIN_ARCH} to sm_{MAX_ARCH})"
        )
    return arch


def make_spec(*, size: Any, precision: Any, fft_type: Any, execution: Any, sm: Any = None, direction: Any = None,
              ffts_per_block: Any = None, elements_per_thread: Any = None, real_fft_options: Any = None) -> Spec:
    """Check every value and resolve the defaults and ``"suggested"`` knobs into a :class:`Spec`."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
        raise ValueError(f"size={size!r} is not supported; expected a positive integer (the FFT's length)")
    precision = precision_name(precision)
    fft_type = _choice("fft_type", fft_type, _FFT_TYPES)
    execution = _choice("execution", execution, _EXECUTIONS)
    if direction is None:
        if fft_type == "c2c":
            raise ValueError("direction is required for a c2c FFT; expected 'forward' or 'inverse'")
        direction = "forward" if fft_type == "r2c" else "inverse"
    direction = _choice("direction", direction, _DIRECTIONS)
    if (fft_type, direction) in (("r2c", "inverse"), ("c2r", "forward")):
        expected = "forward" if fft_type == "r2c" else "inverse"
        raise ValueError(f"an {fft_type} FFT is {expected}; got direction={direction!r} (leave it out or pass {expected!r})")
    fpb = _count("ffts_per_block", ffts_per_block)
    ept = _count("elements_per_thread", elements_per_thread)
    if execution == "Thread" and fpb is not None:
        raise ValueError("ffts_per_block applies to execution='Block' only; leave it out for 'Thread'")
    options = _real_options(real_fft_options)
    if options is not None and fft_type == "c2c":
        raise ValueError("real_fft_options applies to r2c and c2r FFTs only")
    arch = parse_arch(sm)
    spec = Spec(int(size), precision, fft_type, direction, execution, None, None, options, arch)
    if ept == "suggested" or fpb == "suggested":
        base = spec._replace(elements_per_thread=None if ept == "suggested" else ept)
        found = traits(base)
        ept = found.elements_per_thread if ept == "suggested" else ept
        if fpb == "suggested":
            fpb = traits(base._replace(elements_per_thread=ept)).suggested_ffts_per_block
    spec = spec._replace(ffts_per_block=fpb, elements_per_thread=ept)
    _check_supported(spec)
    return spec


def _descriptor(spec: Spec, api: str = API_REGISTER) -> mdx.Descriptor:
    """A libmathdx descriptor set to ``spec``; the caller closes it."""
    d = mdx.Descriptor()
    try:
        d.set(mdx.OP_API, _API_CODES[api])
        d.set(mdx.OP_SM, spec.arch * 10)
        d.set(mdx.OP_SIZE, spec.size)
        d.set(mdx.OP_PRECISION, _PRECISIONS[spec.precision])
        d.set(mdx.OP_TYPE, _FFT_TYPES[spec.fft_type])
        d.set(mdx.OP_DIRECTION, _DIRECTIONS[spec.direction])
        d.set(mdx.OP_EXECUTION, _EXECUTIONS[spec.execution])
        if spec.real_fft_options is not None:
            options = dict(spec.real_fft_options)
            d.set(mdx.OP_REAL_FFT_OPTIONS,
                  (_COMPLEX_LAYOUTS[options["complex_layout"]], _REAL_MODES[options["real_mode"]]))
        if spec.ffts_per_block is not None:
            d.set(mdx.OP_FFTS_PER_BLOCK, spec.ffts_per_block)
        if spec.elements_per_thread is not None:
            d.set(mdx.OP_ELEMENTS_PER_THREAD, spec.elements_per_thread)
    except BaseException:
        d.close()
        raise
    return d


def _describe(spec: Spec) -> str:
    parts = [f"{spec.fft_type} size {spec.size}", spec.precision, spec.direction, spec.execution, f"sm_{spec.arch}"]
    if spec.ffts_per_block is not None:
        parts.append(f"ffts_per_block={spec.ffts_per_block}")
    if spec.elements_per_thread is not None:
        parts.append(f"elements_per_thread={spec.elements_per_thread}")
    return ", ".join(parts)


def _check_supported(spec: Spec) -> None:
    """Refuse a description cuFFTDx has no implementation for, saying which knobs it does have."""
    with _descriptor(spec) as d:
        if d.is_supported():
            return
    hint = ""
    if spec.execution == "Block":
        base = spec._replace(ffts_per_block=None, elements_per_thread=None)
        try:
            with _descriptor(base) as d:
                if d.is_supported():
                    pairs = sorted(d.knobs((mdx.KNOB_ELEMENTS_PER_THREAD, mdx.KNOB_FFTS_PER_BLOCK)))
                    shown = ", ".join(f"({e}, {f})" for e, f in pairs)
                    hint = f"; (elements_per_thread, ffts_per_block) pairs it has: {shown}"
        except mdx.MathDxError:
            pass
    raise ValueError(f"cuFFTDx has no implementation of this FFT ({_describe(spec)}){hint}")


@functools.lru_cache(maxsize=256)
def traits(spec: Spec) -> Traits:
    """The traits libmathdx reports for ``spec`` (no code is generated)."""
    try:
        with _descriptor(spec) as d:
            block = spec.execution == "Block"
            return Traits(
                value_type=VALUE_TYPE_NAMES.get(d.value_type(mdx.TRAIT_VALUE_TYPE), "unknown"),
                input_type=VALUE_TYPE_NAMES.get(d.value_type(mdx.TRAIT_INPUT_TYPE), "unknown"),
                output_type=VALUE_TYPE_NAMES.get(d.value_type(mdx.TRAIT_OUTPUT_TYPE), "unknown"),
                storage_size=d.trait(mdx.TRAIT_STORAGE_SIZE),
                stride=d.trait(mdx.TRAIT_STRIDE),
                elements_per_thread=d.trait(mdx.TRAIT_ELEMENTS_PER_THREAD),
                implicit_type_batching=d.trait(mdx.TRAIT_IMPLICIT_TYPE_BATCHING),
                input_length=d.trait(mdx.TRAIT_INPUT_LENGTH),
                output_length=d.trait(mdx.TRAIT_OUTPUT_LENGTH),
                block_dim=d.traits(mdx.TRAIT_BLOCK_DIM, 3) if block else None,
                shared_memory_size=d.trait(mdx.TRAIT_SHARED_MEMORY_SIZE) if block else None,
                ffts_per_block=d.trait(mdx.TRAIT_FFTS_PER_BLOCK) if block else None,
                suggested_ffts_per_block=d.trait(mdx.TRAIT_SUGGESTED_FFTS_PER_BLOCK) if block else None,
            )
    except mdx.MathDxError as exc:
        raise exc.with_context(f"reading the traits of {_describe(spec)}")


def valid_knobs(spec: Spec, knobs: tuple[str, ...]) -> list[tuple[int, ...]]:
    """The combinations of ``knobs`` ("elements_per_thread", "ffts_per_block") cuFFTDx implements."""
    unknown = [k for k in knobs if k not in _KNOBS]
    if unknown or not knobs:
        raise ValueError(f"knobs {list(knobs)} are not supported; expected one or both of {', '.join(map(repr, _KNOBS))}")
    with _descriptor(spec) as d:
        return d.knobs(tuple(_KNOBS[k] for k in knobs))


class Artifact(NamedTuple):
    """The LTO-IR of one descriptor's device function."""

    ltoir: bytes
    symbol: str
    isa: int
    key: str
    source: str  # "compiled" or "cache"


def artifact_key(spec: Spec, api: str) -> str:
    """The store key of ``spec``'s LTO-IR: everything that decides the bytes libmathdx produces."""
    from fftfuse_cache import artifact_key as store_key
    from fftfuse_compiler.toolchain import toolchain_stamp

    return store_key(target="cufftdx-ltoir", descriptor=spec.key(), api=api, arch=spec.arch,
                     libmathdx=list(mdx.version()), cufftdx=list(mdx.cufftdx_version()),
                     library=mdx.library_path(), toolchain=toolchain_stamp())


def ltoir(spec: Spec, api: str = API_REGISTER, store: Any = None) -> Artifact:
    """LTO-IR of ``spec``'s execute function (``api``: how it takes its data), from the store when there."""
    from fftfuse_cache import ArtifactMeta, compiled_through, default_store
    from fftfuse_compiler.toolchain import toolchain_stamp

    if store is None:
        store = default_store()
    key = artifact_key(spec, api)

    def compile_now() -> tuple[bytes, ArtifactMeta]:
        try:
            with _descriptor(spec, api) as d:
                symbol = d.trait_str(mdx.TRAIT_SYMBOL_NAME)
                # Generic architecture (not sm_90a): it links into kernels built for sm_90 and sm_90a alike.
                code, isa = d.ltoir(spec.arch, arch_specific=False)
        except mdx.MathDxError as exc:
            raise exc.with_context(f"generating the code of {_describe(spec)}")
        return code, ArtifactMeta("cufftdx-ltoir", "cufftdx", None, spec.precision, None, spec.arch, symbol,
                                  toolchain=toolchain_stamp(),
                                  extra={"symbol": symbol, "isa": isa, "descriptor": spec.key(), "api": api})

    found = compiled_through(store, key, {"target": "cufftdx-ltoir", "kind": "cufftdx", "arch": spec.arch,
                                          "descriptor": spec.key(), "api": api}, compile_now)
    return Artifact(found.payload, found.meta.extra["symbol"], found.meta.extra["isa"], key, found.source)


@functools.lru_cache(maxsize=256)
def artifact(spec: Spec, api: str = API_REGISTER) -> Artifact:
    """As :func:`ltoir` through the default store, kept for the process (one object per description)."""
    return ltoir(spec, api)
