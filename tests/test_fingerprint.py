"""Tests for fftfuse_compiler.fingerprint: what changes a function's fingerprint and what does not."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from fftfuse_compiler.fingerprint import UncacheableError, function_fingerprint

REPO_ROOT = Path(__file__).resolve().parents[1]


def build(src: str, name: str = "f", filename: str = "<generated>", **globs):
    """Define function ``name`` from ``src`` by exec, in a namespace holding ``globs``."""
    namespace = dict(globs)
    exec(compile(textwrap.dedent(src), filename, "exec"), namespace)
    return namespace[name]


def load_module(path: Path, name: str) -> ModuleType:
    """Import the file at ``path`` as a fresh module called ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _no_bytecode(monkeypatch):
    # Rewritten temp modules must be recompiled, never served from a stale .pyc.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)


def module_level(x):
    return x * 2 + 1


module_lambda = lambda x: x * 2 + 1  # noqa: E731


# --- what must not matter -------------------------------------------------------------


def test_digest_is_sha256_hex():
    digest = function_fingerprint(module_level)
    assert len(digest) == 64
    int(digest, 16)


def test_same_function_defined_twice():
    def first(x):
        return x * 2 + 1

    def second(x):
        return x * 2 + 1

    assert function_fingerprint(first) == function_fingerprint(second)
    # Nesting and the function's name do not matter either.
    assert function_fingerprint(first) == function_fingerprint(module_level)


def test_exec_and_file_name_do_not_matter():
    src = """
    def f(x):
        return x * 2 + 1
    """
    a = build(src, filename="a.py")
    b = build("\n\n\n" + textwrap.dedent(src), filename="b.py")  # other lines too
    assert function_fingerprint(a) == function_fingerprint(b) == function_fingerprint(module_level)


def test_identical_lambdas_in_different_places():
    local_lambda = lambda x: x * 2 + 1  # noqa: E731
    exec_lambda = build("f = lambda x: x * 2 + 1")
    assert function_fingerprint(local_lambda) == function_fingerprint(module_lambda)
    assert function_fingerprint(exec_lambda) == function_fingerprint(module_lambda)


def test_fingerprint_is_stable_across_processes():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import nvmath;"
        "from fftfuse_compiler.fingerprint import function_fingerprint as fp;"
        "T = (1, 2.5, 'a', frozenset({'x', 'y', 'z'}));"
        "f = lambda x: (x, T, {'p', 'q', 'r'});"
        "print(fp(f))"
    )
    # Different hash seeds reorder sets; the digest must not follow.
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, str(REPO_ROOT)],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1


# --- what must matter -----------------------------------------------------------------


def test_body_change():
    assert function_fingerprint(build("f = lambda x: x + 1")) != function_fingerprint(build("f = lambda x: x + 2"))


def test_global_constant_change():
    src = "def f(x):\n    return x * SCALE\n"
    assert function_fingerprint(build(src, SCALE=2.0)) != function_fingerprint(build(src, SCALE=3.0))
    assert function_fingerprint(build(src, SCALE=2.0)) == function_fingerprint(build(src, SCALE=2.0))


def test_global_change_seen_on_the_same_function_object():
    f = build("def f(x):\n    return x * SCALE\n", SCALE=2.0)
    before = function_fingerprint(f)
    f.__globals__["SCALE"] = 4.0
    assert function_fingerprint(f) != before


@pytest.mark.parametrize(
    "a, b",
    [(1, 1.0), (1, True), (0, False), (1.0, 1 + 0j), ("1", b"1"), ((1, 2), frozenset({1, 2})), (0.0, -0.0)],
)
def test_global_values_are_type_tagged(a, b):
    src = "def f(x):\n    return x * K\n"
    assert function_fingerprint(build(src, K=a)) != function_fingerprint(build(src, K=b))


def test_closure_value_change():
    def make(k):
        return lambda x: x * k

    assert function_fingerprint(make(2)) != function_fingerprint(make(3))
    assert function_fingerprint(make(2)) == function_fingerprint(make(2))


def test_empty_closure_cell_is_uncacheable():
    def outer():
        def inner(x):
            return x + later

        with pytest.raises(UncacheableError, match="later"):
            function_fingerprint(inner)
        later = 1  # noqa: F841 - bound only after the check above
        return inner

    assert function_fingerprint(outer())


