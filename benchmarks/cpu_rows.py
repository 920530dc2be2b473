"""Why a row of ``cpu_callbacks`` runs as it does: the fused plan on every engine, side by side.

    python benchmarks/cpu_rows.py --rows filter:64x1024,scale:1024x1024 --workers 16

For each row (a ``cpu_callbacks`` case and size) the same fused plan is made once per
``cpu_engine`` mode (``auto``, each engine, ``rules``) and timed, interleaved round by round,
next to SciPy unfused; the ``auto`` plan's choices are printed with what its measurement saw
(the engines' times on the sample, in us), so a row where the measurement ranked the engines
otherwise than the runs do shows which of the two to look at.

Seven runs interleaved share the caches: a row that streams through memory (one thread, 4096 x
1024) runs every mode, the unfused one too, slower than ``cpu_callbacks`` does. ``--pairwise``
times each mode next to SciPy unfused alone, as ``cpu_callbacks`` times its rows, and reports
the median of the rounds' own ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cpu_callbacks import case_runs, parse_sizes, timed  # noqa: E402
from nvmath.fft import _cpu_engines  # noqa: E402

MODES = ("auto",) + _cpu_engines.ENGINES + ("rules",)


def choices(fused) -> str:  # noqa: ANN001
    """What an ``auto`` plan chose and what its measurement saw."""
    plans = getattr(fused, "plans", None) or [fused]
    text = []
    for one in plans:
        executor = one.fft._executor
        picked = [("engine", executor.engine_choice)]
        if getattr(executor, "whole_choice", None) is not None and executor.whole_choice is not executor.engine_choice:
            picked.append(("whole", executor.whole_choice))
        for what, choice in picked:
            timings = ", ".join(f"{k} {v:.0f}" for k, v in sorted(choice.timings.items(), key=lambda kv: kv[1]))
            text.append(f"{what} {choice.engine} ({choice.how}; {timings or 'no timings'})")
        trial = getattr(executor, "engine_trial", None)
        if trial is not None:
            ran = ", ".join(f"{c} {t * 1e6:.0f}" for c, t in trial.timings.items())
            text.append(f"trial kept {trial.chosen} of {trial.candidates}" + (f" ({ran})" if ran else ""))
        counts = getattr(executor, "thread_count", None)
        if counts is not None:
            text.append(f"threads chosen {counts.chosen} of {counts.candidates}")
    return "; ".join(text)


def side_by_side(runs: dict, rounds: int, clock, pairwise: bool) -> tuple[dict, dict]:  # noqa: ANN001
    """Median ms of each run and each mode's ratio to ``runs["unfused"]``: all interleaved, or
    (``pairwise``) each mode next to the unfused run alone, its ratio the median of the rounds'."""
    if not pairwise:
        medians = {k: statistics.median(v) for k, v in timed(runs, rounds, stat=list, clock=clock).items()}
        return medians, {m: medians[m] / medians["unfused"] for m in runs}
    medians, ratios, unfused = {}, {}, []
    for mode, run in runs.items():
        if mode == "unfused":
            continue
        ms = timed({mode: run, "unfused": runs["unfused"]}, rounds, stat=list, clock=clock)
        medians[mode] = statistics.median(ms[mode])
        ratios[mode] = statistics.median(f / u for f, u in zip(ms[mode], ms["unfused"]))
        unfused += ms["unfused"]
    medians["unfused"] = statistics.median(unfused)
    return medians, ratios


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", required=True, help="case:BxN,... (cases of benchmarks/cpu_callbacks.py)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dtype", default="complex64", choices=("complex64", "complex128"))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--pairwise", action="store_true", help="each mode timed next to SciPy unfused alone")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    clock = time.thread_time if args.workers == 1 else time.perf_counter
    results = []
    for row in args.rows.split(","):
        case, size = row.split(":")
        (b, n), = parse_sizes(size)
        runs, auto = {}, None
        for mode in MODES:
            fused, unfused, check = case_runs(case, b, n, args.workers, np.random.default_rng(0), args.dtype,
                                              engine=mode)
            check()
            runs[mode] = fused
            runs.setdefault("unfused", unfused)
            auto = auto or fused
        medians, ratios = side_by_side(runs, args.rounds, clock, args.pairwise)
        print(f"{case} {size} x{args.workers} {args.dtype}: unfused {medians['unfused']:.4f} ms"
              + (" (median of the pairs' own)" if args.pairwise else ""))
        for mode in MODES:
            print(f"  {mode:<13} {medians[mode]:.4f} ms  {ratios[mode]:.2f}x  {runs[mode].how()}")
        print(f"  auto's choices: {choices(auto)}", flush=True)
        results.append({"case": case, "size": size, "ms": medians, "ratio": ratios, "auto": choices(auto),
                        "how": {m: runs[m].how() for m in MODES}})
    if args.json:
        summary = {"workers": args.workers, "dtype": args.dtype, "pairwise": args.pairwise, "rows": results}
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
