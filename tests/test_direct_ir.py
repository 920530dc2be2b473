"""One-expression callbacks written without numba (``fftfuse_compiler.direct_ir``).

The direct route must compute what numba's route computes, bit for bit: for each function, kind,
element and data type, slot mode and literal rule, both routes' modules are compiled by libNVVM
to PTX (no GPU) and the function bodies must be the same instructions. What the direct route does
not write (calls, attributes, complex division, integer arithmetic, ...) must be left to numba.
"""

from __future__ import annotations

import math
import operator
import re

import numpy as np
import pytest

from fftfuse_compiler import Form
from fftfuse_compiler.direct_ir import _promote, compile_direct, direct_ir, ir_version
from fftfuse_compiler.terms import Terms

pytest.importorskip("numba.cuda")
pytest.importorskip("cuda.bindings.nvvm")
from fftfuse_compiler.cuda_backend import compile_ltoir  # noqa: E402

ARCH = 75
SCALE = 0.5
TINY = 1e-40  # float32 cannot hold it: stays double even under the single-precision rule
COUNT = 3
GAIN32 = np.float32(1.25)
GAIN64 = np.float64(0.75)
GAINC = np.complex64(0.5 - 0.25j)
WINDOW = np.ones(4)
N, M = 2, 3


def _closure(c):
    return lambda x: x * c - c


# (name, function, form); the value forms the direct route takes.
SUPPORTED = [
    ("scale", lambda x: x * 0.5, Form.VALUE),
    ("negate", lambda x: -x, Form.VALUE),
    ("plus_int", lambda x: x + 1, Form.VALUE),
    ("times_int", lambda x: x * 2, Form.VALUE),
    ("global", lambda x: x * SCALE - SCALE, Form.VALUE),
    ("tiny", lambda x: x * TINY + 1.0, Form.VALUE),
    ("int_global", lambda x: COUNT * x, Form.VALUE),
    ("numpy_scalars", lambda x: x * GAIN32 + GAIN64, Form.VALUE),
    ("closure", _closure(0.125), Form.VALUE),
    ("constant", lambda x: 2.0, Form.VALUE),
    ("identity", lambda x: x, Form.VALUE),
    ("filter", lambda x, d: x * d, Form.VALUE_DATA),
    ("filter_scaled", lambda x, d: x * d * SCALE, Form.VALUE_DATA),
    ("sum", lambda x, d: (x + d) * 0.5 - d, Form.VALUE_DATA),
    ("negated", lambda x, d: -x * d + 2, Form.VALUE_DATA),
    ("matched", lambda x, d: x * d.conjugate(), Form.VALUE_DATA),
    ("parts", lambda x, d: x.real * d - x.imag + d.imag * 0.5, Form.VALUE_DATA),
    ("conjugated", lambda x: x.conjugate() * 2.0 + x.real, Form.VALUE),
]


def raw_filter(data_out, offset, element, user_info, unused):
    data_out[offset] = element * user_info[offset] * SCALE


def raw_scale(data_out, offset, element, user_info, unused):
    data_out[offset] = element * 0.5


def raw_twice(data_out, offset, element, user_info, unused):
    data_out[offset] = (element - user_info[offset]) * user_info[offset]


def raw_window(data_in, offset, user_info, unused):
    return data_in[offset] * user_info[offset] + 0.25


def raw_negate(data_in, offset, user_info, unused):
    return -data_in[offset]


# cuFFT's own form (nvmath-python's): one kind each.
RAW = [("raw_filter", raw_filter, "epilog"), ("raw_scale", raw_scale, "epilog"), ("raw_twice", raw_twice, "epilog"),
       ("raw_window", raw_window, "prolog"), ("raw_negate", raw_negate, "prolog")]
COMPLEX_ONLY = [("complex_literal", lambda x: x - 0.25j, Form.VALUE),
                ("complex_global", lambda x, d: x * d + GAINC, Form.VALUE_DATA)]
