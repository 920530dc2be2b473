"""fftfuse-demo: a convolution with its filter fused into the FFT, checked against the unfused one.

Runs on the GPU when CuPy sees one, else on the CPU. Prints the device, the sizes, the
compile (and whether it came from the cache), fused and unfused timings (interleaved round by
round, so drift on a shared machine hits both alike), the speed-up, and whether the difference
is larger than the rounds' spread. On the CPU it also prints the FFT engine each call runs on
(chosen when the first call plans: see ``FFTOptions.cpu_engine``) and the same comparison on
one thread in CPU time, where waiting for a core other processes hold does not count; where the fused
call is the slower one by more than the spread, it says why.
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


ROUNDS = 7


def _rounds_ms(runs: dict[str, Callable[[], Any]], sync: Callable[[], None], repeats: int,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Per-call times (ms) of ``repeats`` back-to-back calls (the GPU overlaps them with the
    host's work, as in a real pipeline), ``ROUNDS`` rounds, the runs interleaved round by round."""
    for run in runs.values():
        run()
        sync()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, run in runs.items():
            t = clock()
            for _ in range(repeats):
                run()
            sync()
            samples[name].append((clock() - t) * 1e3 / repeats)
    return samples


def _spread(samples: list[float]) -> float:
    """The spread of one run's rounds: the distance between its second-lowest and second-highest."""
    ordered = sorted(samples)
    return ordered[-2] - ordered[1] if len(ordered) > 3 else ordered[-1] - ordered[0]


def _verdict(fused: list[float], unfused: list[float]) -> tuple[float, float, str]:
    """(fused median, unfused median, a few words on whether the difference is real)."""
    f, u = statistics.median(fused), statistics.median(unfused)
    noise = max(_spread(fused), _spread(unfused))
    if abs(u - f) <= noise:
        return f, u, f"the same within the rounds' spread of {noise:.3f} ms"
    return f, u, f"{'faster' if f < u else 'slower'}, beyond the rounds' spread of {noise:.3f} ms"


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
    from fftfuse_compiler import compile_callback

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
        from fftfuse_compiler.cpu_backend import compile_cpu

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
    samples = _rounds_ms({"fused": fused, "unfused": unfused}, sync, args.repeats)
    fused_ms, unfused_ms, verdict = _verdict(samples["fused"], samples["unfused"])
    slower = verdict.startswith("slower")
    notes = [] if cp is not None else _cpu_notes(x, h, slower, args.repeats)

    print("fftfuse demo: convolution = ifft(fft(x) * H), the multiply fused into the FFT as an epilog")
    print(f"  device           {device}")
    print(f"  problem          {batch} x {n} complex64 ({x.nbytes / 2**20:.0f} MiB), filter of the same shape")
    print(f"  epilog compile   {compile_ms:8.1f} ms ({'from the cache' if source == 'cache' else 'compiled now'})")
    print(f"  first fused call {first_ms:8.1f} ms (includes planning{'' if cp is not None else ' and the FFT engine choice'})")
    print(f"  fused            {fused_ms:8.3f} ms per call ({args.repeats} back to back, median of {ROUNDS} "
          f"interleaved rounds)")
    print(f"  unfused          {unfused_ms:8.3f} ms")
    print(f"  speed-up         {unfused_ms / fused_ms:8.2f} x ({verdict})")
    print(f"  max rel. error   {error:8.2e} vs a float64 NumPy reference: {'OK' if ok else 'MISMATCH'}")
    for line in notes:
        print(line)
    return 0 if ok else 1


def _planned_convolution(x: Any, epilog: Any, execution: Any) -> Callable[[], Any]:
    """``ifft(fft(x, epilog=epilog))`` as two FFT objects planned once (execute per call)."""
    import nvmath

    forward = nvmath.fft.FFT(x, axes=[-1], execution=execution)
    forward.plan(epilog=epilog)
    inverse = nvmath.fft.FFT(forward.execute(), axes=[-1], execution=execution)
    inverse.plan(direction="inverse")

    def run() -> Any:
        inverse.reset_operand(forward.execute())
        return inverse.execute(direction="inverse")

    return run


