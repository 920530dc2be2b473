"""fftfuse_compiler.kernel_cache on a machine without a GPU: what its key is made of, what it stores,
and that a kernel it cannot key or rebuild compiles as before.

numba-cuda builds a kernel here when it is told the GPU's architecture (``numba.cuda.dispatcher.
get_current_device`` answers sm_90); nvJitLink links it on the CPU. Loading it (``bind``) needs a
GPU: ``tests/test_gpu_device_fft.py`` runs the cache in fresh processes on one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from nvmath.device import _mathdx

try:
    _mathdx.version()
except RuntimeError as exc:  # no libmathdx: the dx extra is not installed
    pytest.skip(f"libmathdx is not installed: {exc}", allow_module_level=True)

from fftfuse_cache import ArtifactMeta, ArtifactStore  # noqa: E402
from fftfuse_compiler import kernel_cache  # noqa: E402
from fftfuse_compiler.fingerprint import UncacheableError  # noqa: E402
from nvmath.device import FFT, _numba  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = (9, 0, "a")  # the target as numba-cuda keys its cubins on an sm_90 GPU


def _pair(size=64, ept=2):
    kw = dict(sm=90, ffts_per_block=1, elements_per_thread=ept)
    return FFT(size, np.float32, "c2c", "Block", direction="forward", **kw), \
        FFT(size, np.float32, "c2c", "Block", direction="inverse", **kw)


def _array(dtype=np.complex64, ndim=2):
    from numba.cuda import types
    from numba.np.numpy_support import from_dtype

    return types.Array(from_dtype(np.dtype(dtype)), ndim, "C")


SOURCE = """
def kernel(signal, filt):
    t = cuda.local.array(shape=(SS,), dtype=VT)
    s = cuda.shared.array(shape=(0,), dtype=VT)
    for i in range(EPT):
        t[i] = signal[0, cuda.threadIdx.x + i * ST]
    FWD(t, s)
    for i in range(EPT):
        t[i] = t[i] * filt[0, cuda.threadIdx.x + i * ST] * SCALE
    INV(t, s)
    for i in range(EPT):
        signal[0, cuda.threadIdx.x + i * ST] = t[i]
