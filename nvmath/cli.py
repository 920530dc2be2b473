"""``fftfuse``: inspect, ship and warm the compile cache from the command line.

::

    fftfuse cache info                      where the cache is, how full, which toolchain
    fftfuse cache list                      one line per entry
    fftfuse cache clear                     remove every entry
    fftfuse cache export BUNDLE             write every entry to one zip file
    fftfuse cache import BUNDLE             add a bundle's entries (e.g. on another machine)
    fftfuse cache verify [--drop]           check digests and link each LTO-IR entry
    fftfuse precompile MODULE:FUNC [...] --kind epilog --dtype complex64 [--arch 90 ...]

Every verb takes ``--cache-dir DIR`` (default: ``$FFTFUSE_CACHE_DIR`` or the user cache
directory). Exit status: 0 on success, 1 when something failed (reported on stderr), 2 for
a malformed command line.

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
from typing import Any, Callable, Iterator, Sequence

__all__ = ["main", "load_function", "SpecError"]


class SpecError(ValueError):
    """A ``MODULE:FUNC`` or ``path/to/file.py:FUNC`` spec that does not name a function."""


class CLIError(Exception):
    """A failure to report on stderr as ``fftfuse: error: ...`` with exit status 1."""


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fftfuse`` command line; return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a malformed command line (argparse printed why)
        return exc.code if isinstance(exc.code, int) else 2
    # Defaults are filled in here, not with set_defaults: parent parsers share their
    # actions, so a default set on one parser would overwrite values parsed by another.
    args.cache_dir = getattr(args, "cache_dir", None)
    args.verbose = getattr(args, "verbose", False)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args.verbose)
    try:
        return int(args.run(args) or 0)
    except CLIError as exc:
        print(f"fftfuse: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    # --cache-dir/-v are accepted before or after the verb; SUPPRESS keeps a subparser
    # from overwriting a value given at the top level.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="cache directory (default: $FFTFUSE_CACHE_DIR or the user cache directory)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log what the cache and compiler do")

    parser = argparse.ArgumentParser(
        prog="fftfuse", parents=[common],
        description="Manage fftfuse's compile cache of cuFFT LTO callbacks.",
    )
    verbs = parser.add_subparsers(title="commands", metavar="{cache,precompile}")

    cache = verbs.add_parser("cache", help="inspect or manage the cache", description="Inspect or manage the cache.")
    actions = cache.add_subparsers(title="actions", metavar="{info,list,clear,export,import,verify}")
    cache.set_defaults(run=lambda args: _fail_usage(cache))

    info = actions.add_parser("info", parents=[common], help="directory, size, toolchain, default architecture")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(run=cmd_info)

    listing = actions.add_parser("list", parents=[common], help="one line per entry")
    listing.add_argument("--json", action="store_true", help="print one JSON object per line")
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
        "verify", parents=[common], help="check every entry's digest and link its LTO-IR",
        description="Re-read every entry, check its digest, and link each LTO-IR entry against cuFFT's "
        "callback prototype for its recorded kind, element type and architecture. Exit status 1 when a "
        "bad entry remains.",
    )
    verify.add_argument("--drop", action="store_true", help="remove the bad entries")
    verify.add_argument("--no-link", action="store_true", help="check digests only (no NVRTC/nvJitLink)")
    verify.set_defaults(run=cmd_verify)

    pre = verbs.add_parser(
        "precompile", parents=[common], help="compile callbacks into the cache ahead of time",
        description="Import each function and compile it through the cache for each architecture.",
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
    pre.add_argument("--indirect", action="store_true", help="user_info points to a slot holding the data pointer")
    pre.add_argument("--check", action="store_true", help="link-check each result against cuFFT's prototype")
    pre.set_defaults(run=cmd_precompile)
    return parser


def _fail_usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _configure_logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="fftfuse: %(levelname)s: %(message)s")


# ---------------------------------------------------------------------------------------------
# Stores
# ---------------------------------------------------------------------------------------------


def _store(args: argparse.Namespace, *, for_compiling: bool = False) -> Any:
    """The store the command acts on.

    Compiles follow ``FFTFUSE_CACHE``; the management verbs always act on the directory,
    since managing it is what they were asked to do.
    """
    from .store import ArtifactStore

    return ArtifactStore(args.cache_dir, enabled=None if for_compiling else True)


def _has_database(store: Any) -> bool:
    # Looking must not create the directory: 'info' and 'list' on a fresh machine stay read-only.
    return os.path.exists(os.path.join(store.directory, "cache.db"))


def _size(n: int) -> str:
    """Human-readable byte count: ``2844 B``, ``12.3 KiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# cache info / list / clear / export / import
