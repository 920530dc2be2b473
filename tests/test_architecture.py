"""The shape of the code, read from its source: no import cycles in the three packages, no module
reading another module's private names, one parser of the callback argument, nothing frozen
mutated. Each allow-list below names what remains and why; shrink them, never grow them silently.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Import name -> the folder that holds the package.
PACKAGES = {"nvmath": "nvmath", "fftfuse_compiler": "compiler", "fftfuse_cache": "cache"}

# Import cycles that remain (each a sorted list of the modules in one cycle), with the reason.
KNOWN_CYCLES: dict[tuple[str, ...], str] = {}

# Private attributes read on objects of code outside the three packages (module, attribute): reason.
FOREIGN_PRIVATE_ALLOWED = {
    ("nvmath.fft._cufft", "_name"): "ctypes.CDLL keeps the loaded library's path only as _name",
    ("nvmath.fft._dask", "_meta"): "Dask's array metadata (the chunk type), documented for map_blocks",
    ("nvmath.device._mathdx", "_name"): "ctypes.CDLL keeps the loaded library's path only as _name",
    ("nvmath.device._numba", "_linking_files"): "numba-cuda's code library lists what it links only there "
                                                "(numba-cuda is pinned below 0.31 for this)",
    ("fftfuse_compiler.link_cache", "_linking_files"): "numba-cuda's code library: what goes into the link (the key)",
    ("fftfuse_compiler.link_cache", "_max_registers"): "numba-cuda's code library: a link option (part of the key)",
    ("fftfuse_compiler.link_cache", "_entry_name"): "numba-cuda's code library: the kernel's name (part of the key)",
    ("fftfuse_compiler.kernel_cache", "_rebuild"): "numba-cuda rebuilds a kernel and its code library only "
                                                   "through _rebuild (what its own disk cache calls)",
    ("fftfuse_compiler.kernel_cache", "_ensure_cc"): "numba-cuda's rule for the target its cubin cache is keyed "
                                                     "by ((9, 0, 'a') for sm_90), read rather than copied",
    ("fftfuse_compiler.kernel_cache", "_max_registers"): "numba-cuda's code library: a launch field kept with the cubin",
    ("fftfuse_compiler.kernel_cache", "_nvvm_options"): "numba-cuda's code library: a field _rebuild takes",
    ("fftfuse_compiler.kernel_cache", "_lto"): "numba-cuda's code library: a field _rebuild takes",
    ("fftfuse_compiler.kernel_cache", "_linking_files"): "numba-cuda's code library: a kernel linking NRT is not kept",
    ("fftfuse_compiler.kernel_cache", "_setup_functions"): "numba-cuda's code library: a kernel whose module needs "
                                                           "set-up functions is not kept",
    ("fftfuse_compiler.kernel_cache", "_teardown_functions"): "numba-cuda's code library: as _setup_functions",
    ("fftfuse_compiler.kernel_cache", "_cache"): "numba-cuda's dispatcher: one with numba's own disk cache is left "
                                                 "to it",
    ("fftfuse_compiler.kernel_cache", "_can_compile"): "numba-cuda's dispatcher: one that may not compile is left "
                                                       "to numba (it raises)",
    ("fftfuse_compiler.cpu_errors", "_getvalue"): "numba's struct proxy returns its LLVM value only through _getvalue",
    ("nvmath.fft._options", "_data"): "os.environ's dict: the stateless hot path reads FFTFUSE_DEBUG on every "
                                      "call, and os.environ.get of an unset name costs a caught KeyError (~1 us); "
                                      "os.environ.get answers where the dict is not there",
}

# The namedtuple API: public despite the underscore (it avoids clashing with field names).
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}

# object.__setattr__ on a frozen dataclass (module, attribute): reason.
FROZEN_WRITES_ALLOWED = {
    ("nvmath.fft._layout", "_hash"): "a cache of the hash of an immutable value, computed on first use",
}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            out[".".join(parts)] = (path, is_package)
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), filename=str(path)) for name, (path, _) in MODULES.items()}


def _absolute(module: str, is_package: bool, level: int, name: str) -> str:
    if level == 0:
        return name
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _ours(name: str) -> str | None:
    """The module of the three packages ``name`` is or lies in (None: another project's)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, int]]:
    """(imported module of ours, line) for every import statement, module-level or in a function."""
    _, is_package = MODULES[module]
    found = []
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            found += [(t, node.lineno) for a in node.names if (t := _ours(a.name))]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module or "")
            for a in node.names:
                full = f"{base}.{a.name}"
                target = full if full in MODULES else _ours(base)
                if target:
                    found.append((target, node.lineno))
    return found


