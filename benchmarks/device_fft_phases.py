"""Where a device-FFT kernel's compile time goes, measured without a GPU (sm_90 code, nvJitLink link).

Each sample is a fresh process that builds the convolution kernel of
``examples/device_fft_convolution.py`` (two cuFFTDx descriptors, one numba kernel) for sm_90 and
links it to a cubin, timing: imports, the descriptors' LTO-IR (libmathdx + NVRTC), numba's typing,
lowering and NVVM, and the nvJitLink link. The first process runs with an empty cache, the next
ones with it warm.

    python benchmarks/device_fft_phases.py [--runs 2] [--size 128] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PROCESS = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from numba import cuda
from numba.cuda import types
from nvmath.device import fft
from fftfuse_compiler import link_cache
t1 = time.perf_counter()
size, ept = int(sys.argv[1]), int(sys.argv[2])
kw = dict(fft_type="c2c", size=size, precision=np.float32, ffts_per_block=1, elements_per_thread=ept,
          execution="Block", compiler="numba", sm=90)
FFT_fwd, FFT_inv = fft(direction="forward", **kw), fft(direction="inverse", **kw)
value_type, storage_size, stride = FFT_fwd.value_type, FFT_fwd.storage_size, FFT_fwd.stride
files = FFT_fwd.files + FFT_inv.files
t2 = time.perf_counter()

def kernel(signal, filt):
    thread_data = cuda.local.array(shape=(storage_size,), dtype=value_type)
    shared_mem = cuda.shared.array(shape=(0,), dtype=value_type)
    offset = cuda.threadIdx.x
    for i in range(ept):
        thread_data[i] = signal[0, offset + i * stride]
    FFT_fwd(thread_data, shared_mem)
    for i in range(ept):
        thread_data[i] = thread_data[i] * filt[0, offset + i * stride]
    FFT_inv(thread_data, shared_mem)
    for i in range(ept):
        signal[0, offset + i * stride] = thread_data[i]

# numba asks the current GPU for the architecture of device functions; there is none: answer sm_90.
import numba.cuda.dispatcher as dispatcher
class Device:
    compute_capability = (9, 0)
dispatcher.get_current_device = lambda: Device()
from numba.cuda.compiler import compile_cuda, kernel_fixup
array = types.Array(types.complex64, 2, "C")
cres = compile_cuda(kernel, types.void, (array, array), cc=(9, 0), lto=True, nvvm_options={"opt": 3})
library = cres.library
library._entry_name = cres.fndesc.llvm_func_name
kernel_fixup(library.get_function(cres.fndesc.llvm_func_name), False)
for f in files:
    library.add_linking_file(f)
library.get_asm_str(cc=(9, 0))  # as cuda.jit does
library.get_ltoir(cc=(9, 0))
t3 = time.perf_counter()
library.get_cubin(cc=(9, 0))
t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "descriptors_ltoir": t2 - t1, "numba_kernel": t3 - t2, "link": t4 - t3,
                  "total": t4 - t0, "link_cache": link_cache.stats()}))
"""


def sample(env: dict, size: int, ept: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROCESS, str(size), str(ept)], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--elements-per-thread", type=int, default=2)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, FFTFUSE_CACHE_DIR=cache,
                   PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH", "")])))
        cold = sample(env, args.size, args.elements_per_thread)
        warm = [sample(env, args.size, args.elements_per_thread) for _ in range(args.runs)]
    result = {"size": args.size, "elements_per_thread": args.elements_per_thread, "cold": cold, "warm": warm}
    for name, s in [("cold", cold)] + [(f"warm {i + 1}", w) for i, w in enumerate(warm)]:
        print(f"{name:<8} imports {s['imports']:.2f} s, descriptors+LTO-IR {s['descriptors_ltoir']:.2f} s, "
              f"numba kernel {s['numba_kernel']:.2f} s, link {s['link']:.2f} s, total {s['total']:.2f} s "
              f"(link cache {s['link_cache']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
