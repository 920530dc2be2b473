"""From a ``Plan`` and its ``Binding`` to the executor that runs it: the callbacks compiled through
the cache (GPU: LTO-IR; CPU: native loops, or plain Python in the debug mode) and the executor
built, a cuFFT plan (borrowed from the per-device plan cache for shared plans) or the CPU
executor; half precision with callbacks (GPU) or on the CPU runs their single-precision twin
(``_half``).
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from typing import Any, Callable

from ._binding import Binding
from ._callbacks import CallbackSpec
from ._half import PromotedCpuExecutor, PromotedGpuExecutor, is_half, promoted
from ._log import fft_logger, log_compiled
from ._options import FFTOptions
from ._planner import Plan, device_arch, gpu_plan_key, indirect_callback


def build_executor(plan: Plan, binding: Binding, options: FFTOptions, owner: Any, *, device_id: int | None = None,
                   threads: int | None = None) -> tuple[Any, Callable[[], Any] | None]:
    """``(executor, release)``: the executor of ``plan`` and what gives it back (None: nothing to),
    called once when ``owner`` is done with it, or when ``owner`` is collected. ``device_id`` is
    the GPU a "cuda" plan runs on; ``threads`` the CPU executor's (None: all cores)."""
    if plan.target == "cuda":
        return _gpu_executor(plan, binding, options, owner, device_id)
    return _cpu_executor(plan, binding, options, threads), None


def _gpu_executor(plan: Plan, binding: Binding, options: FFTOptions, owner: Any, device: int) -> tuple[Any, Any]:
    from . import _gpu

    problem = plan.problem
    attached = [_attach(s, plan, binding, options, device) if s is not None else None
                for s in (plan.prolog, plan.epilog)]
    patient, allocator = options.patient_jit, options.allocator
    # cuFFT has no half-precision callbacks: with callbacks, half runs in single precision (_half).
    promote = is_half(problem) and any(attached)
    run_problem = promoted(problem) if promote else problem
    build = lambda: _gpu.GpuPlan(run_problem, attached[0], attached[1], device,  # noqa: E731
                                 patient_jit=patient, allocator=allocator)
    wrap = (lambda cufft_plan: PromotedGpuExecutor(problem, cufft_plan)) if promote else (lambda cufft_plan: cufft_plan)
    if plan.shared:
        # A plan's workspace comes from its allocator: plans of other allocators are others.
        key = gpu_plan_key(device, run_problem, patient, allocator, tuple(attached))
        created = _gpu.plan_cache.created
        cufft_plan = _gpu.plan_cache.acquire(key, build)
        release = weakref.finalize(owner, _gpu.plan_cache.release, cufft_plan)
        log = fft_logger(options)
        if _gpu.plan_cache.created == created and log.isEnabledFor(logging.DEBUG):
            log.debug("reused a cached cuFFT plan for %s n=%s on GPU %d", problem.fft_type, problem.fft_lengths, device)
        return wrap(cufft_plan), release
    cufft_plan = build()
    return wrap(cufft_plan), weakref.finalize(owner, cufft_plan.free)


