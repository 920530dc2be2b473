"""``fftfuse``: inspect, ship and warm the compile cache, and check the installation.

::

    fftfuse --version
    fftfuse doctor                          GPU, driver, cuFFT, nvJitLink, NVRTC, numba, cache health
    fftfuse cache info                      where the cache is, how full, which toolchain
    fftfuse cache list                      one line per entry
    fftfuse cache clear                     remove every entry (rebuilds a damaged index)
    fftfuse cache export BUNDLE             write every entry to one zip file
    fftfuse cache import BUNDLE             add a bundle's entries (e.g. on another machine)
    fftfuse cache verify [--drop]           check the index and digests, link each LTO-IR entry
    fftfuse precompile MODULE:FUNC [...] --kind epilog --dtype complex64 [--arch 90 ...]
    fftfuse tune-chains [--lengths 64,1024] [--precision float32]   measure the one-kernel chain's knobs

Every command takes ``--json`` (one JSON document on stdout) and ``--cache-dir DIR``
(default: ``$FFTFUSE_CACHE_DIR`` or the user cache directory). Exit status: 0 on success,
1 when something failed (reported on stderr in one line; a cache directory that cannot be
used counts, for every verb), 2 for a malformed command line. Output cut short by a closed
pipe ends quietly with status 141; standard output closed or unwritable (a full disk) gives
one line on stderr and status 1.

The management verbs act on the directory even where ``FFTFUSE_CACHE=0`` turns the disk
layer off for compiles. This module imports nothing heavy at load time: numba only when
``precompile`` compiles something, the CUDA bindings only to link-check or to ask for the
default architecture.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import os
import sys
import time
import warnings
from typing import Any, Callable, Sequence

from ._cli_render import Report, render

__all__ = ["main", "load_function", "SpecError"]


class SpecError(ValueError):
    """A ``MODULE:FUNC`` or ``path/to/file.py:FUNC`` spec that does not name a function."""


class CLIError(Exception):
    """A failure to report on stderr as ``fftfuse: error: ...`` with exit status 1."""


class _OutputError(Exception):
    """Standard output cannot be written (closed, full disk, I/O error)."""


class _GuardedOutput:
    """Standard output whose write failures (other than a closed pipe) raise :class:`_OutputError`."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed
            raise _OutputError(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:
            raise _OutputError(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fftfuse`` command line; return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a malformed command line (argparse printed why)
        return exc.code if isinstance(exc.code, int) else 2
    # Defaults are filled in here, not with set_defaults: parent parsers share their
    # actions, so a default set on one parser would overwrite values parsed by another.
    args.cache_dir = getattr(args, "cache_dir", None)
    args.verbose = getattr(args, "verbose", False)
    args.json = getattr(args, "json", False)
    if sys.stdout is None:  # started with stdout closed (``>&-``): Python gives None
        _error("standard output is closed; run the command with its output going to a terminal, a file or a pipe")
        return 1
    if args.version:
        args.run = cmd_version
    if not hasattr(args, "run"):
        getattr(args, "usage", parser).print_help(sys.stderr)
        return 2
    _configure_logging(args.verbose)
    real_stdout = sys.stdout
    sys.stdout = _GuardedOutput(real_stdout)
    try:
        with warnings.catch_warnings():
            # The commands report an unusable cache directory themselves, as an error.
            warnings.filterwarnings("ignore", "fftfuse: the compile cache in", RuntimeWarning)
            code = render(args.run(args), args)
        sys.stdout.flush()  # a closed pipe or a full disk shows here, inside the handlers below
        return code
    except CLIError as exc:
        _error(str(exc))
        return 1
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly.
        _silence_stdout(real_stdout)
        return 141  # 128 + SIGPIPE, as a shell reports a command a closed pipe stopped
    except _OutputError as exc:
        _silence_stdout(real_stdout)
        _error(f"cannot write to standard output: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stdout = real_stdout


def _error(message: str) -> None:
    """``fftfuse: error: ...`` on stderr, if there is a stderr to write to."""
    if sys.stderr is not None:
        try:
            print(f"fftfuse: error: {message}", file=sys.stderr)
        except (OSError, ValueError):
            pass


def _silence_stdout(stream: Any) -> None:
    """Point stdout's descriptor at the null device, so that Python's flush at exit cannot raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no descriptor (an in-memory stream): nothing to flush at exit
        pass


def version() -> str:
    """fftfuse's installed version (``nvmath.__version__``)."""
    import nvmath

    return nvmath.__version__


def cmd_version(args: argparse.Namespace) -> Report:
    """The version: ``fftfuse X.Y.Z``; as JSON an object with ``name`` and ``version``."""
    return Report("version", {"name": "fftfuse", "version": version()})


def _parser() -> argparse.ArgumentParser:
    # --cache-dir/--json/-v are accepted before or after the verb; SUPPRESS keeps a subparser
    # from overwriting a value given at the top level.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="cache directory (default: $FFTFUSE_CACHE_DIR or the user cache directory)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON on stdout instead of text")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log what the cache and compiler do")

    parser = argparse.ArgumentParser(
        prog="fftfuse", parents=[common],
        description="Manage fftfuse's compile cache of cuFFT LTO callbacks, and check the installation.",
    )
    parser.add_argument("--version", action="store_true", help="print fftfuse's version (with --json: as JSON)")
    verbs = parser.add_subparsers(title="commands", metavar="{cache,precompile,tune-chains,doctor}")

    cache = verbs.add_parser("cache", help="inspect or manage the cache", description="Inspect or manage the cache.")
    actions = cache.add_subparsers(title="actions", metavar="{info,list,clear,export,import,verify}")
    cache.set_defaults(usage=cache)  # "fftfuse cache" without an action: its help, status 2

    info = actions.add_parser("info", parents=[common], help="directory, size, toolchain, default architecture, this CPU")
    info.set_defaults(run=cmd_info)

    listing = actions.add_parser("list", parents=[common], help="one line per entry (--json: one object per line)")
    listing.set_defaults(run=cmd_list)

    clear = actions.add_parser("clear", parents=[common], help="remove every entry")
    clear.set_defaults(run=cmd_clear)

    export = actions.add_parser("export", parents=[common], help="write every entry to a bundle (zip)")
    export.add_argument("bundle", metavar="BUNDLE", help="bundle file to write")
    export.set_defaults(run=cmd_export)

    imp = actions.add_parser("import", parents=[common], help="add the entries of a bundle")
    imp.add_argument("bundle", metavar="BUNDLE", help="bundle file made by 'fftfuse cache export'")
    imp.set_defaults(run=cmd_import)

    verify = actions.add_parser(
        "verify", parents=[common], help="check the index and every entry, link its LTO-IR",
        description="Check the index's integrity (rebuilding a damaged one), re-read every entry, check that it "
        "is the entry of its key (a digest over key, metadata and payload), and link each LTO-IR entry against cuFFT's callback prototype for its recorded kind, element "
        "type and architecture. Exit status 1 when a bad entry remains.",
    )
    verify.add_argument("--drop", action="store_true", help="remove the bad entries")
    verify.add_argument("--no-link", action="store_true", help="check digests only (no NVRTC/nvJitLink)")
    verify.set_defaults(run=cmd_verify)

    pre = verbs.add_parser(
        "precompile", parents=[common], help="compile callbacks into the cache ahead of time",
        description="Import each function and compile it through the cache for each architecture, under the "
        "same keys the FFT calls look up.",
    )
    pre.add_argument("specs", nargs="+", metavar="MODULE:FUNC",
                     help="module:function or path/to/file.py:function (FUNC may be dotted)")
    pre.add_argument("--kind", required=True, choices=("prolog", "epilog"), help="callback kind")
    pre.add_argument("--dtype", required=True, metavar="DTYPE",
                     help="FFT element type: float32, float64, complex64 or complex128 "
                     "(prolog: the FFT input, epilog: the FFT output)")
    pre.add_argument("--user-dtype", metavar="DTYPE", help="NumPy dtype of the user data the callback reads")
    pre.add_argument("--arch", action="extend", nargs="+", metavar="CC", default=None,
                     help="compute capabilities, e.g. 80 90 or 9.0 (default: this GPU's, else the lowest supported)")
    pre.add_argument("--for", dest="calls", choices=("stateless", "stateful", "all"), default="stateless",
                     help="which calls with user data to warm: the functions fft(x, epilog={'fn': f, 'data': d}) "
                     "(default), FFT objects and compile_epilog (stateful), or both")
    pre.add_argument("--literals", choices=("element", "double"), default="element",
                     help="precision of float literals, as FFTOptions(float_literals=...) (default: element)")
    pre.add_argument("--check", action="store_true", help="link-check each result against cuFFT's prototype")
    pre.set_defaults(run=cmd_precompile)

    tune = verbs.add_parser(
        "tune-chains", parents=[common], help="measure the one-kernel chain's knobs on this GPU and keep them",
        description="Time every launchable pair of FFTs per block and elements per thread of the one-kernel "
        "filtering chain (nvmath.fft.tune_chains) on this GPU and keep the fastest in the cache for its "
        "architecture, where later plans take it. Compiles a kernel per pair: minutes for every length.",
    )
    tune.add_argument("--lengths", metavar="N,N,...", default=None,
                      help="FFT lengths, comma-separated (default: every power of two from 16 to 4096)")
    tune.add_argument("--precision", action="append", choices=("float32", "float64"), default=None,
                      help="float32 (complex64) or float64 (complex128); repeat for both (default: both)")
    tune.add_argument("--device", type=int, default=0, metavar="ID", help="the GPU to measure on (default: 0)")
    tune.set_defaults(run=cmd_tune_chains)

    doctor = verbs.add_parser(
        "doctor", parents=[common], help="what this machine offers fftfuse, and what is missing",
        description="Report the GPU and driver, cuFFT, nvJitLink and NVRTC versions and whether they link an "
        "LTO callback, numba and numba-cuda, which nvmath is imported (and whether nvmath-python is installed "
        "too), and the cache directory's health. Works without a GPU. Exit status 1 when fftfuse cannot "
        "compile and cache callbacks here.",
    )
    doctor.add_argument("--no-link", action="store_true", help="skip compiling and linking a test callback")
    doctor.set_defaults(run=cmd_doctor)
    return parser


def _configure_logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="fftfuse: %(levelname)s: %(message)s")


class _Progress:
    """``[3/10] label`` on one rewritten stderr line, shown only when stderr is a terminal."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._shown = total > 1 and sys.stderr.isatty()

    def step(self, done: int, label: str) -> None:
        if self._shown:
            sys.stderr.write(f"\r\033[K[{done}/{self._total}] {label}"[:200])
            sys.stderr.flush()

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# Stores
# ---------------------------------------------------------------------------------------------


def _store(args: argparse.Namespace, *, for_compiling: bool = False) -> Any:
    """The store the command acts on.

    Compiles follow ``FFTFUSE_CACHE``; the management verbs always act on the directory,
    since managing it is what they were asked to do.
    """
    from fftfuse_cache import ArtifactStore

    return ArtifactStore(args.cache_dir, enabled=None if for_compiling else True)


def _open_disk(store: Any) -> None:
    """Open the store's disk layer or fail the command, saying why the directory is unusable."""
    from fftfuse_cache import CacheError

    try:
        store.open_disk()
    except CacheError as exc:
        raise CLIError(str(exc)) from None


def _has_entries(store: Any) -> bool:
    """Whether the directory holds an index, opening it if so; fails the command if the directory
    cannot be used, found without creating anything (as ``cache info`` reports it)."""
    if store.has_disk_data:
        _open_disk(store)
        return True
    problem = store.directory_problem()
    if problem is not None:
        raise CLIError(f"the cache directory {store.directory!r} is not usable: {problem}")
    return False


# ---------------------------------------------------------------------------------------------
# doctor
# ---------------------------------------------------------------------------------------------


def cmd_tune_chains(args: argparse.Namespace) -> Report:
    """Measure the one-kernel chain's knobs (``nvmath.fft.tune_chains``) into the cache."""
    try:
        lengths = None if args.lengths is None else [int(v) for v in args.lengths.split(",") if v.strip()]
    except ValueError:
        raise CLIError(f"--lengths {args.lengths!r}: expected FFT lengths separated by commas, e.g. 64,1024") from None
    if args.cache_dir is not None:  # this process's default store, where the kernels and the knobs go
        from fftfuse_cache import reset_default_store

        os.environ["FFTFUSE_CACHE_DIR"] = os.fspath(args.cache_dir)
        reset_default_store()
    from nvmath.fft import tune_chains

    try:
        rows = tune_chains(lengths, tuple(args.precision or ("float32", "float64")), args.device)
    except (RuntimeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    return Report("tune-chains", {"results": rows})


def cmd_doctor(args: argparse.Namespace) -> Report:
    """What this machine offers fftfuse; status 1 when callbacks cannot be compiled and cached."""
    from .doctor import diagnose, healthy

    report = diagnose(cache_dir=args.cache_dir, link=not args.no_link)
    return Report("doctor", report, 0 if healthy(report) else 1)


# ---------------------------------------------------------------------------------------------
# cache info / list / clear / export / import
# ---------------------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> Report:
    """Where the cache is, whether compiles use it, its size, the toolchain stamp and the
    architectures compiles target (the default GPU architecture, this CPU).

    Status 1 when the directory exists but cannot be used.
    """
    from fftfuse_cache import disk_enabled_by_environment
    from fftfuse_compiler.cpu_native import cpu_identity, cpu_summary
    from fftfuse_compiler.toolchain import toolchain_stamp

    with _store(args) as store:
        exists = store.has_disk_data
        # stats() opens (and so creates) the directory; a fresh machine is only described.
        stats = store.stats() if exists else {"entries": 0, "volume": 0, "disk_error": None, "read_only": []}
        if not exists:
            stats["read_only"] = store.read_only_layers
            stats["disk_error"] = store.directory_problem()
    arch, arch_note = _default_arch()
    enabled = disk_enabled_by_environment()
    info = {
        "directory": store.directory,
        "exists": exists,
        "enabled": enabled and stats.get("disk_error") is None,
        "enabled_by_environment": enabled,
        "disk_error": stats.get("disk_error"),
        "read_only_layers": stats["read_only"],
        "entries": stats["entries"],
        "volume": stats["volume"],
        "size_limit": store.size_limit,
        "toolchain": toolchain_stamp(),
        "default_arch": arch,
        "default_arch_source": arch_note,
        "cpu": cpu_summary(cpu_identity()),
    }
    if not info["disk_error"]:
        return Report("info", info)
    error = f"fftfuse: error: the cache directory {store.directory!r} is not usable: {info['disk_error']}"
    return Report("info", info, 1, text_notes=(error,))


def _default_arch() -> tuple[int | None, str]:
    """The architecture a compile without ``compute_capability`` targets, and why."""
    from fftfuse_compiler.toolchain import current_device_arch, lowest_supported_arch

    try:
        arch = current_device_arch()
    except Exception:  # a broken driver install must not break 'info'
        arch = None
    if arch:
        return arch, "current GPU"
    try:
        return lowest_supported_arch(), "no GPU: lowest the toolkit supports"
    except Exception as exc:
        return None, f"no GPU, and NVRTC could not say: {type(exc).__name__}: {exc}"


def cmd_list(args: argparse.Namespace) -> Report:
    """Every entry's key and metadata: kind, form, dtypes, architecture, size, name."""
    from fftfuse_cache import CacheError

    with _store(args) as store:
        entries = []
        if _has_entries(store):
            try:
                entries = [{"key": key, **meta} for key, meta in store.entries()]
            except CacheError as exc:
                raise CLIError(str(exc)) from None
    return Report("list", {"directory": store.directory, "entries": entries})


def cmd_clear(args: argparse.Namespace) -> Report:
    """Remove every entry; a damaged index is rebuilt on the way."""
    from fftfuse_cache import CacheError

    with _store(args) as store:
        removed = 0
        if _has_entries(store):
            try:
                removed = store.clear()
            except CacheError as exc:
                raise CLIError(str(exc)) from None
    return Report("clear" if store.has_disk_data else "nothing-to-clear",
                  {"directory": store.directory, "removed": removed})


def cmd_export(args: argparse.Namespace) -> Report:
    """Write every valid entry to a bundle."""
    from fftfuse_cache import CacheError

    with _store(args) as store:
        _has_entries(store)
        try:
            count = store.export_bundle(args.bundle)
        except CacheError as exc:
            raise CLIError(str(exc)) from None
        except OSError as exc:
            raise CLIError(f"cannot write bundle {args.bundle!r}: {exc.strerror or exc}") from None
    size = os.path.getsize(args.bundle)
    return Report("export", {"directory": store.directory, "bundle": args.bundle, "exported": count, "bytes": size})


def cmd_import(args: argparse.Namespace) -> Report:
    """Add the entries of a bundle made by ``cache export``: all of them, or none."""
    from fftfuse_cache import CacheError

    if not os.path.lexists(args.bundle):
        raise CLIError(f"bundle {args.bundle!r} does not exist")
    with _store(args) as store:
        _open_disk(store)
        try:
            count = store.import_bundle(args.bundle)
        except (ValueError, CacheError) as exc:
            raise CLIError(str(exc)) from None
        except OSError as exc:
            raise CLIError(f"cannot read bundle {args.bundle!r}: {exc.strerror or exc}") from None
    return Report("import", {"directory": store.directory, "bundle": args.bundle, "imported": count})


# ---------------------------------------------------------------------------------------------
# cache verify
# ---------------------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> Report:
    """Check the index, every entry's digest and its link; report (and optionally drop) bad ones.

    Status 1 when a bad entry remains.
    """
    from fftfuse_cache import CacheError

    good = bad = dropped = 0
    rows: list[dict[str, Any]] = []
    with _store(args) as store:
        if not _has_entries(store):
            return Report("verify", {"directory": store.directory, "checked": 0, "good": 0, "bad": 0, "entries": []})
        index_problem = store.check_index()
        if index_problem is not None:
            store.rebuild(index_problem)  # nothing in a damaged index can be trusted
            bad += 1
        try:
            checks = list(store.check_entries())
            progress = _Progress(len(checks))
            link_state: dict[str, Any] = {}
            for n, check in enumerate(checks, 1):
                progress.step(n, f"verifying {check.key[:12]}")
                problem = check.problem
                if problem is None and not args.no_link:
                    problem = _link_problem(check.payload, check.meta, link_state)
                meta = check.meta
                row = {"key": check.key, "problem": problem, "kind": meta.get("kind"),
                       "element_dtype": meta.get("element_dtype"), "user_dtype": meta.get("user_dtype"),
                       "arch": meta.get("arch"), "target": meta.get("target")}
                rows.append(row)
                if problem is None:
                    good += 1
                    continue
                bad += 1
                if args.drop:
                    row["dropped"] = store.delete(check.key)
                    dropped += row["dropped"]
            progress.close()
        except CacheError as exc:
            raise CLIError(str(exc)) from None
    if index_problem is not None:
        dropped += 1  # the rebuild removed it
    return Report("verify", {"directory": store.directory, "index_problem": index_problem, "checked": len(rows),
                             "good": good, "bad": bad, "dropped": dropped, "entries": rows},
                  1 if bad > dropped else 0)


def _link_problem(payload: Any, meta: dict[str, Any], state: dict[str, Any]) -> str | None:
    """Why an LTO-IR entry fails cuFFT's link, or None (also for entries that are not LTO-IR)."""
    from fftfuse_compiler.dtypes import ELEMENT_DTYPES

    kind, dtype, arch = meta.get("kind"), meta.get("element_dtype"), meta.get("arch")
    if kind not in ("prolog", "epilog") or dtype not in ELEMENT_DTYPES or meta.get("target") == "cpu":
        return None  # not a GPU callback: the digest is all there is to check
    if not isinstance(arch, int):
        return f"metadata records no usable architecture ({arch!r})"
    if "link_check" not in state:
        try:
            from fftfuse_compiler.linkcheck import LinkCheckError, link_check
        except ImportError as exc:
            raise CLIError(f"cannot link-check without the CUDA bindings ({exc}); pass --no-link") from None
        state["link_check"], state["error"] = link_check, LinkCheckError
    try:
        state["link_check"](payload, kind, dtype, arch)
    except (state["error"], ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"link check failed: {first}"
    return None


# ---------------------------------------------------------------------------------------------
# precompile
# ---------------------------------------------------------------------------------------------


def load_function(spec: str) -> Callable[..., Any]:
    """Import the function that ``MODULE:FUNC`` or ``path/to/file.py:FUNC`` names.

    ``FUNC`` may be dotted (``mod:holder.fn``). Raises :class:`SpecError` saying what is wrong.
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise SpecError(f"{spec!r} is not MODULE:FUNC or path/to/file.py:FUNC")
    if target.endswith(".py") or os.sep in target or "/" in target:
        module = _import_file(target)
    else:
        module = _import_module(target)
    obj: Any = module
    for part in attr.split("."):
        if not part.isidentifier():
            raise SpecError(f"{spec!r}: {attr!r} is not a (dotted) Python name")
        try:
            obj = getattr(obj, part)
        except AttributeError:
            found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            hint = f"; its public callables: {', '.join(found[:12])}" if found else ""
            raise SpecError(f"{spec!r}: module {target!r} has no attribute {attr!r}{hint}") from None
    if not callable(obj):
        raise SpecError(f"{spec!r}: {attr!r} is a {type(obj).__name__}, not a function")
    return obj


def _import_module(name: str) -> Any:
    if not all(part.isidentifier() for part in name.split(".")):
        raise SpecError(f"{name!r} is not a module name (use path/to/file.py for a file)")
    # Like 'python -m', find modules in the current directory; appended so that a local
    # module cannot shadow an installed one.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise SpecError(f"no module named {name!r} (looked in the current directory and sys.path)") from None
        raise SpecError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise SpecError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from exc


def _import_file(path: str) -> Any:
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise SpecError(f"file {path!r} does not exist")
    # A stable, unique module name: pickling, dataclasses and numba want the module in sys.modules.
    stem = os.path.splitext(os.path.basename(full))[0]
    tag = hashlib.sha256(full.encode()).hexdigest()[:8]  # hash() differs between processes
    name = f"fftfuse_precompile_{''.join(c if c.isalnum() else '_' for c in stem)}_{tag}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise SpecError(f"{path!r} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SpecError(f"running {path!r} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _element_dtype(name: str) -> str:
    from fftfuse_compiler.dtypes import ELEMENT_DTYPES

    if name not in ELEMENT_DTYPES:
        raise CLIError(f"unknown dtype {name!r} for --dtype; expected one of {', '.join(ELEMENT_DTYPES)}")
    return name


def _user_dtype(name: str | None) -> str | None:
    if name is None:
        return None
    import numpy as np

    try:
        return np.dtype(name).name
    except TypeError:
        raise CLIError(f"unknown dtype {name!r} for --user-dtype; pass a NumPy dtype name such as float32") from None


def _archs(values: list[str] | None) -> list[int | None]:
    if not values:
        return [None]  # the compiler's default: this GPU's, else the lowest supported
    from fftfuse_compiler.toolchain import parse_compute_capability

    archs: list[int | None] = []
    for value in values:
        try:
            arch = parse_compute_capability(value)
        except ValueError:
            raise CLIError(f"unknown architecture {value!r} for --arch; pass e.g. 80, 90, 9.0 or sm_90") from None
        if arch not in archs:
            archs.append(arch)
    return archs


def cmd_precompile(args: argparse.Namespace) -> Report:
    """Compile each named function through the cache for each architecture.

    The keys are the ones the FFT calls look up: the planner says which calls read the user
    data through a slot (``_planner.indirect_callback``: stateless calls with data), and a
    callback without user data is the same for both. Status 1 when a compile or a requested
    link check failed.
    """
    element = _element_dtype(args.dtype)
    user = _user_dtype(args.user_dtype)
    archs = _archs(args.arch)
    from nvmath.fft._planner import indirect_callback

    shared = {"stateless": (True,), "stateful": (False,), "all": (True, False)}[args.calls]
    variants = sorted({indirect_callback(s, user is not None, False) for s in shared})
    functions = []
    for spec in args.specs:  # resolve every spec before compiling anything
        try:
            functions.append((spec, load_function(spec)))
        except SpecError as exc:
            raise CLIError(str(exc)) from None

    from fftfuse_compiler.api import compile_callback
    from fftfuse_compiler.fingerprint import UncacheableError, function_fingerprint

    failures = 0
    notes: list[str] = []
    results: list[dict[str, Any]] = []
    progress = _Progress(len(functions) * len(archs) * len(variants))
    with _store(args, for_compiling=True) as store:
        if not store.stats()["enabled"]:
            notes.append(f"fftfuse: warning: the disk cache is off ({_off_reason(store)}); nothing compiled here "
                         "will persist")
        for spec, fn in functions:
            try:
                function_fingerprint(fn)
            except UncacheableError as exc:
                notes.append(f"fftfuse: warning: {spec} cannot be cached: {exc}")
            for arch in archs:
                for indirect in variants:
                    progress.step(len(results) + 1, f"{spec} {_arch_label(arch)}")
                    row = {"spec": spec, "kind": args.kind, "element_dtype": element, "user_dtype": user,
                           "indirect": indirect}
                    results.append(row)
                    start = time.perf_counter()
                    try:
                        result = compile_callback(fn, args.kind, element, user, compute_capability=arch,
                                                  indirect=indirect, literals=args.literals, store=store)
                    except (TypeError, ValueError, RuntimeError) as exc:
                        failures += 1
                        row["error"] = str(exc)
                        notes.append(f"fftfuse: error: {spec} ({args.kind}, {element}, {_arch_label(arch)}): {exc}")
                        continue
                    elapsed = time.perf_counter() - start
                    link = _precompile_check(result) if args.check else None
                    failures += link is not None and link.startswith("link FAILED")
                    row.update(arch=result.arch, source=result.source, ms=round(elapsed * 1e3, 2),
                               bytes=len(result.ltoir), link=link)
    progress.close()
    return Report("precompile", {"directory": store.directory, "results": results, "failures": failures},
                  1 if failures else 0, tuple(notes))


def _off_reason(store: Any) -> str:
    error = store.stats()["disk_error"]
    return error if error else "FFTFUSE_CACHE=0"


def _arch_label(arch: int | None) -> str:
    return f"sm_{arch}" if arch is not None else "default arch"


def _precompile_check(result: Any) -> str:
    from fftfuse_compiler.linkcheck import LinkCheckError, link_check

    try:
        link_check(result.ltoir, result.kind, result.element_dtype, result.arch)
    except LinkCheckError as exc:
        return f"link FAILED: {str(exc).splitlines()[0]}"
    return "link ok"


if __name__ == "__main__":
    sys.exit(main())