"""


def _kernel(source=SOURCE, filename="<a>", scale=1.0, pair=None, **extra):
    """The seed-style convolution kernel, built by exec (so two builds are two functions)."""
    from numba import cuda

    fwd, inv = pair or _pair()
    namespace = dict(cuda=cuda, FWD=fwd, INV=inv, SS=fwd.storage_size, VT=fwd.value_type, ST=fwd.stride,
                     EPT=fwd.elements_per_thread, SCALE=scale, **extra)
    exec(compile(textwrap.dedent(source), filename, "exec"), namespace)
    return namespace["kernel"]


OPTIONS = dict(debug=False, lineinfo=False, opt=True, link=None, fastmath=False, device=False, inline="never",
               forceinline=False, extensions=[], launch_bounds=None, lto=True, shared_memory_carveout=None)


def _key(fn, argtypes=None, cc=CC, **options):
    return kernel_cache.kernel_key(fn, argtypes or (_array(), _array()), dict(OPTIONS, **options), cc,
                                   _numba.is_device_fft)


# -- the key --------------------------------------------------------------------------------------

def test_an_equal_kernel_defined_twice_has_one_key():
    assert _key(_kernel(filename="<a>")) == _key(_kernel(filename="<b>"))


def test_the_seed_kernels_closure_fingerprints():
    # The seed closes over ints, a NumPy type, FFT objects; nothing of it is uncacheable.
    from numba import cuda

    fwd, inv = _pair(128)
    storage_size, value_type, ffts_per_block, batch_size = fwd.storage_size, fwd.value_type, 1, 1
    ept, fft_stride, block_dim = fwd.elements_per_thread, fwd.stride, fwd.block_dim

    def f(signal, filter):
        thread_data = cuda.local.array(shape=(storage_size,), dtype=value_type)
        shared_mem = cuda.shared.array(shape=(0,), dtype=value_type)
        fft_id = (cuda.blockIdx.x * ffts_per_block) + cuda.threadIdx.y
        if fft_id >= batch_size or block_dim.x == 0:
            return
        for i in range(ept):
            thread_data[i] = signal[fft_id, cuda.threadIdx.x + i * fft_stride]
        fwd(thread_data, shared_mem)
        inv(thread_data, shared_mem)

    assert len(_key(f)) == 64
    assert _key(f, link=fwd.files + inv.files) not in (None, _key(f))


@pytest.mark.parametrize("change", ["code", "global", "closure", "description", "argtypes", "option", "cc"])
def test_the_key_changes_with_what_the_kernel_is_compiled_from(change):
    base = _key(_kernel())
    if change == "code":
        other = _key(_kernel(SOURCE.replace("* SCALE", "* SCALE * SCALE")))
    elif change == "global":
        other = _key(_kernel(scale=2.0))
    elif change == "closure":
        def make(scale):
            fwd, inv = _pair()

            def kernel(x):
                fwd(x, x)
                x[0] = x[0] * scale
                inv(x, x)
            return kernel
        base, other = _key(make(1.0), (_array(),)), _key(make(2.0), (_array(),))
        assert base == _key(make(1.0), (_array(),))
    elif change == "description":
        other = _key(_kernel(pair=_pair(ept=4)))
    elif change == "argtypes":
        other = _key(_kernel(), (_array(ndim=2), _array(np.complex128, 2)))
    elif change == "option":
        assert _key(_kernel(), fastmath=True) != _key(_kernel(), lineinfo=True)
        other = _key(_kernel(), launch_bounds=64)
    else:
        other = _key(_kernel(), cc=(10, 0, "a"))
    assert base is not None and other is not None and other != base


def test_the_key_changes_with_a_linked_file(tmp_path):
    from numba import cuda

    def key(data):
        return _key(_kernel(), link=[cuda.LTOIR(data, name="extra.ltoir")] + _pair()[0].files)

    assert key(b"one") == key(b"one") != key(b"two")
    path = tmp_path / "extra.ltoir"
    path.write_bytes(b"one")
    first = _key(_kernel(), link=[str(path)])
    path.write_bytes(b"two")
    assert _key(_kernel(), link=[str(path)]) != first


def test_a_kernel_without_a_device_fft_is_not_the_caches():
    from numba import cuda

    def plain(x):
        x[cuda.threadIdx.x] = 1.0

    assert _key(plain, (_array(np.float32, 1),)) is None


def test_uncacheable_kernels_say_why():
    with pytest.raises(UncacheableError, match="TABLE"):
        _key(_kernel(SOURCE.replace("* SCALE", "* TABLE[0]"), TABLE=[1.0]))
    with pytest.raises(UncacheableError, match="debug"):
        _key(_kernel(), debug=True)
    with pytest.raises(UncacheableError, match="CUDA C"):
        _key(_kernel(), link=["helper.cu"])


CHAIN_PROBE = r"""
import sys
import numpy as np
from fftfuse_compiler import kernel_cache
from fftfuse_compiler.forms import Form
from nvmath.device import _numba
from nvmath.fft._chain_kernel import KernelConfig, StepPlan, choose_knobs, kernel_function
SCALE = float(sys.argv[1])
def mul(x, d):
    return x * d * SCALE
fpb, ept = choose_knobs(256, "float32", 90)
steps = (None, StepPlan("pointwise", Form.VALUE_DATA.value, "row", "complex64", "x", "mul", mul), None)
fn, argtypes = kernel_function(KernelConfig(256, "float32", 2, (), fpb, ept, 90, (1.0, 1 / 256), False, steps))
options = dict(debug=False, lineinfo=False, opt=True, link=None, fastmath=False, device=False, inline="never",
               forceinline=False, extensions=None, launch_bounds=256, lto=True, shared_memory_carveout=None)