REAL_ONLY = [("divide", lambda x: x / 3.0, Form.VALUE), ("divide_data", lambda x, d: (x - d) / d, Form.VALUE_DATA)]

ELEMENTS = ("complex64", "complex128", "float32", "float64")
USERS = {"complex64": ("complex64", "float32"), "complex128": ("complex128", "complex64"),
         "float32": ("float32", "float64"), "float64": ("float64",)}


def _cases():
    for element in ELEMENTS:
        functions = SUPPORTED + (COMPLEX_ONLY if element.startswith("complex") else REAL_ONLY)
        for k, (name, fn, form) in enumerate(functions):
            users = USERS[element] if form is Form.VALUE_DATA else (None,)
            for j, user in enumerate(users):
                kind = ("prolog", "epilog")[(k + j) % 2]
                indirect, narrow = bool(k % 3 == 0), bool((k + j) % 4 != 3)
                yield _case(name, fn, form, kind, element, user, indirect, narrow)
        for k, (name, fn, kind) in enumerate(RAW):
            for j, user in enumerate(USERS[element]):
                yield _case(name, fn, Form.CUFFT, kind, element, user, bool((k + j) % 2), bool(k % 3 != 2))


def _case(name, fn, form, kind, element, user, indirect, narrow):
    return pytest.param(fn, form, kind, element, user, indirect, narrow,
                        id=f"{name}-{kind}-{element}-{user}-{'slot' if indirect else 'direct'}-"
                           f"{'narrow' if narrow else 'double'}")


def _body(ptx: bytes) -> list[str]:
    text = ptx.decode()
    lines = [line.strip() for line in text[text.index(".visible .func"):].splitlines()]
    return [line for line in lines if line and not line.startswith("//")]


@pytest.mark.parametrize("fn, form, kind, element, user, indirect, narrow", list(_cases()))
def test_the_direct_route_emits_numbas_instructions(fn, form, kind, element, user, indirect, narrow):
    module = direct_ir(fn, kind, form, element, user, indirect=indirect, narrow=narrow, ir_version=ir_version())
    assert module is not None
    direct = compile_direct(module, ARCH, output="ptx")
    numba, _ = compile_ltoir(fn, kind, form, element, user, ARCH, indirect=indirect, narrow=narrow, output="ptx")
    assert _body(direct) == _body(numba)
    assert compile_direct(module, ARCH)[:4] == compile_ltoir(fn, kind, form, element, user, ARCH, indirect=indirect,
                                                              narrow=narrow)[0][:4]  # LTO-IR, as numba's


# Broadcast data: the offset decoded into the data's position (terms.Terms), 32- and 64-bit.
BROADCASTS = [
    ("row_filter", Terms((4096, 1000), (1000, 1), index=(), data=(0, 1))),
    ("column_gain", Terms((4096, 1024), (1024, 1), index=(), data=(1, 0))),
    ("plane", Terms((64, 30, 100), (3000, 100, 1), index=(), data=(0, 100, 1))),
    ("transposed", Terms((8, 6, 10), (1, 80, 8), index=(), data=(1, 0, 8))),
    ("wide", Terms((1 << 20, 8192), (8192, 1), index=(), data=(0, 1))),
]


@pytest.mark.parametrize("kind", ["prolog", "epilog"])
@pytest.mark.parametrize("indirect", [True, False], ids=["slot", "direct"])
@pytest.mark.parametrize("name, terms", BROADCASTS, ids=[b[0] for b in BROADCASTS])
def test_broadcast_data_is_read_where_numba_reads_it(name, terms, indirect, kind):
    fn = lambda v, h: v * h - 0.5  # noqa: E731
    module = direct_ir(fn, kind, Form.VALUE_DATA, "complex64", "float32", indirect=indirect, narrow=True,
                       terms=terms, ir_version=ir_version())
    assert module is not None
    numba, _ = compile_ltoir(fn, kind, Form.VALUE_DATA, "complex64", "float32", ARCH, indirect=indirect, narrow=True,
                             terms=terms, output="ptx")
    assert _body(compile_direct(module, ARCH, output="ptx")) == _body(numba)
    assert terms.width == (64 if name == "wide" else 32)


