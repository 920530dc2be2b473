"""Throughput of a fused convolution over a Dask array, against the same graph unfused.

    fused:   ifft(fft(x, epilog=x * h), epilog=x / n)         (fftfuse: 2 tasks per chunk)
    unfused: ifft(fft(x) * h)                                 (3 tasks per chunk: dask.array.fft on
                                                              NumPy chunks, cupy.fft per CuPy chunk)

``x`` is rows x n complex64 in chunks of ``--chunk-rows`` rows, ``h`` an (n,) filter broadcast
along the rows. Throughput counts the operand's bytes once per second (GB/s, 1e9). The operand
is persisted before timing; each timed run computes every chunk and waits for the GPUs.

    python benchmarks/dask_fft.py --device cpu                        # NumPy chunks, threads
    python benchmarks/dask_fft.py --device gpu --cluster threads      # CuPy chunks, one GPU
    python benchmarks/dask_fft.py --device gpu --cluster distributed  # one worker per GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mul(v, d):
    return v * d


def one_worker_per_gpu(n_gpus: int, env: dict | None = None):
    """A local dask.distributed cluster of one single-threaded worker process per GPU, each
    seeing only its own GPU (CUDA_VISIBLE_DEVICES), as dask-cuda's LocalCUDACluster does.

    Host memory management is off (memory_limit=0): the chunks live in GPU memory, but a worker
    counts their bytes against its share of host RAM (RAM x threads / cores, 8 GiB on a 32-core
    host) and would spill them to disk past 60% of it, which made both graphs run at the disk's
    speed."""
    import dask
    from distributed import Nanny, Scheduler, SpecCluster

    # Work stealing and the scheduler's queuing of root-like tasks both moved chunks of GPU memory
    # through the host to the other worker (measured: seconds of transfers per run); each chunk's
    # FFT belongs where its chunk is.
    dask.config.set({"distributed.scheduler.work-stealing": False,
                     "distributed.scheduler.worker-saturation": float("inf")})
    workers = {
        f"gpu{i}": {"cls": Nanny, "options": {"nthreads": 1, "silence_logs": 40, "memory_limit": 0,
                                              "env": {**(env or {}), "CUDA_VISIBLE_DEVICES": str(i)}}}
        for i in range(n_gpus)
    }
    return SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {"dashboard_address": None}},
                       silence_logs=40)


def _random_block(block_id=None, *, rows, n, device):
    seed = 1000 + block_id[0]
    if device == "gpu":
        import cupy

        rng = cupy.random.default_rng(seed)
        return (rng.standard_normal((rows, n), dtype=cupy.float32)
                + 1j * rng.standard_normal((rows, n), dtype=cupy.float32)).astype(cupy.complex64)
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, n)) + 1j * rng.standard_normal((rows, n))).astype(np.complex64)


def _corner(block):
    return block[:1, :1].copy()


def graphs(x, h, n, device):
    """The fused and the unfused graph. ``h`` is a NumPy array: the fused graph takes it as it is
    (each worker moves it to its GPU once); the unfused multiply needs it on the device."""
    import dask.array as da

    import nvmath

    scale = np.float32(1.0 / n)
    fused = nvmath.fft.ifft(nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": h}), axes=[-1],
                            epilog=lambda v: v * scale)
    if device == "gpu":  # dask.array.fft's own functions, with CuPy's FFT in each chunk
        import cupy

        meta = cupy.empty((0, 0), np.complex64)
        spectrum = x.map_blocks(cupy.fft.fft, axis=-1, dtype=np.complex64, meta=meta)
        unfused = (spectrum * cupy.asarray(h)).map_blocks(cupy.fft.ifft, axis=-1, dtype=np.complex64, meta=meta)
    else:
        unfused = da.fft.ifft(da.fft.fft(x, axis=-1) * h, axis=-1)
    return fused, unfused


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="NumPy (cpu) or CuPy (gpu) chunks")
    ap.add_argument("--cluster", choices=["threads", "distributed"], default="threads",
                    help="the threaded scheduler, or dask.distributed (one worker per GPU; 2 workers on the CPU)")
    ap.add_argument("--rows", type=int, default=None,
                    help="rows of the operand (default: 4194304 per GPU, 32 GiB, in chunks of 4 GiB, so that the GPUs' "
                         "time and not Dask's per-task and per-graph time dominates; 4096 on the CPU)")
    ap.add_argument("--n", type=int, default=1024, help="FFT length (the row length)")
    ap.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (default: rows / 8 per GPU)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads of the threaded scheduler (default: 1 for CuPy chunks, which queue their work on "
                         "the GPU without waiting, and so hold fewer chunks in GPU memory; all cores for NumPy chunks)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each graph (median reported)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    import dask
    import dask.array as da

    gpu = args.device == "gpu"
    n_gpus = 1
    if gpu:
        import cupy

        n_gpus = cupy.cuda.runtime.getDeviceCount() if args.cluster == "distributed" else 1
    rows = args.rows or (4194304 * n_gpus if gpu else 4096)
    chunk_rows = args.chunk_rows or max(rows // (8 * n_gpus), 1)
    client = cluster = None
    if args.cluster == "distributed":
        from distributed import Client, LocalCluster

        cluster = one_worker_per_gpu(n_gpus) if gpu else LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    else:
        dask.config.set(scheduler="threads", num_workers=args.threads or (1 if gpu else os.cpu_count()))

    meta = None
    if gpu:
        import cupy

        meta = cupy.empty((0, 0), cupy.complex64)
    nblocks = -(-rows // chunk_rows)
    x = da.map_blocks(_random_block, dtype=np.complex64, chunks=((chunk_rows,) * nblocks, (args.n,)), meta=meta,
                      rows=chunk_rows, n=args.n, device=args.device)
    rng = np.random.default_rng(7)
    h = (rng.standard_normal(args.n) + 1j * rng.standard_normal(args.n)).astype(np.complex64)
    x = x.persist()
    if client is not None:
        from distributed import wait

        wait(x)
        client.rebalance(x)  # as many chunks on each GPU (the scheduler may have placed them unevenly)
    fused, unfused = graphs(x, h, args.n, args.device)

    def sync() -> None:
        if gpu and client is None:
            import cupy

            for d in range(cupy.cuda.runtime.getDeviceCount()):
                with cupy.cuda.Device(d):
                    cupy.cuda.runtime.deviceSynchronize()

    def run(y) -> float:
        corners = y.map_blocks(_corner, chunks=((1,) * nblocks, (1,)))
        start = time.perf_counter()
        corners.compute()
        sync()
        return time.perf_counter() - start

    # Correctness once (also the warm-up: compiles, plans, cuFFT's JIT link).
    a, b = dask.compute(fused[:1024], unfused[:1024])
    a, b = (v.get() if hasattr(v, "get") else v for v in (a, b))
    error = float(np.abs(a - b).max() / np.abs(b).max())
    times = {"fused": [], "unfused": []}
    for name, graph in (("fused", fused), ("unfused", unfused)):
        run(graph)
    for _ in range(args.repeat):
        for name, graph in (("fused", fused), ("unfused", unfused)):
            times[name].append(run(graph))
    nbytes = rows * args.n * 8
    median = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "benchmark": "dask_fft", "device": args.device, "cluster": args.cluster, "gpus": n_gpus if gpu else 0,
        "shape": [rows, args.n], "chunk_rows": chunk_rows, "chunks": nblocks, "operand_bytes": nbytes,
        "seconds": times, "fused_GBps": nbytes / median["fused"] / 1e9, "unfused_GBps": nbytes / median["unfused"] / 1e9,
        "speedup": median["unfused"] / median["fused"], "max_rel_error": error,
        "commit": os.environ.get("GIT_COMMIT", "unknown"),
    }
    if gpu:
        import cupy

        result["gpu_name"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"dask_fft: {args.device} chunks, {args.cluster}{f', {n_gpus} GPU(s)' if gpu else ''}: {rows} x {args.n} "
          f"complex64 ({nbytes / 2**20:.0f} MiB) in {nblocks} chunks of {chunk_rows} rows")
    print(f"  fused    {median['fused'] * 1e3:9.2f} ms   {result['fused_GBps']:7.2f} GB/s")
    print(f"  unfused  {median['unfused'] * 1e3:9.2f} ms   {result['unfused_GBps']:7.2f} GB/s")
    print(f"  speed-up {result['speedup']:.2f} x   max rel. error {error:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if client is not None:
        client.close()
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