# ---------------------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    """Print where the cache is, whether compiles use it, its size and the toolchain stamp."""
    from compiler.toolchain import toolchain_stamp

    from .store import _env_enabled

    with _store(args) as store:
        exists = _has_database(store)
        # stats() opens (and so creates) the directory; a fresh machine is only described.
        stats = store.stats() if exists else {"entries": 0, "volume": 0, "disk_error": None}
        size_limit = store._size_limit
    arch, arch_note = _default_arch()
    enabled = _env_enabled()
    info = {
        "directory": store.directory,
        "exists": exists,
        "enabled": enabled and stats.get("disk_error") is None,
        "disk_error": stats.get("disk_error"),
        "entries": stats["entries"],
        "volume": stats["volume"],
        "size_limit": size_limit,
        "toolchain": toolchain_stamp(),
        "default_arch": arch,
        "default_arch_source": arch_note,
    }
    if args.json:
        import json

        print(json.dumps(info, indent=1))
        return 0
    state = "yes" if info["enabled"] else "no (FFTFUSE_CACHE=0)" if not enabled else f"no ({info['disk_error']})"
    rows = [
        ("directory", info["directory"] + ("" if exists else "  (nothing stored yet)")),
        ("enabled", state),
        ("entries", str(info["entries"])),
        ("volume", _size(info["volume"])),
        ("size limit", _size(info["size_limit"])),
        ("toolchain", info["toolchain"]),
        ("default arch", f"sm_{arch} ({arch_note})" if arch else f"unknown ({arch_note})"),
    ]
    for label, value in rows:
        print(f"{label + ':':<14}{value}")
    return 0


def _default_arch() -> tuple[int | None, str]:
    """The architecture a compile without ``compute_capability`` targets, and why."""
    from compiler.toolchain import current_device_arch, lowest_supported_arch

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


_LIST_COLUMNS = ("key", "kind", "form", "element", "user", "arch", "indirect", "size", "function")


def cmd_list(args: argparse.Namespace) -> int:
    """Print one line per entry: key prefix, kind, form, dtypes, architecture, size, name."""
    with _store(args) as store:
        entries = list(store.entries()) if _has_database(store) else []
    rows = [_entry_row(key, meta) for key, meta in entries]
    if args.json:
        import json

        for key, meta in entries:
            print(json.dumps({"key": key, **meta}, sort_keys=True))
        return 0
    if not rows:
        print(f"no entries in {store.directory}")
        return 0
    widths = [max(len(col), *(len(row[i]) for row in rows)) for i, col in enumerate(_LIST_COLUMNS)]
    print("  ".join(col.upper().ljust(w) for col, w in zip(_LIST_COLUMNS, widths)).rstrip())
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"{len(rows)} entries, {_size(sum(int(m.get('size', 0)) for _, m in entries))}")
    return 0


def _entry_row(key: str, meta: dict[str, Any]) -> tuple[str, ...]:
    arch = meta.get("arch")
    name = meta.get("function") or meta.get("name") or meta.get("qualname") or "-"
    return (
        key[:12],
        str(meta.get("kind", "-")),
        str(meta.get("form", "-")),
        str(meta.get("element_dtype", "-")),
        str(meta.get("user_dtype", "-")),
        f"sm_{arch}" if arch is not None else "-",
        "yes" if meta.get("indirect") else "no",
        _size(int(meta.get("size", 0))),
        str(name),
    )