print(kernel_cache.kernel_key(fn, argtypes, options, (9, 0), _numba.is_device_fft))
"""


def test_the_chain_kernels_key_is_the_same_in_every_process():
    # The chain kernel is exec-generated, its steps jitted per process: the key must not notice.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH", "")])))

    def key(scale):
        out = subprocess.run([sys.executable, "-c", CHAIN_PROBE, str(scale)], capture_output=True, text=True,
                             env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout.strip().splitlines()[-1]

    first = key(2.0)
    assert len(first) == 64 and key(2.0) == first and key(3.0) != first


# -- what is stored, and the compile through it ------------------------------------------------------

@pytest.fixture
def sm90(monkeypatch):
    """numba-cuda builds kernels for an sm_90 it is told of (there is no GPU to ask)."""
    import numba.cuda.dispatcher as dispatcher

    monkeypatch.setattr(dispatcher, "get_current_device", lambda: SimpleNamespace(compute_capability=CC))


def _numba_kernel(fn, argtypes, link=()):
    """What numba's compile builds, as far as the cache reads it: numba's own code library (typed,
    lowered and linked here), in a stand-in for the kernel object (whose construction asks the GPU)."""
    from numba.cuda import types
    from numba.cuda.compiler import compile_cuda, kernel_fixup

    cres = compile_cuda(fn, types.void, argtypes, cc=CC[:2], lto=True, nvvm_options={"opt": 3})
    library = cres.library
    library._entry_name = cres.fndesc.llvm_func_name
    kernel_fixup(library.get_function(cres.fndesc.llvm_func_name), False)
    for f in link:
        library.add_linking_file(f)
    return SimpleNamespace(library=library, entry_name=cres.fndesc.llvm_func_name, argument_types=argtypes,
                           launch_config_sensitive=False, debug=False, extensions=[], cooperative=False,
                           lineinfo=False, shared_memory_carveout=None, entry_point=None, objectmode=False)


def _round_trip(payload: bytes, meta: ArtifactMeta) -> tuple[bytes, ArtifactMeta]:
    """As the store keeps them: bytes, and the metadata as JSON."""
    return bytes(payload), ArtifactMeta.from_stored(json.loads(json.dumps(meta.stored())))


def test_a_kernel_is_stored_as_its_cubin_and_rebuilt_from_it(sm90):
    argtypes = (_array(), _array())
    kernel = _numba_kernel(_kernel(), argtypes)
    payload, meta = _round_trip(*kernel_cache.reduce_kernel(kernel, CC))
    cubin = kernel.library.get_cubin(CC)
    assert payload == bytes(getattr(cubin, "code", cubin)) and payload[:4] == b"\x7fELF"
    assert (meta.target, meta.kind, meta.arch, meta.function) == ("numba-kernel", "kernel", 90, kernel.entry_name)

    rebuilt = kernel_cache.rebuild_kernel(payload, meta, argtypes, CC)
    from numba.cuda.dispatcher import _Kernel

    assert type(rebuilt) is _Kernel and rebuilt.entry_name == kernel.entry_name
    assert rebuilt.argument_types == argtypes and rebuilt.cooperative is False and rebuilt.debug is False
    again = rebuilt.library.get_cubin(CC)  # already linked: links nothing
    assert bytes(getattr(again, "code", again)) == payload
    assert not rebuilt.library._linking_files

    with pytest.raises(ValueError, match="not of"):  # a cheap second look at the types
        kernel_cache.rebuild_kernel(payload, meta, (_array(np.complex128),) * 2, CC)


def test_a_fake_cubin_round_trips_and_unstorable_kernels_are_refused():
    library = SimpleNamespace(
        _setup_functions=[], _teardown_functions=[], _linking_files=set(), referenced_objects={}, name="kernel",
        get_cubin=lambda cc: b"fake cubin", get_linkerinfo=lambda cc: "info", _max_registers=64,
        _nvvm_options={"fastmath": {"nsz", "arcp"}, "opt": 3}, _lto=True, use_cooperative=False,
        needs_cudadevrt=False)
    kernel = SimpleNamespace(library=library, launch_config_sensitive=False, debug=False, extensions=[],
                             argument_types=(_array(),), cooperative=False, lineinfo=True,
                             shared_memory_carveout=50, entry_name="_Z6kernel")
    payload, meta = _round_trip(*kernel_cache.reduce_kernel(kernel, CC))
    assert payload == b"fake cubin" and meta.extra["nvvm_options"]["fastmath"] == ["arcp", "nsz"]
    rebuilt = kernel_cache.rebuild_kernel(payload, meta, (_array(),), CC)
    assert (rebuilt.lineinfo, rebuilt.shared_memory_carveout, rebuilt.library._max_registers) == (True, 50, 64)
    for change in (dict(launch_config_sensitive=True), dict(extensions=[object()]), dict(debug=True)):
        with pytest.raises(kernel_cache.NotStorable):
            kernel_cache.reduce_kernel(SimpleNamespace(**{**vars(kernel), **change}), CC)
    with pytest.raises(kernel_cache.NotStorable):
        kernel_cache.reduce_kernel(SimpleNamespace(**{**vars(kernel), "library": SimpleNamespace(
            **{**vars(library), "_setup_functions": [print]})}), CC)


class _Compiles:
    """numba's compile as seen by the cache: build the kernel, register it, count."""

    def __init__(self, dispatcher, argtypes):
        self.dispatcher, self.argtypes, self.count = dispatcher, argtypes, 0

    def __call__(self):
        self.count += 1
        kernel = _numba_kernel(self.dispatcher.py_func, self.argtypes)
        self.dispatcher.add_overload(kernel, self.argtypes)
        return kernel


