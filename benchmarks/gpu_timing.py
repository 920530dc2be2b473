"""GPU time per call, shared by the GPU benchmarks: ``warmup`` calls, then ``repeats`` rounds of
``calls`` back-to-back calls between two CUDA events on the current stream."""

from __future__ import annotations

import statistics
from typing import Callable


def gpu_ms(run: Callable[[], object], calls: int, repeats: int, warmup: int) -> dict:
    """Milliseconds of GPU time per call of ``run``: the median, best and worst round."""
    import cupy as cp

    for _ in range(warmup):
        run()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(repeats):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        for _ in range(calls):
            run()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / calls)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}
