"""The code generated for array terms stays as cheap as hand-written CUDA: read in linked PTX.

Each callback is compiled as the planner compiles it (its ``Terms``, the slot) and linked with a
kernel that calls cuFFT's prototype (nvJitLink ``-lto -ptx``, no GPU); the tests count the
instructions that would make it slower than the same arithmetic written by hand: float64 work in
a complex64 callback, 64-bit division, the approximate functions a ``fastmath`` callback asked
for, and loads of the slot repeated for every element.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

pytest.importorskip("numba.cuda")
pytest.importorskip("cuda.bindings.nvjitlink")

import numba  # noqa: E402

from fftfuse_cache import ArtifactStore  # noqa: E402
from fftfuse_compiler import compile_callback, linkcheck  # noqa: E402
from fftfuse_compiler.terms import Terms  # noqa: E402

ARCH = 90


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ArtifactStore(tmp_path_factory.mktemp("cache"))


def kernel_instructions(ptx: str) -> list[str]:
    """The opcodes (``mul.f64``, ``ld.global.nc.u64``...) of the harness kernel's body."""
    body = ptx[ptx.index(".entry"):]
    lines = (ln.strip() for ln in body.splitlines())
    return [ln.split()[0] for ln in lines if ln and not ln.startswith(("//", ".", "{", "}", "$")) and not ln.endswith(":")]


def linked(fn, terms: Terms, store, user_dtype=None) -> list[str]:
    compiled = compile_callback(fn, "epilog", "complex64", user_dtype, compute_capability=ARCH, indirect=True,
                                terms=terms, store=store)
    return kernel_instructions(linkcheck.link_check(compiled.ltoir, "epilog", "complex64", ARCH))


def shifted(v, b, k, *, s):
    return v * (np.float32(k) * 0.5 + 0.25) + s  # an int64 times a float32 is a float64 in numba


@pytest.mark.parametrize("n", [1024, 1000])
def test_index_decode_is_single_precision_and_divides_by_no_64_bit_number(n, store):
    """Python float literals and float parameters stay float32; the offset -> index decode of a
    batch that fits 32 bits divides (or masks) in 32 bits, by a multiply for a non-power of two."""
    ops = linked(shifted, Terms((64, n), (n, 1), (False, True), None, (("s", "float32"),)), store)
    assert [op for op in ops if ".f64" in op] == []
    assert [op for op in ops if re.match(r"(div|rem)\.", op)] == []
    if n == 1024:
        assert any(op.startswith("and.") for op in ops)  # k = offset & 1023


w0 = np.float32(2 * math.pi * 3.25 / 1024)


def ramp(v, b, k):
    a = w0 * np.float32(k)
    return v * (math.cos(a) + 1j * math.sin(a))


def test_fastmath_callback_gets_the_approximate_sine_and_cosine(store):
    """numba's ``fastmath=True`` is kept though the callback is inlined into the wrapper: the
    hardware's sin/cos, with no slow path (no local memory, no float64) left in the kernel."""
    terms = Terms((64, 1024), (1024, 1), (False, True))
    accurate = linked(ramp, terms, store)
    fast = linked(numba.njit(fastmath=True)(ramp), terms, store)
    assert "sin.approx.f32" not in accurate and any(".f64" in op for op in accurate)
    assert {"sin.approx.f32", "cos.approx.f32"} <= set(fast)
    assert [op for op in fast if ".f64" in op or ".local" in op] == []
    assert len(fast) < len(accurate) / 4


def filtered(v, f, *, g):
    return v * f * g


def test_slot_is_read_once_for_all_elements_of_a_thread(store):
    """The data pointer and the parameters are loaded once for two elements, with a store of the
    first element between them (cuFFT's kernels handle several elements per thread)."""
    terms = Terms((64, 1024), (1024, 1), (), (0, 1), (("g", "float32"),))
    compiled = compile_callback(filtered, "epilog", "complex64", "complex64", compute_capability=ARCH, indirect=True,
                                terms=terms, store=store)
    declaration = linkcheck.harness_source("epilog", "complex64").splitlines()[0]
    name = re.search(r"void (\w+)\(", declaration).group(1)
    source = (f"{declaration}\n"
              'extern "C" __global__ void two(void* data, unsigned long long offset, const float2* e, void* info) {\n'
              f"    {name}(data, offset, e[0], info, 0);\n"
              f"    {name}(data, offset + 1, e[1], info, 0);\n"
              "}\n")
    harness = linkcheck.nvrtc_compile(source, "two.cu", [f"-arch=compute_{ARCH}", "-rdc=true", "-dlto"], lto=True)
    ptx = linkcheck.nvjitlink_ptx([("two", harness), ("callback", compiled.ltoir)], ARCH, "two elements")
    ops = kernel_instructions(ptx)
    assert ops.count("st.global.v2.f32") == 2
    assert ops.count("ld.global.nc.u64") == 1  # the data pointer
    assert ops.count("ld.global.nc.f32") == 1  # g
    assert "ld.global.u64" not in ops


def test_a_numpy_function_numba_cuda_lacks_is_named_with_an_alternative_that_exists(store):
    """np.floor has no GPU lowering in numba-cuda: the message points to math.floor (cmath has none)."""
    def fn(v, b, k):
        return v * np.floor(np.float32(k) * np.float32(0.5))

    with pytest.raises(TypeError, match=r"NumPy's floor .*\(e\.g\. math\.floor\)"):
        linked(fn, Terms((4, 256), (256, 1), (False, True)), store)