def test_default_argument_change():
    assert function_fingerprint(build("def f(x, k=1):\n    return x * k\n")) != function_fingerprint(
        build("def f(x, k=2):\n    return x * k\n")
    )


def test_keyword_default_change():
    a = build("def f(x, *, k=1):\n    return x * k\n")
    b = build("def f(x, *, k=1):\n    return x * k\n")
    assert function_fingerprint(a) == function_fingerprint(b)
    b.__kwdefaults__ = {"k": 5}
    assert function_fingerprint(a) != function_fingerprint(b)


def test_nested_lambda_constant_change():
    src = "def f(x):\n    g = lambda y: y + {c}\n    return g(x)\n"
    assert function_fingerprint(build(src.format(c=1))) != function_fingerprint(build(src.format(c=2)))


def test_global_read_only_by_nested_code_counts():
    src = "def f(xs):\n    return [x * SCALE for x in xs]\n"
    assert function_fingerprint(build(src, SCALE=1)) != function_fingerprint(build(src, SCALE=2))


def test_callee_change_in_another_module(tmp_path):
    path = tmp_path / "helpers_mod.py"
    path.write_text("def helper(x):\n    return x + 1\n")
    old = load_module(path, "fp_helpers_old")
    path.write_text("def helper(x):\n    return x + 100\n")
    new = load_module(path, "fp_helpers_new")
    src = "def f(x):\n    return helper(x) * 2\n"
    assert function_fingerprint(build(src, helper=old.helper)) != function_fingerprint(build(src, helper=new.helper))

    # The same body under another module name is the same computation.
    path.write_text("def helper(x):\n    return x + 1\n")
    again = load_module(path, "fp_helpers_again")
    assert function_fingerprint(build(src, helper=old.helper)) == function_fingerprint(build(src, helper=again.helper))


def test_callee_change_through_module_attribute(tmp_path):
    path = tmp_path / "fp_attr_mod.py"
    path.write_text("def helper(x):\n    return x + 1\n")
    mod = load_module(path, "fp_attr_mod")
    f = build("def f(x):\n    return mod.helper(x)\n", mod=mod)
    before = function_fingerprint(f)
    path.write_text("def helper(x):\n    return x - 1\n")
    mod.__spec__.loader.exec_module(mod)  # re-run the edited file into the same module
    assert function_fingerprint(f) != before


def test_callee_global_change(tmp_path):
    path = tmp_path / "fp_callee_globals.py"
    path.write_text("OFFSET = 1\n\ndef helper(x):\n    return x + OFFSET\n")
    mod = load_module(path, "fp_callee_globals")
    f = build("def f(x):\n    return helper(x)\n", helper=mod.helper)
    before = function_fingerprint(f)
    mod.OFFSET = 2
    assert function_fingerprint(f) != before


def test_module_attribute_change(tmp_path):
    path = tmp_path / "fp_scale_mod.py"
    path.write_text("SCALE = 2.0\nTABLE = [1, 2]\n")
    mod = load_module(path, "fp_scale_mod")
    f = build("def f(x):\n    return x * mymod.SCALE\n", mymod=mod)
    before = function_fingerprint(f)
    mod.SCALE = 3.0
    assert function_fingerprint(f) != before
    # A mutable attribute the function does not name is no obstacle.
    assert function_fingerprint(f)


def test_module_version_counts():
    fake_old = ModuleType("fakelib")
    fake_old.__version__ = "1.0"
    fake_new = ModuleType("fakelib")
    fake_new.__version__ = "2.0"
    src = "def f(x):\n    return fakelib\n"
    assert function_fingerprint(build(src, fakelib=fake_old)) != function_fingerprint(build(src, fakelib=fake_new))


def test_numpy_array_contents_change():
    src = "def f(i):\n    return W[i]\n"
    w = np.arange(8, dtype=np.float32)
    before = function_fingerprint(build(src, W=w))
    w2 = w.copy()
    w2[3] = -1
    assert function_fingerprint(build(src, W=w2)) != before
    assert function_fingerprint(build(src, W=w.copy())) == before
    # Same bytes, other dtype or shape: different.
    assert function_fingerprint(build(src, W=w.view(np.int32))) != before
    assert function_fingerprint(build(src, W=w.reshape(2, 4))) != before