def _random_broadcasts(count: int, seed: int = 11):
    """Layouts an FFT walks (C order, transposed, sliced) with data broadcast over some axes."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        ndim = int(rng.integers(2, 4))
        shape = tuple(int(v) for v in rng.choice([1, 2, 3, 6, 7, 8, 10, 16, 100, 1000, 1024], ndim))
        order = rng.permutation(ndim)
        strides, step = [0] * ndim, int(rng.choice([1, 2]))
        for axis in order[::-1]:
            strides[axis], step = step, step * shape[axis]
        dense = [0] * ndim
        step = 1
        for axis in range(ndim - 1, -1, -1):  # the data: C order over the axes it does not repeat along
            if rng.random() < 0.5 and shape[axis] > 1:
                dense[axis], step = step, step * shape[axis]
        if any(dense) and tuple(dense) != tuple(strides):  # data laid out as the buffer reads at offset
            yield Terms(shape, tuple(strides), index=(), data=tuple(dense))


def _instructions(ptx: bytes) -> list[str]:
    """The body's instructions with registers unnamed, sorted: the same work in any order."""
    return sorted(re.sub(r"%[a-z]+\d+", "%", line) for line in _body(ptx))


def test_random_broadcast_layouts_give_numbas_instructions():
    """The same instructions as numba's route; on some layouts LLVM orders or associates the
    integer index arithmetic otherwise (``(o - a) + b`` for ``(o - b) + a``), the float work never."""
    fn = lambda v, h: v * h  # noqa: E731
    checked = same_order = 0
    for terms in _random_broadcasts(40):
        module = direct_ir(fn, "epilog", Form.VALUE_DATA, "complex64", "complex64", indirect=True, narrow=True,
                           terms=terms, ir_version=ir_version())
        assert module is not None, terms
        numba, _ = compile_ltoir(fn, "epilog", Form.VALUE_DATA, "complex64", "complex64", ARCH, indirect=True,
                                 narrow=True, terms=terms, output="ptx")
        direct = compile_direct(module, ARCH, output="ptx")
        assert _instructions(direct) == _instructions(numba), terms.key()
        floats = [line for line in _body(direct) if ".f32" in line]
        assert floats == [line for line in _body(numba) if ".f32" in line]
        checked += 1
        same_order += _body(direct) == _body(numba)
    assert checked >= 25 and same_order >= checked - 5


def test_index_forms_and_runtime_parameters_are_left_to_numba():
    with_index = Terms((4, 8), (8, 1), index=(False, True))
    with_params = Terms((4, 8), (8, 1), params=(("s", "float32"),))
    assert direct_ir(lambda x, i: x, "epilog", Form.VALUE_INDEX, "complex64", None, indirect=True, narrow=True,
                     terms=with_index) is None
    assert direct_ir(lambda x, *, s: x * s, "epilog", Form.VALUE, "complex64", None, indirect=True, narrow=True,
                     terms=with_params) is None


def _helper(x):
    return x


REFUSED = [
    ("abs", lambda x: abs(x), Form.VALUE, "complex64"),
    ("math_call", lambda x: x * math.cos(0.5), Form.VALUE, "complex64"),
    ("integer_attribute", lambda x: x * COUNT.real, Form.VALUE, "complex64"),
    ("helper", lambda x: _helper(x), Form.VALUE, "complex64"),
    ("power", lambda x: x ** 2, Form.VALUE, "complex64"),
    ("complex_division", lambda x, d: x / d, Form.VALUE_DATA, "complex64"),
    ("complex_by_real", lambda x: x / 2.0, Form.VALUE, "complex64"),
    ("integer_arithmetic", lambda x: x * (N * M), Form.VALUE, "complex64"),
    ("bool", lambda x: x * True, Form.VALUE, "float32"),
    ("array_global", lambda x: x * WINDOW, Form.VALUE, "float64"),
    ("branch", lambda x: x if SCALE else -x, Form.VALUE, "float32"),
    ("complex_into_real", lambda x: x * 1j, Form.VALUE, "float32"),
    ("nan", lambda x: x * float("nan"), Form.VALUE, "float32"),
    ("default", lambda x, s=2.0: x * s, Form.VALUE, "float32"),
    ("index_form", lambda x, i: x * i, Form.VALUE_INDEX, "complex64"),
    ("other_method", lambda x: x.copy(), Form.VALUE, "complex64"),
    ("method_with_arguments", lambda x: x.conjugate(1), Form.VALUE, "complex64"),
    ("other_attribute", lambda x: x.shape, Form.VALUE, "complex64"),
]




