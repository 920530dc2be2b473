#!/usr/bin/env bash
# Run the GPU tests and benchmarks on a GPU machine without network access.
# Wheels for what the machine lacks lie in .whl/ (see ../shared/device/wheels.sh), the reference
# nvmath-python in .whl/ref/. Logs and JSON go to $OUT (default: ./device-out).
#   bash benchmarks/run_on_device.sh [tests] [gputests] [doctor] [bench] [inline] [hostoverhead] [coldstart] [compile]
#                                    [arrayterms] [dask] [multigpu] [sanitizer] [devicefft] [chain] [chainbench] [fuse]
#                                    [gputests2] [cpuhost] [cputables] [cpurows] [examples]
# Wheels: ducc0 (the CPU executor) and benchmarks/device-wheels.txt (dask, multigpu) in .whl/.
set -uo pipefail
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
steps=${*:-tests bench compile}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
# Bytecode, as an installed package has it: fresh processes (cold/warm figures) must not spend a
# third of a second compiling NumPy's modules from source on every start.
python3 -m compileall -q -j 0 /tmp/site nvmath compiler cache > /dev/null 2>&1
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 GIT_COMMIT=$(cat .commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)
export FFTFUSE_CACHE_DIR=/tmp/fftfuse-cache
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader | tee "$OUT/gpu.txt"
for step in $steps; do
  case $step in
    tests)
      python3 -m pytest tests -q -rs -p no:cacheprovider -x --junitxml="$OUT/pytest.xml" 2>&1 | tail -60 | tee "$OUT/tests.log" ;;
    doctor)
      python3 -m nvmath.cli doctor --json > "$OUT/doctor.json"; python3 -m nvmath.cli doctor 2>&1 | tee "$OUT/doctor.txt" ;;
    gputests)
      python3 -m pytest tests -q -rs -p no:cacheprovider --tb=short -m "gpu or multi_gpu" 2>&1 | tee "$OUT/gputests.log" | tail -60 ;;
    gputests2)  # the same tests in four processes side by side (the kernels' compiles dominate, on the CPU)
      heavy="tests/test_gpu_chain_kernel.py tests/test_gpu_device_fft.py"
      run() { python3 -m pytest -q -rs -p no:cacheprovider --tb=short -m "gpu or multi_gpu" "$@"; }
      run tests/test_gpu_chain_kernel.py -k complex64 > "$OUT/gputests-chain64.log" 2>&1 &
      run tests/test_gpu_chain_kernel.py -k "not complex64 and not real" > "$OUT/gputests-chain.log" 2>&1 &
      run tests/test_gpu_chain_kernel.py -k "real and float32" > "$OUT/gputests-chain-real32.log" 2>&1 &
      run tests/test_gpu_chain_kernel.py -k "real and not float32" > "$OUT/gputests-chain-real.log" 2>&1 &
      run tests/test_gpu_device_fft.py > "$OUT/gputests-device.log" 2>&1 &
      run tests $(printf -- "--ignore=%s " $heavy) > "$OUT/gputests-rest.log" 2>&1
      wait
      tail -n 3 "$OUT"/gputests-*.log ;;
    bench)
      python3 -m pip install -q --no-index --no-deps --target /tmp/ref .whl/ref/*.whl
      python3 benchmarks/fft_callbacks.py --impl ours --json "$OUT/ours.json" > "$OUT/ours.log" 2>&1 || tail -30 "$OUT/ours.log"
      (cd /tmp && PYTHONPATH=/tmp/ref:/tmp/site python3 "$OLDPWD/benchmarks/fft_callbacks.py" --impl nvmath --json "$OUT/nvmath.json" > "$OUT/nvmath.log" 2>&1) || tail -30 "$OUT/nvmath.log"
      python3 benchmarks/fft_callbacks.py --impl cupy --json "$OUT/cupy.json" > "$OUT/cupy.log" 2>&1 || tail -30 "$OUT/cupy.log"
      python3 benchmarks/fft_callbacks.py --report "$OUT"/ours.json "$OUT"/nvmath.json "$OUT"/cupy.json --json "$OUT/fft_callbacks.json" 2>&1 | tee "$OUT/fft_table.txt" ;;
    arrayterms)
      python3 -m pytest tests/test_gpu_array_terms.py tests/test_array_terms.py -m gpu -q -rs -p no:cacheprovider 2>&1 | tail -30 | tee "$OUT/array_terms_tests.log"
      python3 -m pip install -q --no-index --no-deps --target /tmp/ref .whl/ref/*.whl 2>/dev/null
      python3 benchmarks/fft_callbacks.py --impl ours --only array_terms --json "$OUT/at_ours.json" > "$OUT/at_ours.log" 2>&1 || tail -30 "$OUT/at_ours.log"
      (cd /tmp && PYTHONPATH=/tmp/ref:/tmp/site python3 "$OLDPWD/benchmarks/fft_callbacks.py" --impl nvmath --only array_terms --json "$OUT/at_nvmath.json" > "$OUT/at_nvmath.log" 2>&1) || tail -30 "$OUT/at_nvmath.log"
      python3 benchmarks/fft_callbacks.py --impl cupy --only array_terms --json "$OUT/at_cupy.json" > "$OUT/at_cupy.log" 2>&1 || tail -30 "$OUT/at_cupy.log"
      python3 benchmarks/fft_callbacks.py --report "$OUT"/at_ours.json "$OUT"/at_nvmath.json "$OUT"/at_cupy.json --json "$OUT/array_terms.json" 2>&1 | tee "$OUT/array_terms.txt" ;;
    inline)
      # Python callbacks next to the same CUDA C++ callbacks, one process; then the per-case table.
      python3 benchmarks/fft_callbacks.py --impl ours --json "$OUT/ours.json" > "$OUT/ours.log" 2>&1 || tail -30 "$OUT/ours.log"
      python3 benchmarks/fft_callbacks.py --impl cupy --json "$OUT/cupy.json" > "$OUT/cupy.log" 2>&1 || tail -30 "$OUT/cupy.log"
      python3 benchmarks/fft_callbacks.py --report "$OUT"/ours.json "$OUT"/cupy.json --json "$OUT/inline.json" 2>&1 | tee "$OUT/inline_table.txt" ;;
    hostoverhead)
      # stateless / stateful / cupy.fft.fft host time per call in one process, then cProfiles
      python3 benchmarks/host_overhead.py --json "$OUT/host_overhead.json" 2>&1 | tee "$OUT/host_overhead.txt" ;;
    coldstart)
      python3 -m pip install -q --no-index --no-deps --target /tmp/ref .whl/ref/*.whl 2>/dev/null
      python3 benchmarks/cold_start.py --nvmath-python /tmp/ref --json "$OUT/cold_start.json" 2>&1 | tee "$OUT/cold_start.txt" ;;
    devicefft)  # cuFFTDx from numba kernels: its GPU tests, then cold/warm processes next to nvmath-python 1.0
      python3 -m pip install -q --no-index --no-deps --target /tmp/ref .whl/ref/*.whl 2>/dev/null
      python3 -m pytest tests/test_gpu_device_fft.py tests/test_device_fft.py -q -rs -p no:cacheprovider --tb=short 2>&1 | tail -40 | tee "$OUT/device_fft-tests.log"
      python3 benchmarks/device_fft.py --nvmath-python /tmp/ref --json "$OUT/device_fft.json" 2>&1 | tee "$OUT/device_fft.txt" ;;
    chain)  # the filtering chain's one kernel: its tests (GPU and CPU), then the routes side by side per length
      python3 -m pytest tests/test_gpu_chain_kernel.py tests/test_chain_kernel.py -q -rs -p no:cacheprovider --tb=short 2>&1 | tail -60 | tee "$OUT/chain-tests.log"
      python3 benchmarks/chain_kernel.py --double --sweep --json "$OUT/chain_kernel.json" 2>&1 | tee "$OUT/chain_kernel.txt" ;;
    chainbench)  # the chain benchmark alone (gputests2 runs the chain tests), knob sweep included
      python3 benchmarks/chain_kernel.py --double --sweep --json "$OUT/chain_kernel.json" 2>&1 | tee "$OUT/chain_kernel.txt" ;;
    fuse)  # nvmath.fft.fuse on CuPy: its tests, then plain code fused next to CuPy unfused and hand-written callbacks
      python3 -m pytest tests/test_gpu_fuse.py tests/test_fuse.py -q -rs -p no:cacheprovider --tb=short 2>&1 | tail -40 | tee "$OUT/fuse-tests.log"
      python3 benchmarks/fuse_gpu.py --json "$OUT/fuse_gpu.json" 2>&1 | tee "$OUT/fuse_gpu.txt" ;;
    compile)
      python3 -m pip install -q --no-index --no-deps --target /tmp/ref .whl/ref/*.whl 2>/dev/null
      python3 benchmarks/compile.py --nvmath-python /tmp/ref --json "$OUT/compile.json" 2>&1 | tee "$OUT/compile.txt" ;;
    dask)  # CuPy chunks: the threaded scheduler on GPU 0, then one worker per GPU
      python3 -m pytest tests/test_gpu_dask.py -q -rs -p no:cacheprovider 2>&1 | tail -30 | tee "$OUT/dask-tests.log"
      python3 benchmarks/dask_fft.py --device gpu --cluster threads --json "$OUT/dask_fft-gpu-threads.json" 2>&1 | tee "$OUT/dask_fft.txt"
      python3 benchmarks/dask_fft.py --device gpu --cluster distributed --json "$OUT/dask_fft-gpu-distributed.json" 2>&1 | grep -v "INFO" | tee -a "$OUT/dask_fft.txt"
      python3 benchmarks/dask_fft.py --device cpu --json "$OUT/dask_fft-cpu.json" 2>&1 | tee -a "$OUT/dask_fft.txt" ;;
    multigpu)  # two GPUs: tests/test_multi_gpu.py skips with fewer
      python3 -m pytest tests/test_multi_gpu.py -q -rs -p no:cacheprovider 2>&1 | tail -30 | tee "$OUT/multigpu-tests.log"
      python3 benchmarks/multi_gpu.py --json "$OUT/multi_gpu.json" 2>&1 | tee "$OUT/multi_gpu.txt" ;;
    cpuhost|cputables)  # the CPU twin on this machine's host CPU: the engine choice (cpuhost only), then the
      # fused callbacks tables on all threads and one, of each type in DTYPES (default: both)
      cores=$(nproc)
      if [ $step = cpuhost ]; then
        for w in 1 $cores; do
          timeout 240 python3 benchmarks/cpu_engines.py --workers $w --label gpu-host-w$w --out "$OUT" 2>&1 | tee -a "$OUT/cpu_engines.txt"
        done
      fi
      for w in $cores 1; do
        for dt in ${DTYPES:-complex64 complex128}; do
          timeout 200 python3 benchmarks/cpu_callbacks.py --dtype $dt --workers $w --fresh 0 --label gpu-host-$dt-w$w --json "$OUT/cpu_callbacks-$dt-w$w.json" 2>&1 | tee -a "$OUT/cpu_callbacks.txt"
        done
      done ;;
    cpurows)  # why cpu_callbacks rows run as they do: each row's fused plan on every engine, each next to SciPy unfused (ROWS, ROWS1: case:BxN,...)
      cores=$(nproc)
      timeout 200 python3 benchmarks/cpu_rows.py --pairwise --workers $cores --json "$OUT/cpu_rows-w$cores.json" \
        --rows "${ROWS:-scale:16x1024,r2c_scale:16x1024,scale:64x1024,filter:64x1024,convolution:64x1024,window:256x1024,convolution:256x1024,scale:1024x1024,r2c_scale:1024x1024}" 2>&1 | tee "$OUT/cpu_rows.txt"
      timeout 200 python3 benchmarks/cpu_rows.py --pairwise --workers 1 --json "$OUT/cpu_rows-w1.json" \
        --rows "${ROWS1:-filter:16x1024,filter:64x1024,window:256x1024,2d_mask:4096x1024}" 2>&1 | tee -a "$OUT/cpu_rows.txt"
      timeout 120 python3 benchmarks/cpu_fused_parts.py --batch 64 2>&1 | tee "$OUT/cpu_fused_parts.txt" ;;
    examples)  # nvmath-python's device-FFT examples, unchanged, against this nvmath (folder: $EXAMPLES, not in git)
      python3 benchmarks/device_examples.py --examples "${EXAMPLES:-.whl/nvexamples}" --jobs 6 --timeout 240 \
        --json "$OUT/device_examples.json" 2>&1 | tee "$OUT/device_examples.txt" ;;
    sanitizer)
      # Every GPU test under compute-sanitizer's memcheck and racecheck in one call: the tests in groups
      # (SANITIZER_GROUPS: ";"-separated pytest arguments, shell-quoted), each group under both tools,
      # all side by side (compiling and the tools' host work dominate; the GPU is mostly idle), each
      # with its own cache directory so every callback and kernel is compiled under the tool.
      # FFTFUSE_TEST_ROWS keeps the large problems small. API errors are not reported: the CUDA
      # bindings probe driver entry points that do not exist, and a report per probe costs most of
      # the time. The default groups cover the whole GPU suite: the last takes what the others leave.
      first="tests/test_gpu_fft.py tests/test_gpu_array_terms.py tests/test_gpu_half_precision.py tests/test_gpu_memory_space.py tests/test_gpu_concurrency.py"
      chain=tests/test_gpu_chain_kernel.py device=tests/test_gpu_device_fft.py
      rest="tests $(printf -- "--ignore=%s " $first $chain $device)"
      default="$first;$chain -k complex64;$chain -k 'not complex64 and not real';$chain -k 'real and float32';$chain -k 'real and not float32';$device;$rest"
      cs=$(ls /usr/local/cuda-13*/bin/compute-sanitizer 2>/dev/null | sort -V | tail -1)
      cs=${cs:-$(command -v compute-sanitizer)}
      if [ -z "$cs" ]; then echo "compute-sanitizer not found" | tee "$OUT/sanitizer.txt"; continue; fi
      "$cs" --version | tail -1 > "$OUT/sanitizer.txt"
      log=/tmp/sanitizer; rm -rf $log; mkdir -p $log
      IFS=';' read -ra groups <<< "${SANITIZER_GROUPS:-$default}"
      i=0
      for group in "${groups[@]}"; do
        i=$((i+1))
        eval "args=($group)"  # the group's own quoting ("-k 'not complex64'")
        for tool in memcheck racecheck; do
          ( FFTFUSE_TEST_ROWS=1024 FFTFUSE_CACHE_DIR=/tmp/fftfuse-cache-$tool-$i timeout "${SANITIZER_SECONDS:-480}" \
              "$cs" --tool $tool --report-api-errors no --target-processes all --error-exitcode 99 --log-file "$log/$tool-$i-%p.log" \
              python3 -m pytest -q -p no:cacheprovider -m "gpu or multi_gpu" "${args[@]}" > "$log/$tool-$i.pytest.txt" 2>&1
            echo $? > "$log/$tool-$i.rc" ) &
        done
      done
      wait
      i=0
      for group in "${groups[@]}"; do
        i=$((i+1))
        for tool in memcheck racecheck; do
          { echo "== $tool, group $i ($group): exit $(cat "$log/$tool-$i.rc") (0 clean, 99 sanitizer errors, 1 a test failed, 124 timed out)"
            tail -1 "$log/$tool-$i.pytest.txt"
            grep -h "ERROR SUMMARY\|RACECHECK SUMMARY" $log/$tool-$i-*.log 2>/dev/null | sort | uniq -c
            grep -h -m 20 "^========= [A-Z]" $log/$tool-$i-*.log 2>/dev/null | grep -v "SUMMARY\|COMPUTE-SANITIZER" | head -20
          } >> "$OUT/sanitizer.txt"
        done
      done
      tar czf "$OUT/sanitizer-logs.tgz" -C $log .
      cat "$OUT/sanitizer.txt" ;;
  esac
done