def _attach(spec: CallbackSpec, plan: Plan, binding: Binding, options: FFTOptions, device: int) -> Any:
    from fftfuse_compiler import compile_callback

    from ._gpu import AttachedCallback

    element = plan.element_dtype(spec.kind)
    laid_out = binding.side(spec.kind).laid
    pointer = int(laid_out.data.ptr) if laid_out is not None else (spec.pointer or 0)
    arch = device_arch(device)
    if spec.ltoir is not None:
        # nvmath-python's form: user_info is the data pointer itself, fixed in the plan.
        _check_raw_ltoir(spec, element, arch)
        return AttachedCallback(spec.kind, spec.ltoir, element, indirect=False, pointer=pointer, name=spec.name,
                                toolkit=None)
    # Runtime parameters live in the slot (after the data pointer), rewritten in stream order.
    terms = binding.terms(spec.kind)
    params = terms is not None and bool(terms.params)
    indirect = indirect_callback(plan.shared, spec.data is not None, params)
    started = time.perf_counter()
    if spec.source is not None:
        from fftfuse_compiler.cuda_source import compile_source

        compiled = compile_source(spec.source, spec.kind, element, name=spec.source_name, compute_capability=arch,
                                  indirect=indirect)
    else:
        compiled = compile_callback(spec.fn, spec.kind, element, spec.data.dtype if spec.data else None,
                                    compute_capability=arch, indirect=indirect, literals=options.float_literals,
                                    terms=terms)
    log_compiled(options, spec.name, compiled.source, len(compiled.ltoir), time.perf_counter() - started)
    return AttachedCallback(spec.kind, compiled.ltoir, element, indirect=indirect,
                            pointer=None if indirect else pointer, name=spec.name, toolkit=compiled.toolkit,
                            slot_bytes=terms.slot_bytes if params else 8)


def _cpu_executor(plan: Plan, binding: Binding, options: FFTOptions, threads: int | None) -> Any:
    from fftfuse_compiler.cpu_backend import compile_cpu, python_callback

    from ._cpu import CpuExecutor

    debug = plan.executor == "cpu-debug"
    compiled = []
    for spec in (plan.prolog, plan.epilog):
        if spec is None:
            compiled.append(None)
            continue
        if spec.source is not None:
            raise ValueError(f"{spec.name}: CUDA C++ callbacks run only on the GPU; on the CPU pass the Python "
                             f"function (prolog=f or {{'fn': f, 'data': array}})")
        if spec.fn is None:
            raise ValueError(f"{spec.name}: LTO-IR runs only on the GPU; on the CPU pass the Python function "
                             f"(prolog=f or {{'fn': f, 'data': array}})")
        args = (spec.fn, spec.kind, plan.element_dtype(spec.kind), spec.data.dtype if spec.data else None)
        terms = binding.terms(spec.kind)
        compiled.append(python_callback(*args, terms=terms) if debug else
                        compile_cpu(*args, literals=options.float_literals, terms=terms))
    problem = plan.problem
    half = is_half(problem)  # run in single precision, rounded to half (_half)
    executor = CpuExecutor(promoted(problem) if half else problem, compiled[0], compiled[1], workers=threads,
                           debug=debug, engine=options.cpu_engine)
    return PromotedCpuExecutor(problem, executor) if half else executor


def _check_raw_ltoir(spec: CallbackSpec, element: str, arch: int) -> None:
    """LTO-IR given as bytes is opaque: link it against cuFFT's prototype before cuFFT does."""
    found = _ltoir_matches(spec.ltoir, spec.kind, element, arch)
    if found is True:
        return
    side = "input" if spec.kind == "prolog" else "output"
    what = f"a {found[0]} for {found[1]} elements" if found else "not a cuFFT callback this FFT can link"
    raise TypeError(
        f"{spec.name}: this LTO-IR is {what}, but it was passed as the {spec.kind} of an FFT whose {side} is "
        f"{element}. Compile it with compile_{spec.kind}(fn, {element!r}, ...)"
    )


@functools.lru_cache(maxsize=64)
def _ltoir_matches(ltoir: bytes, kind: str, element: str, arch: int) -> Any:
    """True when ``ltoir`` defines the callback cuFFT will look for, else what it defines (or None)."""
    from fftfuse_compiler.dtypes import ELEMENT_DTYPES, KINDS
    from fftfuse_compiler.linkcheck import LinkCheckError, link_check

    def links(k: str, d: str) -> bool:
        try:
            link_check(ltoir, k, d, arch)
            return True
        except LinkCheckError:
            return False

    if links(kind, element):
        return True
    return next(((k, d) for k in KINDS for d in ELEMENT_DTYPES if (k, d) != (kind, element) and links(k, d)), None)
