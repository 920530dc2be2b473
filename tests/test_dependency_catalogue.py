"""Every kind of dependency a callback can have, changed four ways, against a fresh compile.

Each kind is a small generated module (plus, for some, a second module it imports) written in
two states, ``a`` and ``b``, that compute different things. Five processes, each handling every
kind at once, run this file as a script:

============  ============  ==========  ===============================================
process       sources       cache       role
============  ============  ==========  ===============================================
ref_a         a             C2 (empty)  fresh compiles of state a; fills C2
inproc        a, then b     C1 (empty)  state a compiled, changed in-process to b, again
ref_b         b             C3 (empty)  fresh compiles of state b: the reference
edited        b             C2          a fresh process after the source edit
after         b             C1          a fresh process after the in-process change
============  ============  ==========  ===============================================

The four ways each kind is checked:

1. in-process change: ``inproc`` compiles b afresh, to what ``ref_b`` compiled;
2. fresh process after a source edit: ``edited`` compiles b afresh, to what ``ref_b`` compiled;
3. fresh process after an in-process change: ``after`` finds b in the cache, and it is what
   ``ref_b`` compiled (the in-process change did not store a stale artifact);
4. CPU result: ``inproc``'s CPU callback after the change computes what the plain Python
   function computes in state b in ``ref_b``.

"What was compiled" is the PTX of the LTO-IR linked with a kernel calling cuFFT's prototype
(LTO-IR needs no GPU), and the fingerprint, which is the function's part of the cache key.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ARCH = 80

# Kind -> main module template, values for states a and b, an in-process change from a to b
# (statements run with ``m`` the main module and ``aux`` the second one; None: re-run the
# modules' b sources in place, as an edit and reload would), the second module's template,
# and the callback's kind, element type and user-data type.
NP = "import numpy as np\n"
VALUE = "def cb(x):\n    return {body}\n"


def value_kind(body: str, a: str, b: str, mutate: str | None = None, head: str = "", aux: str = "", **kw) -> dict:
    return dict(main=head + VALUE.format(body=body), a=a, b=b, mutate=mutate, aux=aux, **kw)


KINDS: dict[str, dict] = {
    # literals and constants in the code itself
    "float literal": value_kind("x * {v}", "2.5", "3.5"),
    "int literal": value_kind("x * {v}", "2", "3"),
    "complex literal": value_kind("x * {v}", "1j", "(2-1j)"),
    "literal in a nested function": dict(main="def cb(x):\n    def inner(y):\n        return y * {v}\n"
                                              "    return inner(x)\n", a="2.5", b="3.5", mutate=None, aux=""),
    "expression shape": value_kind("{v}", "x * 2.0 + 1.0", "x * 2.0 - 1.0"),
    # globals of the callback's module
    "float global": value_kind("x * K", "2.5", "3.5", "m.K = 3.5", head="K = {v}\n"),
    "int global": value_kind("x * N", "2", "3", "m.N = 3", head="N = {v}\n"),
    "complex global": value_kind("x * Z", "(1+1j)", "(2-1j)", "m.Z = 2 - 1j", head="Z = {v}\n"),
    "bool global": value_kind("x * 2.0 if FLAG else x", "True", "False", "m.FLAG = False", head="FLAG = {v}\n"),
    "int global as index": value_kind("x * W[I]", "1", "2", "m.I = 2", head=NP + "W = np.array([1.0, 2.0, 4.0])\nI = {v}\n"),
    "tuple global": value_kind("x * T[1]", "(1.0, 2.0)", "(1.0, 3.0)", "m.T = (1.0, 3.0)", head="T = {v}\n"),
    "nested tuple global": value_kind("x * T[0][1]", "((1.0, 2.0), 5)", "((1.0, 3.0), 5)",
                                      "m.T = ((1.0, 3.0), 5)", head="T = {v}\n"),
    "float32 scalar global": value_kind("x * K", "2.5", "3.5", "m.K = np.float32(3.5)",
                                        head=NP + "K = np.float32({v})\n"),
    "complex64 scalar global": value_kind("x * K", "1+2j", "2-1j", "m.K = np.complex64(2 - 1j)",
                                          head=NP + "K = np.complex64({v})\n"),
    "int32 scalar global": value_kind("x * K", "2", "3", "m.K = np.int32(3)", head=NP + "K = np.int32({v})\n"),
    "float64 scalar global": value_kind("x * K", "2.5", "3.5", "m.K = np.float64(3.5)",
                                        head=NP + "K = np.float64({v})\n"),
    "array global, changed in place": value_kind("x * W[1]", "[1.0, 2.0, 3.0]", "[1.0, 5.0, 3.0]", "m.W[1] = 5.0",
                                                 head=NP + "W = np.array({v}, np.float32)\n"),
    "array global dtype": value_kind("x * W[0]", "np.float32", "np.float64", "m.W = np.array([1.1, 2.2], np.float64)",
                                     head=NP + "W = np.array([1.1, 2.2], {v})\n"),
    "array global shape": value_kind("x * W.shape[0]", "3", "4", "m.W = np.arange(4, dtype=np.float32)",
                                     head=NP + "W = np.arange({v}, dtype=np.float32)\n"),
    "ufunc global": value_kind("F(x)", "np.sin", "np.cos", "m.F = np.cos", head=NP + "F = {v}\n"),
    "builtin global": value_kind("F(x)", "abs", "np.conj", "m.F = np.conj", head=NP + "F = {v}\n"),
    "numpy type global": value_kind("DT(x.real * 1.1)", "np.float32", "np.float64", "m.DT = np.float64",
                                    head=NP + "DT = {v}\n"),
    "numba type global": value_kind("T(x.real * 1.1)", "numba.float32", "numba.float64", "m.T = numba.float64",
                                    head="import numba\nT = {v}\n"),
    # closures
    "closure float": dict(main="def make(k):\n    def cb(x):\n        return x * k\n    return cb\ncb = make({v})\n",
                          a="2.5", b="3.5", mutate="m.cb.__closure__[0].cell_contents = 3.5", aux=""),
    "closure array, changed in place": dict(
        main=NP + "def make(w):\n    def cb(x):\n        return x * w[0]\n    return cb\n"
        "cb = make(np.array([{v}], np.float32))\n",
        a="2.5", b="3.5", mutate="m.cb.__closure__[0].cell_contents[0] = 3.5", aux=""),
    "closure tuple": dict(main="def make(t):\n    def cb(x):\n        return x * t[1]\n    return cb\ncb = make({v})\n",
                          a="(1.0, 2.0)", b="(1.0, 3.0)", mutate="m.cb.__closure__[0].cell_contents = (1.0, 3.0)",
                          aux=""),
    # plain Python helpers
    "helper body": value_kind("h(x) + 1.0", "2.5", "3.5", head="def h(x):\n    return x * {v}\n"),
    "helper reads a global": value_kind("h(x)", "2.5", "3.5", "m.K = 3.5",
                                        head="K = {v}\ndef h(x):\n    return x * K\n"),
    "helper of a helper": value_kind("h1(x)", "2.5", "3.5", "m.K = 3.5",
                                     head="K = {v}\ndef h2(x):\n    return x * K\ndef h1(x):\n    return h2(x) + 1.0\n"),
    "helper default argument": value_kind("h(x)", "2.5", "3.5", "m.h.__defaults__ = (3.5,)",
                                          head="def h(x, s={v}):\n    return x * s\n"),
    "helper rebound": value_kind("H(x)", "h1", "h2", "m.H = m.h2",
                                 head="def h1(x):\n    return x * 2.0\ndef h2(x):\n    return x * 3.0\nH = {v}\n"),
    "helper through a closure": dict(
        main="K = {v}\ndef h(x):\n    return x * K\ndef make(g):\n    def cb(x):\n        return g(x)\n    return cb\n"
        "cb = make(h)\n", a="2.5", b="3.5", mutate="m.K = 3.5", aux=""),
    "helper reads a global array": value_kind("h(x)", "2.5", "3.5", "m.W[0] = 3.5",
                                              head=NP + "W = np.array([{v}])\ndef h(x):\n    return x * W[0]\n"),
    # numba-jitted callbacks and helpers
    "njit helper reads a global": value_kind("h(x)", "2.5", "3.5", "m.K = 3.5",
                                             head="import numba\nK = {v}\n@numba.njit\ndef h(x):\n    return x * K\n"),
    "njit helper body": value_kind("h(x)", "2.5", "3.5",
                                   head="import numba\n@numba.njit\ndef h(x):\n    return x * {v}\n"),
    "njit helper fastmath": value_kind("h(x)", "False", "True",
                                       head="import numba\n@numba.njit(fastmath={v})\ndef h(x):\n    return x * 2.5 + x\n"),
    "njit callback reads a global": dict(main="import numba\nK = {v}\n@numba.njit\ndef cb(x):\n    return x * K\n",
                                         a="2.5", b="3.5", mutate="m.K = 3.5", aux=""),
    "cuda.jit helper reads a global": value_kind(
        "h(x)", "2.5", "3.5", "m.K = 3.5",
        head="from numba import cuda\nK = {v}\n@cuda.jit(device=True)\ndef h(x):\n    return x * K\n"),
    "cuda.jit callback reads a global": dict(
        main="from numba import cuda\nK = {v}\n@cuda.jit(device=True)\ndef cb(x):\n    return x * K\n",
        a="2.5", b="3.5", mutate="m.K = 3.5", aux=""),
    "vectorize helper reads a global": value_kind(
        "h(x)", "2.5", "3.5", "m.K = 3.5", head="import numba\nK = {v}\n@numba.vectorize\ndef h(x):\n    return x * K\n"),
    "njit helpers in a tuple global": value_kind(
        "FNS[1](x)", "2.5", "3.5", "m.K = 3.5",
        head="import numba\nK = {v}\n@numba.njit\ndef h(x):\n    return x * K\n@numba.njit\ndef g(x):\n    return x * 2.0 * K\n"
        "FNS = (h, g)\n"),
    "helpers in a tuple global": value_kind("FNS[0](x)", "2.5", "3.5", "m.K = 3.5",
                                            head="K = {v}\ndef h(x):\n    return x * K\nFNS = (h,)\n"),
    # other modules
    "module attribute float": value_kind("x * {aux}.K", "2.5", "3.5", "aux.K = 3.5", head="import {aux}\n",
                                         aux="K = {v}\n"),
    "module attribute array": value_kind("x * {aux}.W[1]", "2.5", "3.5", "aux.W[1] = 3.5", head="import {aux}\n",
                                         aux="import numpy as np\nW = np.array([1.0, {v}])\n"),
    "module attribute function": value_kind("{aux}.h(x)", "2.5", "3.5", head="import {aux}\n",
                                            aux="def h(x):\n    return x * {v}\n"),
    "module attribute njit reads its global": value_kind(
        "{aux}.h(x)", "2.5", "3.5", "aux.K = 3.5", head="import {aux}\n",
        aux="import numba\nK = {v}\n@numba.njit\ndef h(x):\n    return x * K\n"),
    "imported function reads its global": value_kind("h(x)", "2.5", "3.5", "aux.K = 3.5", head="from {aux} import h\n",
                                                     aux="K = {v}\ndef h(x):\n    return x * K\n"),
    "imported constant": value_kind("x * K", "2.5", "3.5", head="from {aux} import K\n", aux="K = {v}\n"),
    # enums and namedtuples
    "enum value": value_kind("x * C.A.value", "2.5", "3.5", head="import enum\nclass C(enum.Enum):\n    A = {v}\n"),
    "IntEnum member": value_kind("x * (C.A + 0)", "2", "3", head="import enum\nclass C(enum.IntEnum):\n    A = {v}\n"),
    "enum member global": value_kind("x * A.value", "2.5", "3.5",
                                     head="import enum\nclass C(enum.Enum):\n    A = {v}\n    B = 7.0\nA = C.A\n"),
    "enum member rebound": value_kind("x * A.value", "C.A", "C.B", "m.A = m.C.B",
                                      head="import enum\nclass C(enum.Enum):\n    A = 2.5\n    B = 3.5\nA = {v}\n"),
    "enum through a module attribute": value_kind(
        "x * {aux}.C.A.value", "2.5", "3.5", head="import {aux}\n", aux="import enum\nclass C(enum.Enum):\n    A = {v}\n"),
    "namedtuple global": value_kind("x * CFG.b", "2.5", "3.5", "m.CFG = m.P(1.0, 3.5)",
                                    head="import collections\nP = collections.namedtuple('P', 'a b')\nCFG = P(1.0, {v})\n"),
    "namedtuple through a module attribute": value_kind(
        "x * {aux}.CFG.b", "2.5", "3.5", "aux.CFG = aux.P(1.0, 3.5)", head="import {aux}\n",
        aux="import collections\nP = collections.namedtuple('P', 'a b')\nCFG = P(1.0, {v})\n"),
    # other forms, kinds and element types
    "value-data form global": dict(main="K = {v}\ndef cb(x, d):\n    return x * d * K\n", a="2.5", b="3.5",
                                   mutate="m.K = 3.5", aux="", user="complex64"),
    "cuFFT form global": dict(main="K = {v}\ndef cb(data_out, offset, value, info, unused):\n"
                                   "    data_out[offset] = value * K\n", a="2.5", b="3.5", mutate="m.K = 3.5", aux=""),
    "prolog global": value_kind("x * K", "2.5", "3.5", "m.K = 3.5", head="K = {v}\n", kind="prolog", element="float32"),
    "float64 epilog global": value_kind("x * K", "2.5", "3.5", "m.K = 3.5", head="K = {v}\n", element="float64"),
    "math function global": value_kind("F(x)", "math.sin", "math.cos", "m.F = math.cos", head="import math\nF = {v}\n",
                                       element="float32"),
}


def render(spec: dict, state: str, aux_name: str) -> tuple[str, str]:
    value = spec[state]
    main = spec["main"].replace("{v}", value).replace("{aux}", aux_name).replace("{body}", "")
    aux = spec["aux"].replace("{v}", value)
    return main, aux


def module_names(index: int) -> tuple[str, str]:
    return f"dep{index:02d}_main", f"dep{index:02d}_aux"


def write_sources(directory: Path, state: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index, spec in enumerate(KINDS.values()):
        main_name, aux_name = module_names(index)
        main, aux = render(spec, state, aux_name)
        (directory / f"{main_name}.py").write_text(main)
        (directory / f"{aux_name}.py").write_text(aux)


# --- the child: one process handles every kind ---------------------------------------------


def _observe(fn, spec: dict, *, link: bool = True, cpu: str = "") -> dict:
    """Compile ``fn`` for the GPU through the cache, and on the CPU as ``cpu`` says:
    "" not at all, "prime" compile only, "run" compile and run, "truth" run the plain Python
    function (in a fresh process, jitted helpers compile with the current values too)."""
    import numpy as np

    from fftfuse_compiler import compile_callback
    from fftfuse_compiler.cpu_backend import compile_cpu, python_callback
    from fftfuse_compiler.fingerprint import UncacheableError, function_fingerprint
    from fftfuse_compiler.linkcheck import link_check

    kind, element, user = spec.get("kind", "epilog"), spec.get("element", "complex64"), spec.get("user")
    try:
        fingerprint = function_fingerprint(fn)
    except UncacheableError as exc:
        fingerprint = f"uncacheable: {exc}"
    compiled = compile_callback(fn, kind, element, user, compute_capability=ARCH)
    observed = {"fingerprint": fingerprint, "source": compiled.source}
    if link:
        ptx = link_check(compiled.ltoir, kind, element, ARCH)
        observed["ptx"] = hashlib.sha256(ptx.encode()).hexdigest()
    if cpu == "prime":
        compile_cpu(fn, kind, element, user)
    elif cpu:
        rng = np.random.default_rng(7)
        n = 8
        dtype = np.dtype(element)
        x = (rng.standard_normal(n) + (1j * rng.standard_normal(n) if dtype.kind == "c" else 0)).astype(dtype)
        d = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)  # user types are complex
        out = np.zeros(n, dtype)

        def run(cb) -> list:
            for i in range(n):
                if kind == "prolog":
                    out[i] = cb.wrapper(x, np.uint64(i), d, None)
                else:
                    cb.wrapper(out, np.uint64(i), x[i], d, None)
            return [[float(v.real), float(v.imag)] for v in out.astype(np.complex128)]

        try:
            result = run(python_callback(fn, kind, element, user) if cpu == "truth" else compile_cpu(fn, kind, element, user))
        except Exception:  # a cuda.jit helper cannot run from Python: compile it for the CPU instead
            if cpu != "truth":
                raise
            result = run(compile_cpu(fn, kind, element, user))
        observed["cpu"] = result
    return observed


def _reload(module, source: str) -> None:
    exec(compile(source, module.__file__, "exec", dont_inherit=True), module.__dict__)


# role -> (sources change in-process, what the first observation does, what the one after the change does)
ROLES = {
    "ref_a": (False, dict(link=False), None),
    "inproc": (True, dict(link=False, cpu="prime"), dict(cpu="run")),
    "ref_b": (False, dict(cpu="truth"), None),
    "edited": (False, {}, None),
    "after": (False, {}, None),
}


def child(source_dir: str, role: str, out_path: str) -> None:
    import importlib

    import nvmath  # noqa: F401  (first: run from a checkout, it makes fftfuse_compiler importable)

    sys.path.insert(0, source_dir)
    report: dict[str, dict] = {}
    for index, (name, spec) in enumerate(KINDS.items()):
        main_name, aux_name = module_names(index)
        entry: dict = {}
        try:
            aux = importlib.import_module(aux_name)
            m = importlib.import_module(main_name)
            mutate, first, changed = ROLES[role]
            entry["first"] = _observe(m.cb, spec, **first)
            if mutate:
                if spec["mutate"] is None:
                    main_b, aux_b = render(spec, "b", aux_name)
                    _reload(aux, aux_b)
                    _reload(m, main_b)
                else:
                    exec(spec["mutate"], dict(vars(m), m=m, aux=aux))
                entry["changed"] = _observe(m.cb, spec, **changed)
        except Exception as exc:  # reported per kind by the parent
            entry["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        report[name] = entry
    Path(out_path).write_text(json.dumps(report))


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], sys.argv[3])
    sys.exit(0)


# --- the test ---------------------------------------------------------------------------------

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("dependency_catalogue")
    write_sources(root / "a", "a")
    write_sources(root / "b", "b")
    plan = [  # (role, sources, cache); one batch after the other
        [("ref_a", "a", "C2"), ("inproc", "a", "C1"), ("ref_b", "b", "C3")],
        [("edited", "b", "C2"), ("after", "b", "C1")],
    ]
    results: dict[str, dict] = {}
    for batch in plan:
        procs = []
        for name, sources, cache in batch:
            env = dict(os.environ, FFTFUSE_CACHE_DIR=str(root / cache),
                       PYTHONDONTWRITEBYTECODE="1",
                       PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p))
            out = root / f"{name}.json"
            cmd = [sys.executable, __file__, str(root / sources), name, str(out)]
            procs.append((name, out, subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.PIPE,
                                                      stderr=subprocess.STDOUT, text=True)))
        for name, out, proc in procs:
            log, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"{name} failed:\n{log[-4000:]}"
            results[name] = json.loads(out.read_text())
    return results


def _get(runs: dict, process: str, kind: str, which: str = "first") -> dict:
    entry = runs[process][kind]
    assert "error" not in entry, f"{process}: {entry.get('error')}"
    return entry[which]


def _key(kind: str, observed: dict) -> tuple:
    """What the cache key holds besides the fixed architecture and toolchain."""
    spec = KINDS[kind]
    return observed["fingerprint"], spec.get("kind", "epilog"), spec.get("element", "complex64"), spec.get("user")


WAYS = ["in-process change", "fresh process after a source edit", "fresh process after an in-process change",
        "CPU result"]


def test_catalogue_has_forty_kinds():
    assert len(KINDS) >= 40


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_dependency(runs, kind, way):
    ref_a, ref_b = _get(runs, "ref_a", kind), _get(runs, "ref_b", kind)
    assert ref_a["fingerprint"] != ref_b["fingerprint"], "the two states must differ in what they compute"
    # Kinds that compute the same thing (x * K with K = 2.5 whether K is a global or imported)
    # share artifacts by design: a hit is stale only for a fingerprint not compiled before.
    earlier = list(KINDS)[: list(KINDS).index(kind)]
    if way == "in-process change":
        before, changed = _get(runs, "inproc", kind), _get(runs, "inproc", kind, "changed")
        assert before["fingerprint"] == ref_a["fingerprint"]
        assert changed["fingerprint"] == ref_b["fingerprint"]
        seen = {_key(k, runs["inproc"][k][w]) for k in earlier for w in ("first", "changed") if w in runs["inproc"][k]}
        seen.add(_key(kind, before))
        assert changed["source"] == ("cache" if _key(kind, changed) in seen else "compiled")
        assert changed["ptx"] == ref_b["ptx"], "stale: compiled code differs from a fresh compile"
    elif way == "fresh process after a source edit":
        edited = _get(runs, "edited", kind)
        assert edited["fingerprint"] == ref_b["fingerprint"]
        compiled = [("ref_a", k) for k in KINDS] + [("edited", k) for k in earlier]
        in_cache = {_key(k, runs[p][k]["first"]) for p, k in compiled if "error" not in runs[p][k]}
        assert edited["source"] == ("cache" if _key(kind, edited) in in_cache else "compiled")
        assert edited["ptx"] == ref_b["ptx"]
    elif way == "fresh process after an in-process change":
        after = _get(runs, "after", kind)
        assert after["fingerprint"] == ref_b["fingerprint"]
        assert after["source"] == "cache"
        assert after["ptx"] == ref_b["ptx"], "poisoned: the cache holds what an in-process change compiled stale"
    else:
        import numpy as np

        changed, fresh = _get(runs, "inproc", kind, "changed"), _get(runs, "ref_b", kind)
        np.testing.assert_allclose(changed["cpu"], fresh["cpu"], rtol=1e-5, atol=1e-6)