def test_numpy_non_contiguous_arrays():
    src = "def f(i):\n    return W[i]\n"
    base = np.arange(16, dtype=np.float64).reshape(4, 4)
    assert function_fingerprint(build(src, W=base[:, 0])) != function_fingerprint(build(src, W=base[:, 1]))
    assert function_fingerprint(build(src, W=base.T)) == function_fingerprint(build(src, W=base.T.copy()))
    assert function_fingerprint(build(src, W=base.T)) != function_fingerprint(build(src, W=base))


def test_numpy_scalars_dtypes_and_ufuncs():
    src = "def f(x):\n    return G(x)\n"
    fp = lambda g: function_fingerprint(build(src, G=g))  # noqa: E731
    assert fp(np.float32(1)) != fp(np.float64(1))
    assert fp(np.float32(1)) != fp(np.float32(2))
    assert fp(np.dtype("complex64")) != fp(np.dtype("complex128"))
    assert fp(np.sin) != fp(np.cos)
    assert fp(np.sin) == fp(np.sin)
    assert fp(np.where) != fp(np.real)  # numpy's non-ufunc functions, by name


def test_object_array_is_uncacheable():
    f = build("def f(i):\n    return W[i]\n", W=np.array([object()], dtype=object))
    with pytest.raises(UncacheableError, match="'W'"):
        function_fingerprint(f)


def test_builtins_and_math_by_name():
    a = build("def f(x):\n    return abs(math.sin(x)) + complex(x, 0).real\n", math=math)
    b = build("def f(x):\n    return abs(math.sin(x)) + complex(x, 0).real\n", math=math)
    assert function_fingerprint(a) == function_fingerprint(b)
    c = build("def f(x):\n    return abs(math.cos(x)) + complex(x, 0).real\n", math=math)
    assert function_fingerprint(a) != function_fingerprint(c)


def test_shadowed_builtin_counts():
    src = "def f(x):\n    return abs(x)\n"
    assert function_fingerprint(build(src)) != function_fingerprint(build(src, abs=lambda x: -x))


def test_recursive_function_terminates():
    fact = build("def f(n):\n    return 1 if n <= 1 else n * f(n - 1)\n")
    assert function_fingerprint(fact) == function_fingerprint(build("def f(n):\n    return 1 if n <= 1 else n * f(n - 1)\n"))


def test_mutually_recursive_functions():
    src = """
    def is_even(n):
        return True if n == 0 else is_odd(n - 1)

    def is_odd(n):
        return False if n == 0 else is_even(n - {step})
    """
    a = build(src.format(step=1), name="is_even")
    b = build(src.format(step=1), name="is_even")
    c = build(src.format(step=2), name="is_even")
    assert function_fingerprint(a) == function_fingerprint(b)
    assert function_fingerprint(a) != function_fingerprint(c)


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, {1, 2}, object(), bytearray(b"x")], ids=repr)
def test_mutable_or_opaque_global_is_uncacheable(value):
    f = build("def f(x):\n    return TABLE\n", TABLE=value)
    with pytest.raises(UncacheableError) as info:
        function_fingerprint(f)
    assert "'TABLE'" in str(info.value)
    assert type(value).__name__ in str(info.value)


def test_uncacheable_global_in_callee_is_named():
    helper = build("def helper(x):\n    return STATE[0]\n", name="helper", STATE=[0])
    f = build("def f(x):\n    return helper(x)\n", helper=helper)
    with pytest.raises(UncacheableError, match="'STATE'"):
        function_fingerprint(f)


def test_uncacheable_default_and_closure():
    with pytest.raises(UncacheableError, match="default"):
        function_fingerprint(build("def f(x, acc=[]):\n    return x\n"))
    items = []
    with pytest.raises(UncacheableError, match="items"):
        function_fingerprint(lambda x: items)


def test_library_classes_by_qualified_name_user_classes_refused():
    class Local:
        SCALE = 2.0

    src = "def f(x):\n    return K(x)\n"
    assert function_fingerprint(build(src, K=complex)) != function_fingerprint(build(src, K=float))
    assert function_fingerprint(build(src, K=np.float32)) != function_fingerprint(build(src, K=np.float64))
    with pytest.raises(UncacheableError, match="global 'K' read by f is a type.*a class"):
        function_fingerprint(build(src, K=Local))  # Local.SCALE could change unseen