def _cpu_notes(x: Any, h: Any, slower: bool, repeats: int) -> list[str]:
    """The FFT engines the fused calls chose; the comparison on one thread in CPU time; and, where
    the fused call is slower beyond the spread, why."""
    import os

    import scipy.fft

    import nvmath
    from nvmath.fft._cpu_engines import choices_made

    # One thread, CPU time: what the library does, whatever else runs on the machine; planned
    # once (FFT objects), so the rounds time the runs alone.
    one = nvmath.fft.ExecutionCPU(num_threads=1)
    fused = _planned_convolution(x, {"fn": apply_filter, "data": h}, one)
    unfused = lambda: scipy.fft.ifft(scipy.fft.fft(x, axis=-1, workers=1) * h, axis=-1, norm="forward",  # noqa: E731
                                     workers=1)
    samples = _rounds_ms({"fused": fused, "unfused": unfused}, lambda: None, max(1, repeats // 4), time.thread_time)
    f1, u1, verdict1 = _verdict(samples["fused"], samples["unfused"])

    lines = []
    seen = set()
    for call, choice in choices_made():
        if (call, choice.engine) in seen:
            continue
        seen.add((call, choice.engine))
        how = {"measured": "measured now", "stored": "measured earlier on this machine", "rules": "by rule",
               "given": "as asked"}[choice.how]
        timing = ", ".join(f"{k} {v:.0f} us" for k, v in choice.timings.items())
        kept = " (its array becomes the result)" if call.adopt and choice.engine == "scipy" else ""
        lines.append(f"  FFT engine       {choice.engine}{kept} for {' x '.join(map(str, call.shape))} {call.dtype} "
                     f"{'with' if call.epilog else 'without'} an epilog, {call.parallel} at once ({how}"
                     f"{': ' + timing if timing else ''})")
    lines.append(f"  one thread, CPU  fused {f1:.3f} ms, unfused {u1:.3f} ms: speed-up {u1 / f1:.2f} x ({verdict1}; "
                 "CPU time of the calling thread: time spent waiting for a core does not count)")
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    busy = load > 0.5 * cores
    if not slower and not verdict1.startswith("slower"):
        if busy:
            lines.append(f"  note             other processes keep the cores busy (load average {load:.1f} on {cores} "
                         "cores): the threaded timings above vary with them")
        return lines
    # Why: the FFTs alone (no multiply) against SciPy's, on one thread in CPU time.
    alone = {
        "ours": _planned_convolution(x, None, one),
        "scipy": lambda: scipy.fft.ifft(scipy.fft.fft(x, axis=-1, workers=1), axis=-1, norm="forward", workers=1),
    }
    ours, theirs = (statistics.median(v) for v in _rounds_ms(alone, lambda: None, max(1, repeats // 4),
                                                            time.thread_time).values())
    saved = max(u1 - theirs, 0.0)
    if verdict1.startswith("slower"):
        lines.append(f"  why slower       on one thread the two FFTs alone take {ours:.3f} ms here against SciPy's "
                     f"{theirs:.3f} ms; fusing saves the multiply's pass ({saved:.3f} ms)"
                     + (", which does not make up for it" if ours - theirs > saved else
                        "; the rest is the fused call's own overhead"))
    else:
        lines.append(f"  why slower       only on {cores} threads: on one thread the fused call is "
                     f"{verdict1.split(',')[0]}"
                     + (f"; other processes keep the cores busy (load average {load:.1f} on {cores} cores), and "
                        "the fused call hands work to a second thread that must wait for a core: run it again on an "
                        "idle machine" if busy else
                        "; the fused call splits the epilog's pass over the threads, which costs more here than "
                        "it saves"))
    return lines


if __name__ == "__main__":
    sys.exit(main())