def _dispatcher(fn):
    from numba import cuda

    return cuda.jit(fn)  # lazy: compiles nothing yet


def test_a_second_dispatcher_of_an_equal_kernel_loads_it_without_compiling(sm90):
    kernel_cache.install(_numba.is_device_fft)
    store = ArtifactStore(enabled=False)
    argtypes = (_array(), _array())
    before = kernel_cache.stats()

    first = _dispatcher(_kernel())
    compiled = kernel_cache.compile_through_cache(first, argtypes, _Compiles(first, argtypes), cc=CC, store=store,
                                                  bind=False)
    second = _dispatcher(_kernel(filename="<elsewhere>"))
    compiles = _Compiles(second, argtypes)
    loaded = kernel_cache.compile_through_cache(second, argtypes, compiles, cc=CC, store=store, bind=False)
    assert compiles.count == 0 and loaded is not compiled and second.overloads[argtypes] is loaded
    assert loaded.entry_name == compiled.entry_name
    after = kernel_cache.stats()
    assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == (1, 1)

    third = _dispatcher(_kernel(scale=2.0))  # another value: compiled
    compiles = _Compiles(third, argtypes)
    kernel_cache.compile_through_cache(third, argtypes, compiles, cc=CC, store=store, bind=False)
    assert compiles.count == 1


def test_an_entry_that_cannot_be_rebuilt_compiles_and_is_replaced(sm90):
    kernel_cache.install(_numba.is_device_fft)
    store = ArtifactStore(enabled=False)
    argtypes = (_array(), _array())
    fn = _kernel()
    key = kernel_cache.kernel_key(fn, argtypes, _dispatcher(fn).targetoptions, CC, _numba.is_device_fft)
    broken = ArtifactMeta("numba-kernel", "kernel", arch=90, function="k", extra={"layout": kernel_cache.LAYOUT})
    store.put(key, b"not a cubin", broken.stored())  # as a numba upgrade would leave it: a field missing
    failed = kernel_cache.stats()["failed_rebuilds"]

    dispatcher = _dispatcher(fn)
    compiles = _Compiles(dispatcher, argtypes)
    kernel = kernel_cache.compile_through_cache(dispatcher, argtypes, compiles, cc=CC, store=store, bind=False)
    assert compiles.count == 1 and dispatcher.overloads[argtypes] is kernel
    assert kernel_cache.stats()["failed_rebuilds"] == failed + 1
    payload, _ = store.get(key)
    assert payload[:4] == b"\x7fELF"  # the fresh kernel replaced the entry


def test_an_uncacheable_kernel_compiles_as_usual_and_is_not_stored(sm90):
    kernel_cache.install(_numba.is_device_fft)
    store = ArtifactStore(enabled=False)
    argtypes = (_array(), _array())
    dispatcher = _dispatcher(_kernel(SOURCE.replace("* SCALE", "* TABLE[0]"), TABLE=[1.0]))
    compiled = []

    def compile_now():  # numba's compile (which would refuse the list: what matters is that it is asked)
        compiled.append(object())
        return compiled[-1]

    before = kernel_cache.stats()
    kernel = kernel_cache.compile_through_cache(dispatcher, argtypes, compile_now, cc=CC, store=store, bind=False)
    assert compiled == [kernel] and kernel_cache.stats() == before and not list(store.entries())


def test_the_compile_hook_is_installed_once_by_the_device_ffts():
    from numba.cuda.dispatcher import CUDADispatcher

    _pair()
    hooked = CUDADispatcher.compile
    assert hasattr(hooked, "__wrapped__")
    kernel_cache.install(_numba.is_device_fft)
    assert CUDADispatcher.compile is hooked