def test_tuple_of_functions():
    src = "def f(x):\n    return FNS[0](x)\n"
    one = build("def g(x):\n    return x + 1\n", name="g")
    two = build("def g(x):\n    return x + 2\n", name="g")
    assert function_fingerprint(build(src, FNS=(one,))) != function_fingerprint(build(src, FNS=(two,)))


def test_import_does_not_load_numpy_or_numba():
    code = (
        "import importlib.util, sys, nvmath;"  # nvmath (light) makes fftfuse_cache importable in a checkout
        "spec = importlib.util.spec_from_file_location('fp', sys.argv[1]);"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "f = lambda x: x + 1; m.function_fingerprint(f);"
        "print('numpy' in sys.modules, 'numba' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO_ROOT / "compiler" / "fingerprint.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["False", "False"]


# --- numba dispatchers ----------------------------------------------------------------


def test_numba_dispatcher_callee_via_py_func():
    numba = pytest.importorskip("numba")
    helper_a = numba.njit(build("def g(x):\n    return x + 1\n", name="g"))
    helper_b = numba.njit(build("def g(x):\n    return x + 1\n", name="g"))
    helper_c = numba.njit(build("def g(x):\n    return x + 2\n", name="g"))
    src = "def f(x):\n    return helper(x) * 2\n"
    fa = function_fingerprint(build(src, helper=helper_a))
    assert fa == function_fingerprint(build(src, helper=helper_b))
    assert fa != function_fingerprint(build(src, helper=helper_c))
    # The dispatcher differs from its plain Python function, and target options count.
    assert fa != function_fingerprint(build(src, helper=helper_a.py_func))
    fast = numba.njit(fastmath=True)(helper_a.py_func)
    assert fa != function_fingerprint(build(src, helper=fast))


def test_numba_dispatcher_itself_and_numba_types():
    numba = pytest.importorskip("numba")
    g = numba.njit(lambda x: x + 1)
    assert function_fingerprint(g) == function_fingerprint(numba.njit(lambda x: x + 1))
    src = "def f(x):\n    return T\n"
    assert function_fingerprint(build(src, T=numba.float32)) != function_fingerprint(build(src, T=numba.float64))


def test_numba_cuda_device_function_callee():
    cuda = pytest.importorskip("numba.cuda")
    try:
        one = cuda.jit(device=True)(build("def g(x):\n    return x + 1\n", name="g"))
        two = cuda.jit(device=True)(build("def g(x):\n    return x + 2\n", name="g"))
    except Exception as exc:  # a numba build without the CUDA target
        pytest.skip(f"cuda.jit unavailable: {exc}")
    src = "def f(x):\n    return helper(x)\n"
    assert function_fingerprint(build(src, helper=one)) != function_fingerprint(build(src, helper=two))
    assert function_fingerprint(build(src, helper=one)) != function_fingerprint(build(src, helper=one.py_func))


# -- the leaf memo of the hot path -------------------------------------------------------------------

LEAF_SCALE = 2.0


def _leaf(x):
    return x * LEAF_SCALE + abs(x)


def test_leaf_memo_is_exact_about_values_and_types():
    import numpy as np

    from fftfuse_compiler import fingerprint as fp

    global LEAF_SCALE
    seen = {}
    for value in (2.0, 3.0, -0.0, 0.0, float("nan"), np.float32(3.0), np.float64(3.0), 3, True, "3"):
        LEAF_SCALE = value
        digest = function_fingerprint(_leaf)
        assert fp._leaf_snapshot(_leaf) in fp._LEAF_MEMO  # the hot path is taken
        assert function_fingerprint(_leaf) == digest  # and answers the same
        seen[(type(value), repr(value))] = digest
    assert len(set(seen.values())) == len(seen)  # every value and type gives its own digest
    LEAF_SCALE = 2.0


def test_leaf_memo_matches_the_full_walk():
    from fftfuse_compiler import fingerprint as fp

    memo = function_fingerprint(_leaf)
    fp._LEAF_MEMO.clear()
    assert function_fingerprint(_leaf) == memo


def test_code_alone_only_where_the_code_object_decides_the_fingerprint():
    from fftfuse_compiler.fingerprint import code_alone

    product = "def f(v, d):\n    return v * d"
    assert code_alone(build(product)) and code_alone(build("f = lambda v: v * 0.5"))
    assert function_fingerprint(build(product)) == function_fingerprint(build(product, K=1))
    k = 2.0
    for reads_more in (build("f = lambda v: v * K", K=2.0), build("f = lambda v: abs(v)"), lambda v: v * k,
                       build("def f(v):\n    import math\n    return v"),
                       build("def f(v):\n    return (lambda w: w * K)(v)", K=2.0), build("f = lambda v, s=2: v * s"),
                       abs, np.sqrt):
        assert not code_alone(reads_more)
    # Asked on each call: defaults given to the function later, or another code object, count.
    f = build(product)
    f.__defaults__ = (2.0,)
    assert not code_alone(f)
    f.__defaults__, f.__kwdefaults__ = None, {"s": 1}
    assert not code_alone(f)
    g = build(product)
    assert code_alone(g)
    g.__code__ = build("def f(v, d):\n    return v * d * K", K=2.0).__code__
    assert not code_alone(g)


def test_functions_reaching_arrays_or_functions_skip_the_memo():
    import numpy as np

    from fftfuse_compiler import fingerprint as fp

    table = np.arange(4.0)

    def reads_array(x):
        return x * table[0]

    def calls_helper(x):
        return _leaf(x)

    assert fp._leaf_snapshot(reads_array) is None and fp._leaf_snapshot(calls_helper) is None
    before = function_fingerprint(reads_array)
    table[0] = 7.0  # mutated in place: must still change the digest
    assert function_fingerprint(reads_array) != before


# --- values numba bakes in that used to be fingerprinted by name or not at all ----------


def _enum_module(tmp_path, value_a, value_b, base="Enum"):
    text = f"import enum\nclass Color(enum.{base}):\n    RED = {value_a}\n    BLUE = {value_b}\n"
    path = tmp_path / f"colors_{abs(hash((value_a, value_b, base)))}.py"
    path.write_text(text)
    return load_module(path, path.stem)


@pytest.mark.parametrize("base", ["Enum", "IntEnum"])
def test_enum_member_values_count(tmp_path, base):
    one = _enum_module(tmp_path, 1, 2, base)
    two = _enum_module(tmp_path, 3, 2, base)
    for src in ("def f(x):\n    return x * C.RED.value\n", "def f(x):\n    return x * RED.value\n",
                "def f(x):\n    return x * RED\n", "def f(x):\n    return x * m.Color.RED.value\n"):
        fa = build(src, C=one.Color, RED=one.Color.RED, m=one)
        fb = build(src, C=two.Color, RED=two.Color.RED, m=two)
        if base == "Enum" and src.endswith("RED\n"):
            continue  # x * Enum member does not compile; only its value matters
        assert function_fingerprint(fa) != function_fingerprint(fb), src


def test_namedtuple_values_and_fields_count():
    import collections

    P = collections.namedtuple("P", "scale shift")
    Q = collections.namedtuple("P", "shift scale")
    src = "def f(x):\n    return x * CFG.scale + CFG.shift\n"
    base = function_fingerprint(build(src, CFG=P(2.0, 1.0)))
    assert base == function_fingerprint(build(src, CFG=P(2.0, 1.0)))
    assert base != function_fingerprint(build(src, CFG=P(3.0, 1.0)))
    assert base != function_fingerprint(build(src, CFG=Q(2.0, 1.0)))  # same items, fields swapped
    with pytest.raises(UncacheableError, match="field 'scale' of global 'CFG' read by f is a list"):
        function_fingerprint(build(src, CFG=P([2.0], 1.0)))


def test_unfingerprintable_module_attribute_is_refused(tmp_path):
    path = tmp_path / "settings_mod.py"
    path.write_text("import collections\nTABLE = [1.0, 2.0]\nclass Cfg:\n    K = 2.0\n")
    mod = load_module(path, "settings_mod")
    with pytest.raises(UncacheableError, match="module attribute settings_mod.TABLE is a list"):
        function_fingerprint(build("def f(x):\n    return x * m.TABLE[0]\n", m=mod))
    with pytest.raises(UncacheableError, match="module attribute settings_mod.Cfg"):
        function_fingerprint(build("def f(x):\n    return x * m.Cfg.K\n", m=mod))


def test_structured_scalars_and_arrays_by_fields():
    a = np.zeros((), dtype=[("re", "<f4")])[()]
    b = np.zeros((), dtype=[("im", "<f4")])[()]
    c = np.zeros((), dtype=[("n", "<i4")])[()]
    src = "def f(x):\n    return (x, REC)[0]\n"
    digests = {function_fingerprint(build(src, REC=v)) for v in (a, b, c)}
    assert len(digests) == 3
    arrays = {function_fingerprint(build(src, REC=np.zeros(2, dt))) for dt in ([("a", "<f4")], [("b", "<i4")])}
    assert len(arrays) == 2


@pytest.mark.parametrize("make", [np.timedelta64, np.datetime64])
def test_time_units_count_in_memo(make):
    f = build("def f(x):\n    return (x, T)[0]\n", T=make(3, "s"))
    seconds = function_fingerprint(f)
    f.__globals__["T"] = make(3, "ms")  # same type, same bits, another unit
    assert function_fingerprint(f) != seconds
    f.__globals__["T"] = make(3, "s")
    assert function_fingerprint(f) == seconds


def test_jitted_helpers_by_python_function():
    import numba

    src = "def h(x):\n    return x * K\n"
    one = numba.vectorize(build(src, name="h", K=2.0))
    two = numba.vectorize(build(src, name="h", K=3.0))
    cb = "def f(x):\n    return H(x)\n"
    assert function_fingerprint(build(cb, H=one)) != function_fingerprint(build(cb, H=two))
    fast = numba.vectorize(fastmath=True)(build(src, name="h", K=2.0))
    assert function_fingerprint(build(cb, H=one)) != function_fingerprint(build(cb, H=fast))


@pytest.mark.parametrize("library", ["cupy", "scipy"])
def test_array_library_functions_by_name_and_version(library):
    """CuPy's FFT functions read Cython functions: walking into them made every function that
    calls ``cupy.fft.fft`` uncacheable (so ``fuse`` ran CuPy code unfused)."""
    xp = pytest.importorskip(library)
    if library == "scipy":
        import scipy.fft
    forward = build("def f(x, h):\n    return XP.fft.ifft(XP.fft.fft(x) * h)\n", XP=xp)
    inverse = build("def f(x, h):\n    return XP.fft.fft(XP.fft.ifft(x) * h)\n", XP=xp)
    assert function_fingerprint(forward) != function_fingerprint(inverse)
    assert function_fingerprint(forward) == function_fingerprint(
        build("def f(x, h):\n    return XP.fft.ifft(XP.fft.fft(x) * h)\n", XP=xp))
    if library == "cupy":  # ufunc objects count by name too
        exp = build("def f(x):\n    return XP.exp(x)\n", XP=xp)
        log = build("def f(x):\n    return XP.log(x)\n", XP=xp)
        assert function_fingerprint(exp) != function_fingerprint(log)


# -- objects that state their identity (__fftfuse_fingerprint__) ------------------------------------

class _Described:
    def __init__(self, identity):
        self.identity = identity

    def __fftfuse_fingerprint__(self):
        return self.identity


class _OtherDescribed(_Described):
    pass


def test_an_object_stating_its_identity_is_fingerprinted_by_it():
    src = "def f(x):\n    return OBJ(x)\n"
    a, b = _Described("spec-1"), _Described("spec-1")
    found = []
    assert function_fingerprint(build(src, OBJ=a), found) == function_fingerprint(build(src, OBJ=b))
    assert found == [a]  # what a cache selects kernels by
    assert function_fingerprint(build(src, OBJ=a)) != function_fingerprint(build(src, OBJ=_Described(b"spec-2")))
    # Tagged with its class: another class stating the same identity is another value.
    assert function_fingerprint(build(src, OBJ=a)) != function_fingerprint(build(src, OBJ=_OtherDescribed("spec-1")))


def test_an_object_whose_identity_cannot_be_read_is_uncacheable():
    src = "def f(x):\n    return OBJ(x)\n"
    with pytest.raises(UncacheableError, match="returned a int"):
        function_fingerprint(build(src, OBJ=_Described(3)))

    class Broken(_Described):
        def __fftfuse_fingerprint__(self):
            raise RuntimeError("no libmathdx")

    with pytest.raises(UncacheableError, match="no libmathdx"):
        function_fingerprint(build(src, OBJ=Broken("x")))
