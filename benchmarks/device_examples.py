"""Run a folder of device-FFT example scripts against this checkout's ``nvmath`` and count what passes.

    python benchmarks/device_examples.py --examples .whl/nvexamples
    python benchmarks/device_examples.py --examples DIR --jobs 8 --timeout 600 --json results/examples.json

Every ``*.py`` in DIR except ``common*.py`` (the examples' shared helpers) runs as a fresh
``python FILE`` with DIR as its working directory (so ``from common import ...`` works) and the
repository root first on PYTHONPATH (so ``import nvmath`` is this checkout's). An example
passes when it exits with status 0, fails otherwise, and is killed (with its process group)
after ``--timeout`` seconds. ``--jobs`` examples run at once. The table (example, status,
seconds, last error line) goes to stdout, the same rows as JSON to ``--json``; the exit status
is 0 when every example passed, else 1. This script never imports nvmath itself.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypedDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Result(TypedDict):
    example: str
    status: str  # "pass", "fail" or "timeout"
    seconds: float
    error: str  # last non-empty line of stderr (of stdout when stderr has none); "" on pass


def last_line(*texts: str) -> str:
    """The last non-empty line of the first text that has one."""
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return ""


def run_example(path: Path, timeout: float, python: str) -> Result:
    """Run one example in a fresh interpreter, its folder as working directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    start = time.perf_counter()
    proc = subprocess.Popen([python, path.name], cwd=path.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        status = "pass" if proc.returncode == 0 else "fail"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the example's whole session, children included
        out, err = proc.communicate()
        status = "timeout"
    seconds = round(time.perf_counter() - start, 2)
    if status == "pass":
        error = ""
    elif status == "fail":
        error = last_line(err, out) or f"exit status {proc.returncode}"
    else:
        error = f"killed after {timeout:g} s; last output: {last_line(err, out)}"
    return Result(example=path.stem, status=status, seconds=seconds, error=error)


def find_examples(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("common"))


def table(results: list[Result], width: int = 100) -> str:
    name_w = max([len("example")] + [len(r["example"]) for r in results])
    rows = [f"{'example':<{name_w}}  {'status':<7}  {'seconds':>8}  last error line"]
    for r in results:
        rows.append(f"{r['example']:<{name_w}}  {r['status']:<7}  {r['seconds']:>8.2f}  {r['error'][:width]}")
    counts = {s: sum(r["status"] == s for r in results) for s in ("pass", "fail", "timeout")}
    rows.append(f"{len(results)} examples: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=Path, required=True, help="folder of example scripts")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per example (default 300)")
    parser.add_argument("--jobs", type=int, default=4, help="examples run at once (default 4)")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--python", default=sys.executable, help="interpreter to run them with (default: this one)")
    args = parser.parse_args()

    folder = args.examples.resolve()
    examples = find_examples(folder)
    if not examples:
        parser.error(f"no example scripts (*.py other than common*.py) in {folder}")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda p: run_example(p, args.timeout, args.python), examples))

    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {s: sum(r["status"] == s for r in results) for s in ("pass", "fail", "timeout")}
        report = {"examples_dir": str(folder), "timeout_s": args.timeout, "jobs": args.jobs, "summary": summary,
                  "results": results}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(r["status"] == "pass" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