def _cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_imports_of_every_kind():
    imported = {t for t, _ in _imports("nvmath.fft._build")}
    assert {"nvmath.fft._planner", "nvmath.fft._gpu", "fftfuse_compiler.linkcheck"} <= imported  # relative, in a function, absolute
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [("a", "b", "c")]


def test_no_import_cycle_in_the_three_packages():
    graph = {m: {t for t, _ in _imports(m)} - {m} for m in MODULES}
    cycles = {c: [(m, line, t) for m in c for t, line in _imports(m) if t in c and t != m] for c in _cycles(graph)}
    unexpected = {c: edges for c, edges in cycles.items() if c not in KNOWN_CYCLES}
    assert not unexpected, f"import cycles (module, line, imports): {unexpected}"
    gone = set(KNOWN_CYCLES) - set(cycles)
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {gone}"


def _module_bindings(module: str) -> tuple[dict[str, str], list[tuple[str, str, int]]]:
    """Local names bound to modules of ours, and private names imported from them with ``from``."""
    _, is_package = MODULES[module]
    bound, private = {}, []
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _ours(a.name):
                    bound[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module or "")
            if not _ours(base):
                continue
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in MODULES:
                    bound[a.asname or a.name] = full  # a (private) module of the package: its interface
                elif a.name.startswith("_") and not a.name.startswith("__"):
                    private.append((_ours(base), a.name, node.lineno))
    return bound, private


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in NAMEDTUPLE_API


def test_no_module_reads_another_modules_private_names():
    reads = []
    for module in MODULES:
        bound, private = _module_bindings(module)
        reads += [(module, line, f"{target}.{name}") for target, name, line in private if target != module]
        for node in ast.walk(TREES[module]):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                target = ".".join([bound[value.id], *reversed(chain)])
                if target in MODULES and target != module and f"{target}.{node.attr}" not in MODULES:
                    reads.append((module, node.lineno, f"{target}.{node.attr}"))
    assert not reads, f"private names of other modules read (module, line, name): {reads}"


def _own_private_names(tree: ast.AST) -> set[str]:
    """Private names a module defines itself: functions, classes, variables, attributes it sets."""
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            own.add(node.target.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            own.add(node.value)  # a name given as text: __slots__, getattr/setattr
    return {n for n in own if _private(n)}


def test_no_module_reads_private_attributes_it_does_not_define():
    """``obj._name`` where no code of the reading module defines ``_name``: a reach into an object
    of another module's class (or another project's)."""
    reads = []
    for module, tree in TREES.items():
        own = _own_private_names(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)) or node.attr in own:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if (module, node.attr) not in FOREIGN_PRIVATE_ALLOWED:
                reads.append((module, node.lineno, ast.unparse(node)))
    assert not reads, f"private attributes read from outside their module (module, line, expression): {reads}"


def test_nothing_frozen_is_mutated():
    writes = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and ast.unparse(node.func) == "object.__setattr__"
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                    and (module, node.args[1].value) not in FROZEN_WRITES_ALLOWED):
                writes.append((module, node.lineno, ast.unparse(node)))
    assert not writes, f"object.__setattr__ on frozen values: {writes}"


# -- one parser of prolog= / epilog= -------------------------------------------------------------
def _scale(v):
    return v * 2


FORMS = [
    (_scale, "function", "fn"),
    ({"fn": _scale}, "dict", "fn"),
    ({"fn": lambda v, d: v * d, "data": np.ones(8, np.complex64)}, "dict", "fn"),
    ({"source": "__device__ float2 f(float2 x) { return x; }"}, "dict", "source"),
    ({"ltoir": b"\0" * 8, "data": 1234}, "dict", "ltoir"),
    (b"\0" * 8, "bytes", "ltoir"),
]


