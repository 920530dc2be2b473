"""fftfuse-demo: a convolution with its filter fused into the FFT, checked against the unfused one.

Runs on the GPU when CuPy sees one, else on the CPU. Prints the device, the sizes, the
compile (and whether it came from the cache), fused and unfused timings, and the speed-up. On
the CPU it also prints the FFT engine each call runs on (chosen when the first call plans: see
``FFTOptions.cpu_engine``), and where the fused call is still the slower one, why.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable


def _gpu() -> Any:
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:
        pass
    return None


def _median_ms(run: Callable[[], Any], sync: Callable[[], None], repeats: int) -> float:
    """Per-call time of ``repeats`` back-to-back calls (the GPU overlaps them with the host's
    work, as in a real pipeline), median of five such rounds."""
    run()
    sync()
    rounds = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeats):
            run()
        sync()
        rounds.append((time.perf_counter() - t) * 1e3 / repeats)
    return statistics.median(rounds)


def apply_filter(x, h):
    """The epilog: multiply each FFT output element by the filter's element at the same offset."""
    return x * h


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fftfuse-demo", description=__doc__)
    ap.add_argument("--batch", type=int, default=None, help="signals per batch (default: 32768 GPU, 2048 CPU)")
    ap.add_argument("--n", type=int, default=1024, help="signal length")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    args = ap.parse_args(argv)

    import numpy as np

    import nvmath
    from compiler import compile_callback

    cp = None if args.cpu else _gpu()
    xp = cp if cp is not None else np
    batch = args.batch or (32768 if cp is not None else 2048)
    n = args.n
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((batch, n)) + 1j * rng.standard_normal((batch, n))).astype(np.complex64)
    # A low-pass filter (scaled by 1/n, so the unnormalized inverse FFT comes back to scale).
    freq = np.fft.fftfreq(n)
    h = np.broadcast_to((np.abs(freq) < 0.1).astype(np.complex64) / n, (batch, n)).copy()
    x, h = xp.asarray(x), xp.asarray(h)
    sync = cp.cuda.Device().synchronize if cp is not None else (lambda: None)
    if cp is not None:
        device = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"].decode()
    else:
        import os

        device = f"CPU ({os.cpu_count()} cores)"

    t = time.perf_counter()
    if cp is not None:
        source = compile_callback(apply_filter, "epilog", "complex64", "complex64", indirect=True).source
    else:
        from compiler.cpu_backend import compile_cpu

        source = compile_cpu(apply_filter, "epilog", "complex64", "complex64").source
    compile_ms = (time.perf_counter() - t) * 1e3

    fused = lambda: nvmath.fft.ifft(nvmath.fft.fft(x, axes=[-1], epilog={"fn": apply_filter, "data": h}), axes=[-1])  # noqa: E731
    if cp is not None:
        unfused = lambda: cp.fft.ifft(cp.fft.fft(x, axis=-1) * h, axis=-1, norm="forward")  # noqa: E731
    else:
        import scipy.fft

        unfused = lambda: scipy.fft.ifft(scipy.fft.fft(x, axis=-1, workers=-1) * h, axis=-1, norm="forward", workers=-1)  # noqa: E731

    t = time.perf_counter()
    result = fused()
    sync()
    first_ms = (time.perf_counter() - t) * 1e3
    got = cp.asnumpy(result) if cp is not None else result
    x64, h64 = (cp.asnumpy(a) if cp is not None else a for a in (x, h))
    want = np.fft.ifft(np.fft.fft(x64.astype(np.complex128), axis=-1) * h64, axis=-1, norm="forward")
    error = float(np.abs(got - want).max() / np.abs(want).max())
    ok = error < 1e-4
    fused_ms = _median_ms(fused, sync, args.repeats)
    unfused_ms = _median_ms(unfused, sync, args.repeats)
    notes = [] if cp is not None else _cpu_notes(x, fused_ms, unfused_ms, args.repeats)

    print("fftfuse demo: convolution = ifft(fft(x) * H), the multiply fused into the FFT as an epilog")
    print(f"  device           {device}")
    print(f"  problem          {batch} x {n} complex64 ({x.nbytes / 2**20:.0f} MiB), filter of the same shape")
    print(f"  epilog compile   {compile_ms:8.1f} ms ({'from the cache' if source == 'cache' else 'compiled now'})")
    print(f"  first fused call {first_ms:8.1f} ms (includes planning{'' if cp is not None else ' and the FFT engine choice'})")
    print(f"  fused            {fused_ms:8.3f} ms per call ({args.repeats} back to back, median of 5 rounds)")
    print(f"  unfused          {unfused_ms:8.3f} ms")
    print(f"  speed-up         {unfused_ms / fused_ms:8.2f} x")
    print(f"  max rel. error   {error:8.2e} vs a float64 NumPy reference: {'OK' if ok else 'MISMATCH'}")
    for line in notes:
        print(line)
    return 0 if ok else 1


def _cpu_notes(x: Any, fused_ms: float, unfused_ms: float, repeats: int) -> list[str]:
    """The FFT engines the fused calls chose, and why the fused call is slower where it is."""
    import os

    import scipy.fft

    import nvmath
    from nvmath.fft._cpu_engines import choices_made

    lines = []
    seen = set()
    for call, choice in choices_made():
        if (call, choice.engine) in seen:
            continue
        seen.add((call, choice.engine))
        how = {"measured": "measured now", "stored": "measured earlier on this machine", "rules": "by rule",
               "given": "as asked"}[choice.how]
        timing = ", ".join(f"{k} {v:.0f} us" for k, v in choice.timings.items())
        lines.append(f"  FFT engine       {choice.engine} for {' x '.join(map(str, call.shape))} {call.dtype} "
                     f"{'with' if call.epilog else 'without'} an epilog, {call.parallel} at once ({how}"
                     f"{': ' + timing if timing else ''})")
    if fused_ms <= unfused_ms:
        return lines
    # Why: the FFTs alone (no multiply), ours against SciPy's, and the other work on the cores.
    ours = _median_ms(lambda: nvmath.fft.ifft(nvmath.fft.fft(x, axes=[-1]), axes=[-1]), lambda: None, repeats)
    theirs = _median_ms(lambda: scipy.fft.ifft(scipy.fft.fft(x, axis=-1, workers=-1), axis=-1, norm="forward",
                                               workers=-1), lambda: None, repeats)
    lines.append(f"  why slower       the FFTs alone take {ours:.3f} ms here against SciPy's {theirs:.3f} ms; fusing "
                 f"saves the multiply's pass ({max(unfused_ms - theirs, 0):.3f} ms), which does not make up for it")
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cores:
        lines.append(f"                   other processes keep the cores busy (load average {load:.1f} on {cores} "
                     "cores): threaded timings are unreliable, run it again on an idle machine")
    return lines


if __name__ == "__main__":
    sys.exit(main())