def cmd_clear(args: argparse.Namespace) -> int:
    """Remove every entry."""
    with _store(args) as store:
        if not _has_database(store):
            print(f"nothing to clear in {store.directory}")
            return 0
        removed = store.clear()
        _raise_disk_error(store)
    print(f"removed {removed} entries from {store.directory}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write every valid entry to a bundle."""
    with _store(args) as store:
        try:
            count = store.export_bundle(args.bundle)
        except OSError as exc:
            raise CLIError(f"cannot write bundle {args.bundle!r}: {exc.strerror or exc}") from None
        _raise_disk_error(store)
    print(f"exported {count} entries from {store.directory} to {args.bundle} ({_size(os.path.getsize(args.bundle))})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Add the entries of a bundle made by ``cache export``."""
    if not os.path.isfile(args.bundle):
        raise CLIError(f"bundle {args.bundle!r} does not exist")
    with _store(args) as store:
        try:
            count = store.import_bundle(args.bundle)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        except OSError as exc:
            raise CLIError(f"cannot read bundle {args.bundle!r}: {exc.strerror or exc}") from None
        _raise_disk_error(store)
    print(f"imported {count} entries from {args.bundle} into {store.directory}")
    return 0


def _raise_disk_error(store: Any) -> None:
    """Turn a disk layer that gave up (and warned) into a command failure."""
    error = store.stats()["disk_error"]
    if error:
        raise CLIError(f"the cache directory {store.directory!r} is not usable: {error}")


# ---------------------------------------------------------------------------------------------
# cache verify
# ---------------------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every entry's digest and link its LTO-IR; report (and optionally drop) bad ones."""
    import sqlite3

    good = bad = dropped = 0
    with _store(args) as store:
        if not _has_database(store):
            print(f"no entries in {store.directory}")
            return 0
        try:
            checked = list(_check_entries(store, link=not args.no_link))
        except (OSError, sqlite3.Error) as exc:
            raise CLIError(f"cannot read the cache in {store.directory!r}: {exc}") from None
        for key, problem, meta in checked:
            label = _verify_label(key, meta)
            if problem is None:
                good += 1
                if args.verbose:
                    print(f"ok    {label}")
                continue
            bad += 1
            action = ""
            if args.drop:
                if store.delete(key):
                    dropped += 1
                    action = "  (dropped)"
                else:
                    action = "  (could not drop)"
            print(f"BAD   {label}: {problem}{action}")
        _raise_disk_error(store)
    checks = "digest" if args.no_link else "digest and link"
    print(f"{good + bad} entries checked ({checks}): {good} good, {bad} bad" + (f", {dropped} dropped" if args.drop else ""))
    return 1 if bad > dropped else 0


def _verify_label(key: str, meta: dict[str, Any]) -> str:
    if "kind" not in meta:
        return f"{key[:12]}  (metadata unreadable)"
    return f"{key[:12]}  {meta['kind']} {meta.get('element_dtype', '?')} sm_{meta.get('arch', '?')}"


def _check_entries(store: Any, *, link: bool) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """Yield ``(key, problem or None, meta)`` for every disk entry.

    Unlike ``store.get``, which silently drops a damaged entry, this reads the raw blobs so
    that damage is reported and removed only when asked.
    """
    from .store import _FOREIGN, _BadEntry, _decode_entry, _decode_meta

    disk = store._open()  # the store's own diskcache handle: it never unpickles
    if disk is None:
        return
    link_state: dict[str, Any] = {}
    for key in list(disk.iterkeys()):
        if type(key) is not str:
            continue  # a key we did not write; not addressable, 'cache clear' removes it
        blob = disk.get(key)
        if blob is None:
            yield key, "value missing (its file was removed)", {}
            continue
        if blob is _FOREIGN:
            yield key, "value was not written by fftfuse (pickled)", {}
            continue
        try:
            payload, meta = _decode_entry(blob)
        except _BadEntry as exc:
            try:
                meta = _decode_meta(blob)[0]
            except _BadEntry:
                meta = {}
            yield key, f"damaged: {exc}", meta
            continue
        yield key, _link_problem(payload, meta, link_state) if link else None, meta


def _link_problem(payload: bytes, meta: dict[str, Any], state: dict[str, Any]) -> str | None:
    """Why an LTO-IR entry fails cuFFT's link, or None (also for entries that are not LTO-IR)."""
    from compiler.dtypes import ELEMENT_DTYPES

    kind, dtype, arch = meta.get("kind"), meta.get("element_dtype"), meta.get("arch")
    if kind not in ("prolog", "epilog") or dtype not in ELEMENT_DTYPES:
        return None  # not a callback: the digest is all there is to check
    if not isinstance(arch, int):
        return f"metadata records no usable architecture ({arch!r})"
    if "link_check" not in state:
        try:
            from compiler.linkcheck import LinkCheckError, link_check
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
    # 'cache.py' or 'compiler.py' cannot shadow fftfuse's own packages.
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
    from compiler.dtypes import ELEMENT_DTYPES

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
    from compiler.toolchain import parse_compute_capability

    archs: list[int | None] = []
    for value in values:
        try:
            arch = parse_compute_capability(value)
        except ValueError:
            raise CLIError(f"unknown architecture {value!r} for --arch; pass e.g. 80, 90, 9.0 or sm_90") from None
        if arch not in archs:
            archs.append(arch)
    return archs


def cmd_precompile(args: argparse.Namespace) -> int:
    """Compile each named function through the cache for each architecture."""
    element = _element_dtype(args.dtype)
    user = _user_dtype(args.user_dtype)
    archs = _archs(args.arch)
    functions = []
    for spec in args.specs:  # resolve every spec before compiling anything
        try:
            functions.append((spec, load_function(spec)))
        except SpecError as exc:
            raise CLIError(str(exc)) from None

    from compiler.api import compile_callback
    from compiler.fingerprint import UncacheableError, function_fingerprint

    failures = 0
    with _store(args, for_compiling=True) as store:
        if not store.stats()["enabled"]:
            print(f"fftfuse: warning: the disk cache is off ({_off_reason(store)}); nothing compiled here "
                  "will persist", file=sys.stderr)
        for spec, fn in functions:
            try:
                function_fingerprint(fn)
            except UncacheableError as exc:
                print(f"fftfuse: warning: {spec} cannot be cached: {exc}", file=sys.stderr)
            for arch in archs:
                start = time.perf_counter()
                try:
                    result = compile_callback(fn, args.kind, element, user, compute_capability=arch,
                                              indirect=args.indirect, store=store)
                except (TypeError, ValueError, RuntimeError) as exc:
                    failures += 1
                    print(f"fftfuse: error: {spec} ({args.kind}, {element}, {_arch_label(arch)}): {exc}",
                          file=sys.stderr)
                    continue
                elapsed = time.perf_counter() - start
                checked = _precompile_check(result) if args.check else ""
                failures += checked.startswith("  link FAILED")
                dtypes = element if user is None else f"{element}/{user}"
                print(f"{spec}  {args.kind} {dtypes}  sm_{result.arch}  {result.source:<8}  "
                      f"{elapsed * 1e3:8.1f} ms  {_size(len(result.ltoir))}{checked}")
    return 1 if failures else 0


def _off_reason(store: Any) -> str:
    error = store.stats()["disk_error"]
    return error if error else "FFTFUSE_CACHE=0"


def _arch_label(arch: int | None) -> str:
    return f"sm_{arch}" if arch is not None else "default arch"


def _precompile_check(result: Any) -> str:
    from compiler.linkcheck import LinkCheckError, link_check

    try:
        link_check(result.ltoir, result.kind, result.element_dtype, result.arch)
    except LinkCheckError as exc:
        return f"  link FAILED: {str(exc).splitlines()[0]}"
    return "  link ok"


if __name__ == "__main__":
    sys.exit(main())