def raw_next(data_out, offset, element, user_info, unused):
    data_out[offset + 1] = element


def raw_two_stores(data_out, offset, element, user_info, unused):
    data_out[offset] = element
    data_out[offset] = element * 2.0


def raw_reads_output(data_out, offset, element, user_info, unused):
    data_out[offset] = element + data_out[offset]


def raw_first(data_out, offset, element, user_info, unused):
    data_out[offset] = element * user_info[0]


def raw_stores_nothing(data_out, offset, element, user_info, unused):
    return None


def raw_returns(data_out, offset, element, user_info, unused):
    data_out[offset] = element
    return element


REFUSED += [(f.__name__, f, Form.CUFFT, "complex64")
            for f in (raw_next, raw_two_stores, raw_reads_output, raw_first, raw_stores_nothing, raw_returns)]


@pytest.mark.parametrize("fn, form, element", [pytest.param(f, form, e, id=n) for n, f, form, e in REFUSED])
def test_what_the_direct_route_does_not_write_is_left_to_numba(fn, form, element):
    assert direct_ir(fn, "epilog", form, element, None, indirect=False, narrow=True) is None


def test_statements_and_jitted_functions_are_left_to_numba():
    def two_statements(x):
        y = x * 0.5
        return y

    numba_cuda = pytest.importorskip("numba.cuda")
    jitted = numba_cuda.jit(device=True)(lambda x: x * 0.5)
    for fn in (two_statements, jitted):
        assert direct_ir(fn, "epilog", Form.VALUE, "complex64", None, indirect=False, narrow=True) is None


NUMBA_TYPES = ("int64", "float32", "float64", "complex64", "complex128")


@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul], ids=lambda o: o.__name__)
def test_promotion_is_numbas(op):
    numba = pytest.importorskip("numba")
    values = {name: np.dtype(name).type(1) for name in NUMBA_TYPES}
    for a in NUMBA_TYPES:
        for b in NUMBA_TYPES:
            f = numba.njit(lambda x, y: op(x, y))
            f(values[a], values[b])
            assert str(f.nopython_signatures[-1].return_type) == _promote(a, b), (a, b)


def test_real_division_promotes_as_numba_does():
    numba = pytest.importorskip("numba")
    f = numba.njit(lambda x, y: x / y)
    for a, b in (("float32", "float32"), ("float32", "int64"), ("float32", "float64"), ("int64", "float64")):
        f(np.dtype(a).type(1), np.dtype(b).type(2))
        assert str(f.nopython_signatures[-1].return_type) == _promote(a, b)


def test_without_libnvvms_binding_numba_compiles_it(monkeypatch, tmp_path):
    from fftfuse_cache import ArtifactStore
    from fftfuse_compiler import compile_callback, direct_ir as module

    def unreachable():
        raise ImportError("cuda.bindings.nvvm")

    fn = lambda x: x * 0.5  # noqa: E731
    direct = compile_direct(direct_ir(fn, "epilog", Form.VALUE, "complex64", None, indirect=False, narrow=True), ARCH)
    monkeypatch.setattr(module, "ir_version", unreachable)
    compiled = compile_callback(fn, "epilog", "complex64", compute_capability=ARCH,
                                store=ArtifactStore(tmp_path / "cache"))
    assert compiled.ltoir and compiled.source == "compiled" and compiled.ltoir != direct  # numba's module