@pytest.mark.parametrize("value, origin, part", FORMS)
def test_every_accepted_form_parses_to_one_record(value, origin, part):
    from nvmath.fft import DeviceCallable
    from nvmath.fft._callbacks import CallbackArg, callback_spec, parse_callback

    arg = parse_callback(value, "epilog")
    assert isinstance(arg, CallbackArg) and arg.origin == origin and arg.kind == "epilog"
    assert [p for p in ("fn", "ltoir", "source") if getattr(arg, p) is not None] == [part]
    spec = callback_spec(value, "epilog")
    assert spec.has_data == (spec.data is not None)
    if part == "ltoir":
        wrapped = parse_callback(DeviceCallable(ltoir=arg.ltoir, data=arg.data), "epilog")
        assert wrapped.origin == "callable_object" and wrapped[2:] == arg[2:]


def test_callback_records_do_not_change_a_call_brings_its_own_data():
    import dataclasses

    from nvmath.fft._callbacks import callback_spec

    spec = callback_spec({"fn": lambda v, d: v * d, "data": np.ones(8, np.complex64)}, "epilog")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.data = None
    released = spec.with_data(None)
    assert released is not spec and spec.data is not None and released.data is None and released.has_data


def test_a_dask_prolog_with_runtime_parameters_is_refused_not_dropped():
    pytest.importorskip("dask")
    from nvmath.fft import DeviceCallable
    from nvmath.fft._dask import _side

    def gain(v, *, g=2.0):
        return v * g

    with pytest.raises(TypeError, match="runtime parameters"):
        _side("prolog", DeviceCallable(fn=gain, params={"g": 3.0}), (4, 8), ((4,), (8,)), "complex64", False,
              None, None, [])


# -- one executor interface ----------------------------------------------------------------------
def test_both_executors_implement_the_executor_interface():
    import inspect

    from nvmath.fft._cpu import CpuExecutor
    from nvmath.fft._executor import Executor
    from nvmath.fft._gpu import GpuPlan
    from nvmath.fft._half import PromotedCpuExecutor, PromotedGpuExecutor

    for executor in (GpuPlan, CpuExecutor, PromotedGpuExecutor, PromotedCpuExecutor):
        for name in ("run", "release", "free"):
            expected = list(inspect.signature(getattr(Executor, name)).parameters)
            assert list(inspect.signature(getattr(executor, name)).parameters) == expected, (executor, name)


def test_the_cpu_executor_runs_through_the_interface():
    from fftfuse_compiler.cpu_backend import python_callback
    from nvmath.fft._cpu import CpuExecutor
    from nvmath.fft._executor import CPU_NO_DATA, CallArgs, Executor
    from nvmath.fft._layout import plan_problem

    x = np.random.default_rng(5).standard_normal((3, 16)).astype(np.complex128)
    problem = plan_problem("fft", x.shape, (16, 1), "complex128", axes=(1,))
    executor = CpuExecutor(problem, None, python_callback(lambda v: v * 3, "epilog", "complex128"), workers=1)
    assert isinstance(executor, Executor)
    out = np.empty_like(x)
    executor.run(CallArgs(x, out, "inverse", None, CPU_NO_DATA))
    executor.release()
    np.testing.assert_allclose(out, 3 * 16 * np.fft.ifft(x), rtol=1e-12, atol=1e-12)
    executor.free()
    plain = CpuExecutor(problem, None, None, workers=1)
    assert plain.run(CallArgs(x, out, "forward", None, CPU_NO_DATA)) is out
    np.testing.assert_allclose(out, np.fft.fft(x), rtol=1e-12, atol=1e-12)
    new = plain.run(CallArgs(x, None, "forward", None, CPU_NO_DATA))  # no output given: a new one
    assert new is not out and not np.shares_memory(new, x)
    np.testing.assert_allclose(new, np.fft.fft(x), rtol=1e-12, atol=1e-12)
