"""Persistent, content-addressed store of compiled artifacts.

An :class:`ArtifactStore` maps a key (see :func:`artifact_key`) to a payload (``bytes``,
e.g. LTO-IR) and a small JSON metadata dict. It has three layers, searched in order:

* memory: a bounded dict in front, so a repeated lookup in one process never touches disk;
* disk: a ``diskcache.Cache`` (SQLite index, large values in files) under the cache
  directory, bounded by ``size_limit`` bytes. When an insert takes the cache over the
  bound, diskcache evicts the entries stored longest ago ("least-recently-stored");
* read-only layers: precompiled cache directories (``$FFTFUSE_CACHE_PATH``), e.g. one an
  administrator installed for a whole cluster. They are read, never written.

Each disk value is one raw ``bytes`` blob, never a pickle, bound to its key (see
``fftfuse_cache._entry``): a digest over the key, the metadata and the payload is checked on every read,
so an entry is served only under the key it was written for and with the metadata it was written
with. A lookup may also name metadata the entry must record (``get(key, expect=...)``). An entry
that fails either check (damaged, swapped with another key's, edited, or written in the older
layout that bound nothing) is never served: it is logged as a warning, deleted (skipped in a
read-only layer) and reported as a miss, so the caller simply recompiles. ``check_entries``
(``fftfuse cache verify``) and bundle import apply the same checks.

A directory is used only if no other user can write it: owned by you or root, and not
writable by group or others. Value files are read only if they are regular files (no links,
FIFOs or devices) at names diskcache itself would choose, and at most 64 MiB. The index
(``cache.db``) and the files SQLite opens beside it (``-journal``, ``-wal``, ``-shm``) are
checked to be regular files before SQLite opens them, and bundles before they are read: a FIFO
would block forever.

The disk layer never makes a lookup fail or hang: if the directory is refused, cannot be created
or written (permissions, read-only or full disk), holds an index file that is not a regular file,
or stays locked by another process for more than ``lock_timeout`` seconds, the store warns once
and carries on in memory (a read-only layer with such a problem is skipped, with a warning). A
damaged index (``cache.db``) is set aside as ``cache.db.damaged`` and rebuilt empty.

Environment:

``FFTFUSE_CACHE_DIR``
    cache directory (default: the platform's user cache directory for ``fftfuse``).
``FFTFUSE_CACHE``
    ``0``, ``off``, ``false`` or ``no`` turns the disk layer off.
``FFTFUSE_CACHE_PATH``
    read-only cache directories searched after the user's own (``os.pathsep``-separated).

Start-up cost matters (a fresh process looks its kernels up before doing anything), so
this module imports only the standard library at load time; ``diskcache`` and
``platformdirs`` are imported on first need. A lookup before any write reads diskcache's
SQLite index directly, read-only, which spares importing and initialising diskcache in a
process that only reads.

>>> import tempfile
>>> store = ArtifactStore(tempfile.mkdtemp())
>>> key = artifact_key(kind="epilog", fingerprint="ab12", arch="sm_90")
>>> store.get(key) is None
True
>>> store.put(key, b"lto-ir bytes", {"entry": "cb"})
>>> payload, meta = store.get(key)
>>> payload, meta["entry"], meta["size"]
(b'lto-ir bytes', 'cb', 12)
>>> store.close()
"""

from __future__ import annotations

import _thread  # not threading: it is not loaded at start-up and would cost an import
import functools
import io
import json
import os
import warnings
from typing import Any, Iterator, NamedTuple, Sequence

from ._entry import HEADER, BadEntry, decode_entry, decode_meta, encode_entry, meta_length, mismatch
from ._files import (
    MAX_ENTRY_BYTES,
    directory_problem,
    index_files_problem,
    read_value,
    remove_all_values,
    remove_value,
)
from .hashing import sha256

__all__ = [
    "FORMAT_VERSION",
    "ArtifactStore",
    "CacheError",
    "EntryCheck",
    "artifact_key",
    "default_store",
    "disk_enabled_by_environment",
    "read_only_directories",
    "reset_default_store",
]

#: Version of the key derivation and entry layout; bump it to orphan every old entry.
FORMAT_VERSION = 1

_MEMORY_ENTRIES = 256
_DISABLING = frozenset({"0", "off", "false", "no"})
_DAMAGED_SUFFIX = ".damaged"


class CacheError(OSError):
    """The disk layer cannot do what was asked (refused, unreadable, full or locked directory)."""


class EntryCheck(NamedTuple):
    """One disk entry as :meth:`ArtifactStore.check_entries` found it."""

    key: str
    problem: str | None  # None: it verifies
    payload: bytes | None
    meta: dict[str, Any]


def artifact_key(**parts: Any) -> str:
    """Return the sha256 hex key of ``parts`` (JSON-serialisable) and :data:`FORMAT_VERSION`.

    >>> artifact_key(a=1, b="x") == artifact_key(b="x", a=1)
    True
    """
    try:
        # Types too: 1, 1.0 and True are equal dict keys but distinct JSON.
        return _hashable_key(FORMAT_VERSION, tuple(sorted((k, type(v), v) for k, v in parts.items())))
    except TypeError:  # an unhashable part (a list, say): compute without the memo
        return _digest(parts)


def _digest(parts: dict[str, Any]) -> str:
    text = json.dumps({"format": FORMAT_VERSION, "parts": parts}, sort_keys=True, separators=(",", ":"))
    return sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _hashable_key(version: int, items: tuple) -> str:
    # Keys are computed on every FFT call: remember them (JSON + SHA-256 cost ~6 us).
    return _digest({k: v for k, _, v in items})


def _logger() -> Any:
    import logging  # only when there is something to report

    return logging.getLogger("fftfuse.cache")


def disk_enabled_by_environment() -> bool:
    """Whether ``$FFTFUSE_CACHE`` leaves the disk layer on (it is on unless set to 0/off/false/no)."""
    return os.environ.get("FFTFUSE_CACHE", "").strip().lower() not in _DISABLING


def read_only_directories() -> list[str]:
    """The read-only layers named by ``$FFTFUSE_CACHE_PATH``, in search order."""
    value = os.environ.get("FFTFUSE_CACHE_PATH", "")
    return [os.path.expanduser(p) for p in value.split(os.pathsep) if p.strip()]


def _default_directory() -> str:
    env = os.environ.get("FFTFUSE_CACHE_DIR")
    if env:
        return os.path.expanduser(env)
    import platformdirs  # only when no directory is configured

    return platformdirs.user_cache_dir("fftfuse")


def _is_damage(exc: BaseException) -> bool:
    """Whether an SQLite error says the index file is damaged (not locked, full or unreadable)."""
    import sqlite3

    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


_UNKNOWN = object()  # the fast reader could not tell; ask diskcache
_FOREIGN = object()  # a disk key or value this store did not write (not plain bytes)
_disk_class: Any = None


def _safe_disk() -> Any:
    """A ``diskcache.Disk`` that never unpickles, and opens or removes only its own value files.

    The store only writes ``str`` keys and ``bytes`` values, which diskcache keeps raw; a
    pickled entry in our directory was not written by us and must not be executed. A value
    file name comes from an index row, which must not steer a read or a delete elsewhere.
    """
    global _disk_class
    if _disk_class is None:
        import diskcache
        from diskcache.core import MODE_BINARY, MODE_RAW

        class SafeDisk(diskcache.Disk):
            def get(self, key: Any, raw: bool) -> Any:
                return super().get(key, raw) if raw else _FOREIGN

            def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
                if mode == MODE_RAW:
                    return super().fetch(mode, filename, value, read)
                if mode == MODE_BINARY:
                    data = read_value(self._directory, filename)
                    return io.BytesIO(data) if read else data
                return _FOREIGN

            def remove(self, file_path: Any) -> None:
                remove_value(self._directory, file_path)

        _disk_class = SafeDisk
    return _disk_class


def _sqlite_core() -> Any:
    """SQLite for the read-only index look-up: ``sqlite3`` itself once something loaded it, else its C
    core ``_sqlite3``, which has ``connect`` and the errors a look-up needs. ``sqlite3`` adds the
    DB-API aliases and the date adapters (and imports ``datetime``): a millisecond or two of a fresh
    process's cache hit that binds no dates."""
    import sys

    full = sys.modules.get("sqlite3")
    if full is not None:
        return full
    try:
        import _sqlite3 as core
    except ImportError:
        core = None
    if core is None or not all(hasattr(core, n) for n in ("connect", "Error", "DatabaseError", "OperationalError")):
        import sqlite3 as core
    return core


class _IndexReader:
    """Read-only lookups straight in diskcache's SQLite index.

    diskcache keeps each ``str`` key in table ``Cache`` (``raw = 1``) with either the bytes
    inline (``mode = 1``) or a value file name (``mode = 2``). Reading that directly avoids
    importing diskcache and running its schema set-up, which costs more than the lookup
    itself. Anything unexpected answers :data:`_UNKNOWN`. Before each query the index's files
    are checked to be regular files (a FIFO would block SQLite forever); if one is not,
    :attr:`refused` says why and every read answers :data:`_UNKNOWN`.
    """

    _QUERY = (
        "SELECT mode, filename, value FROM Cache"
        " WHERE key = ? AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)"
    )

    def __init__(self, directory: str, timeout: float) -> None:
        self._directory = directory
        self._timeout = timeout
        self._con: Any = None
        self.refused: str | None = None

    @property
    def directory(self) -> str:
        return self._directory

    def _connect(self, immutable: bool) -> Any:
        sqlite3 = _sqlite_core()
        path = os.path.join(self._directory, "cache.db")
        # A WAL database in a directory we cannot write opens only as immutable (no -shm file).
        uri = f"file:{path}?{'immutable=1' if immutable else 'mode=ro'}"
        return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               timeout=self._timeout)

    def read(self, key: str) -> Any:
        """Return the stored bytes, None if absent, or :data:`_UNKNOWN`."""
        import time

        sqlite3 = _sqlite_core()

        if self._con is None and not os.path.exists(os.path.join(self._directory, "cache.db")):
            return None  # nothing was ever written here
        # SQLite may open the -journal or -wal at any query, not only when connecting.
        self.refused = self.refused or index_files_problem(self._directory)
        if self.refused is not None:
            self.close()
            return _UNKNOWN
        row: Any = _UNKNOWN
        for immutable in ((False, True) if self._con is None else (None,)):
            try:
                if immutable is not None:
                    self._con = self._connect(immutable)
                row = self._con.execute(self._QUERY, (key, time.time())).fetchone()
                break
            except sqlite3.Error:
                self.close()
        if row is _UNKNOWN or row is None:
            return row
        mode, filename, value = row  # diskcache's MODE_RAW = 1, MODE_BINARY = 2
        if mode == 1 and type(value) is bytes:
            return value
        if mode == 2:
            try:
                return read_value(self._directory, filename)
            except OSError as exc:  # UnsafeFile included
                _logger().warning("not reading cache entry %s in %s: %s", key, self._directory, exc)
        return _UNKNOWN

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


class ArtifactStore:
    """Content-addressed store of compiled artifacts: memory, disk, then read-only layers.

    ``directory`` defaults to ``$FFTFUSE_CACHE_DIR``, else the user cache directory.
    ``size_limit`` bounds the disk layer in bytes (diskcache evicts the oldest entries).
    ``enabled=None`` reads ``$FFTFUSE_CACHE``; ``False`` keeps the store in memory only.
    ``read_only=None`` reads ``$FFTFUSE_CACHE_PATH``: directories searched after ours and
    never written. ``lock_timeout`` bounds the wait for another process's write lock.
    Thread-safe; several processes may share one directory.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        size_limit: int = 2**30,
        enabled: bool | None = None,
        read_only: Sequence[str | os.PathLike[str]] | None = None,
        lock_timeout: float = 2.0,
    ) -> None:
        self._directory = os.fspath(directory) if directory is not None else _default_directory()
        self._size_limit = int(size_limit)
        self._disk_enabled = disk_enabled_by_environment() if enabled is None else bool(enabled)
        self._lock_timeout = float(lock_timeout)
        layers = read_only_directories() if read_only is None else [os.fspath(p) for p in read_only]
        self._layer_paths = layers if self._disk_enabled else []
        self._layers: list[_IndexReader] | None = None  # checked on first need
        self._memory: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self._lock = _thread.RLock()
        self._cache: Any = None  # diskcache.Cache, opened on first need
        self._reader: _IndexReader | None = None
        self._trusted: bool | None = None
        self._disk_error: str | None = None
        self._counters = {"hits": 0, "misses": 0, "memory_hits": 0, "disk_hits": 0, "puts": 0}

    @property
    def directory(self) -> str:
        """The cache directory (whether or not the disk layer is in use)."""
        return self._directory

    @property
    def size_limit(self) -> int:
        """The disk layer's bound in bytes."""
        return self._size_limit

    @property
    def disk_error(self) -> str | None:
        """Why the disk layer is off for this store (None while it works or was never tried)."""
        return self._disk_error

    @property
    def has_disk_data(self) -> bool:
        """Whether the directory holds an index (looking creates nothing)."""
        return os.path.exists(os.path.join(self._directory, "cache.db"))

    def directory_problem(self) -> str | None:
        """Why the disk layer could not be used here, found without creating anything; None if it can.

        Covers a directory others can write, one that cannot be created or written, and the
        reason the disk layer already gave up, if it did.
        """
        if self._disk_error is not None:
            return self._disk_error
        problem = directory_problem(self._directory)
        if problem is not None:
            return problem
        existing = self._directory
        while not os.path.exists(existing):
            parent = os.path.dirname(existing)
            if parent == existing:
                break
            existing = parent
        if not os.path.isdir(existing):
            return f"{existing!r} is not a directory, so the cache directory cannot be created"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{existing!r} is not writable"
        return None

    @property
    def read_only_layers(self) -> list[str]:
        """The read-only directories this store searches (refused ones left out)."""
        return [r.directory for r in self._read_only()]

    # --- lookups ------------------------------------------------------------------------

    def get(self, key: str, expect: dict[str, Any] | None = None) -> tuple[bytes, dict[str, Any]] | None:
        """Return ``(payload, meta)`` for ``key``, or None on a miss or an entry that fails its checks.

        A disk entry is served only if it verifies as the entry written for ``key`` (see
        ``fftfuse_cache._entry``). ``expect`` names metadata the entry must record, e.g. ``{"kind":
        "epilog", "arch": 90}``: a field the metadata records with another value makes the entry
        a mismatch (a field it does not record is not compared). A mismatch is never served: it is
        logged as a warning, dropped from memory and from the disk layer (a read-only layer's is
        skipped), and reported as a miss, so the caller compiles again.
        """
        with self._lock:
            entry = self._memory.pop(key, None)
            if entry is not None:
                problem = mismatch(entry[1], expect) if expect else None
                if problem is None:
                    self._memory[key] = entry  # re-insert: most recently used goes last
                    self._count("hits", "memory_hits")
                    return entry[0], dict(entry[1])
                _logger().warning("dropping cache entry %s held in memory: %s", key, problem)
            found = self._disk_read(key, expect)
            if found is None:
                found = self._layer_read(key, expect)
            if found is None:
                self._count("misses")
                return None
            payload, meta = found
            self._remember(key, payload, meta)
            self._count("hits", "disk_hits")
            return payload, dict(meta)

    def put(self, key: str, payload: bytes, meta: dict[str, Any]) -> None:
        """Store ``payload`` with ``meta`` (JSON-serialisable) under ``key``.

        The store adds ``key``, ``size`` and ``sha256`` to the metadata and binds the entry to
        ``key`` (see ``fftfuse_cache._entry``). Disk problems are not raised: the entry then lives in
        memory only.
        """
        payload = bytes(payload)
        blob, full = encode_entry(key, payload, meta)
        with self._lock:
            self._remember(key, payload, full)
            self._count("puts")
            if len(blob) <= MAX_ENTRY_BYTES:
                self._disk_write(key, blob)

    def delete(self, key: str) -> bool:
        """Remove ``key`` from memory and the disk layer; return whether it was present."""
        with self._lock:
            in_memory = self._memory.pop(key, None) is not None
            return self._disk_delete(key) or in_memory

    def clear(self) -> int:
        """Remove every entry; return how many disk entries were removed.

        Raises :class:`CacheError` if the disk layer cannot be used.
        """
        with self._lock:
            self._memory.clear()
            cache = self.open_disk()
            try:
                return int(cache.clear())
            except self._io_errors() as exc:
                raise CacheError(f"could not clear the cache in {self._directory!r}: {exc}") from None

    def entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, meta)`` for every entry, reading only the entries' headers.

        On disk entries come oldest first; entries held only in memory (disk layer off or
        unusable) follow. Raises :class:`CacheError` if the disk index cannot be read.
        """
        seen = set()
        cache = self._open()
        if cache is not None:
            for key in self._disk_keys(cache):
                meta = self._disk_meta(cache, key)
                if meta is not None:
                    seen.add(key)
                    yield key, meta
        with self._lock:
            memory = [(k, dict(m)) for k, (_, m) in self._memory.items() if k not in seen]
        yield from memory

    def check_entries(self) -> Iterator[EntryCheck]:
        """Check every disk entry (layout, size, the digest binding it to its key and metadata).

        Bad ones are reported, not dropped.

        Raises :class:`CacheError` if the disk layer cannot be used.
        """
        cache = self.open_disk()
        for key in self._disk_keys(cache):
            try:
                blob = cache.get(key)
            except self._io_errors() as exc:
                yield EntryCheck(key, f"unreadable: {exc}", None, {})
                continue
            if blob is None:
                yield EntryCheck(key, "value missing (its file was removed)", None, {})
            elif blob is _FOREIGN:
                yield EntryCheck(key, "value was not written by fftfuse (pickled)", None, {})
            else:
                try:
                    payload, meta = decode_entry(blob, key)
                except BadEntry as exc:
                    try:
                        meta = decode_meta(blob)[0]
                    except BadEntry:
                        meta = {}
                    yield EntryCheck(key, f"damaged: {exc}", None, meta)
                    continue
                yield EntryCheck(key, None, payload, meta)

    def stats(self) -> dict[str, Any]:
        """Return counters and the disk layer's state: entries, volume in bytes, limits."""
        with self._lock:
            cache = self._open()
            entries = volume = 0
            if cache is not None:
                try:
                    entries, volume = len(cache), int(cache.volume())
                except self._io_errors() as exc:
                    _logger().warning("could not read cache statistics %s: %s", self._directory, exc)
            return {
                "directory": self._directory,
                "enabled": cache is not None,
                "disk_error": self._disk_error,
                "read_only": self.read_only_layers,
                "entries": entries,
                "volume": volume,
                "size_limit": self._size_limit,
                "memory_entries": len(self._memory),
                **self._counters,
            }

    # --- the disk layer, for the command line -------------------------------------------

    def open_disk(self) -> Any:
        """Open (creating if needed) the disk layer; raise :class:`CacheError` saying why not."""
        cache = self._open()
        if cache is None:
            reason = self._disk_error or "the disk layer is turned off (FFTFUSE_CACHE=0)"
            raise CacheError(f"the cache directory {self._directory!r} is not usable: {reason}")
        return cache

    def check_index(self) -> str | None:
        """Run SQLite's integrity check on the index; return the problem, or None if sound."""
        import sqlite3

        self.open_disk()
        path = os.path.join(self._directory, "cache.db")
        problem = index_files_problem(self._directory)
        if problem is not None:
            return problem
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=self._lock_timeout)
            try:
                rows = con.execute("PRAGMA integrity_check").fetchall()
            finally:
                con.close()
        except sqlite3.Error as exc:
            return f"{type(exc).__name__}: {exc}"
        problems = [r[0] for r in rows if r[0] != "ok"]
        return "; ".join(problems[:3]) or None

    def rebuild(self, reason: str) -> None:
        """Set the index aside as ``cache.db.damaged``, drop the value files, start empty."""
        with self._lock:
            if self._cache is not None:
                try:
                    self._cache.close()
                except Exception:  # a damaged index may fail to close; it is being replaced anyway
                    pass
                self._cache = None
            self._close_reader()
            db = os.path.join(self._directory, "cache.db")
            if os.path.exists(db):
                os.replace(db, db + _DAMAGED_SUFFIX)
            for side in ("-wal", "-shm"):
                try:
                    os.remove(db + side)
                except OSError:
                    pass
            dropped = remove_all_values(self._directory)
            _logger().warning(
                "the cache index %s was damaged (%s): set aside as %s and rebuilt empty (%d value files "
                "removed); callbacks are compiled again as needed", db, reason, db + _DAMAGED_SUFFIX, dropped)
            self._disk_error = None

    # --- bundles ------------------------------------------------------------------------

    def export_bundle(self, path: str | os.PathLike[str]) -> int:
        """Write every valid entry to one zip file at ``path``; return how many.

        The zip holds ``manifest.json`` (keys and digests) and one member per entry with the
        same self-verifying blob as on disk. No pickles are involved.
        """
        from ._bundle import write_bundle

        return write_bundle(os.fspath(path), self._verified_blobs(), FORMAT_VERSION)

    def import_bundle(self, path: str | os.PathLike[str]) -> int:
        """Add the entries of a bundle made by :meth:`export_bundle`; return how many.

        All or nothing: every member is read (within size and compression-ratio bounds) and
        verified first as the entry of the key the manifest lists it under (so no entry is ever
        stored under another's key), and ``ValueError`` (a ``fftfuse_cache._bundle.BundleError``) says
        which one is wrong, or what the path is if it is not a regular file. The entries are then written in one transaction; :class:`CacheError` if the
        disk layer cannot take them.
        """
        from ._bundle import read_bundle

        entries = read_bundle(os.fspath(path), total_limit=self._size_limit)
        with self._lock:
            cache = self._open() if self._disk_enabled else None
            if self._disk_enabled and cache is None:
                raise CacheError(f"the cache directory {self._directory!r} is not usable: {self._disk_error}")
            if cache is not None:
                try:
                    with cache.transact():
                        for key, blob, _, _ in entries:
                            cache.set(key, blob)
                except self._io_errors() as exc:
                    raise CacheError(f"could not write to the cache in {self._directory!r}: {exc}; "
                                     "nothing was imported") from None
            for key, _, payload, meta in entries:
                self._remember(key, payload, meta)
        return len(entries)

    # --- life cycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close disk handles; the store reopens them if used again."""
        with self._lock:
            self._close_reader()
            for layer in self._layers or ():
                layer.close()
            if self._cache is not None:
                self._cache.close()
                self._cache = None

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "on" if self._disk_enabled and self._disk_error is None else "off"
        return f"ArtifactStore({self._directory!r}, disk={state})"

    # --- internals ----------------------------------------------------------------------

    def _count(self, *names: str) -> None:
        for name in names:
            self._counters[name] += 1

    def _remember(self, key: str, payload: bytes, meta: dict[str, Any]) -> None:
        memory = self._memory
        memory.pop(key, None)
        memory[key] = (payload, meta)
        if len(memory) > _MEMORY_ENTRIES:
            del memory[next(iter(memory))]  # least recently used

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @staticmethod
    def _io_errors() -> tuple[type[BaseException], ...]:
        """Exceptions that mean the disk layer cannot do its job right now."""
        import sqlite3

        from diskcache import Timeout

        return (OSError, sqlite3.Error, Timeout)

    def _check_trust(self) -> bool:
        """Whether the directory may be used; refuses (with the one warning) if others can write it."""
        if self._trusted is None:
            problem = directory_problem(self._directory)
            if problem is not None:
                self._disable(problem, refused=True)
            self._trusted = problem is None
        return self._trusted

    def _open(self) -> Any:
        """Return the diskcache.Cache, opening it on first use; None if unavailable.

        An open cache is returned only while its index files are still regular files: SQLite
        may open the journal again at any transaction, and a FIFO there would block it.
        """
        if self._cache is not None:
            problem = index_files_problem(self._directory)
            if problem is None:
                return self._cache
            with self._lock:
                self._disable(problem)
            return None
        if not self._disk_enabled or self._disk_error is not None:
            return self._cache
        with self._lock:
            if self._cache is not None or self._disk_error is not None or not self._check_trust():
                return self._cache
            for attempt in (1, 2):
                try:
                    self._cache = self._new_cache()
                    break
                except self._io_errors() as exc:
                    if attempt == 1 and _is_damage(exc):
                        self.rebuild(f"{type(exc).__name__}: {exc}")
                        continue
                    self._disable(str(exc) if isinstance(exc, CacheError) else f"{type(exc).__name__}: {exc}")
                    return None
            self._close_reader()
            return self._cache

    def _new_cache(self) -> Any:
        import diskcache

        directory = self._directory
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)  # makedirs' mode is filtered by the umask
            problem = directory_problem(directory)  # someone else's directory, made meanwhile
            if problem is not None:
                raise PermissionError(problem)
        problem = index_files_problem(directory)
        if problem is not None:
            raise CacheError(problem)
        self._wait_for_write_lock()
        return diskcache.Cache(
            directory,
            disk=_safe_disk(),
            size_limit=self._size_limit,
            timeout=self._lock_timeout,
            eviction_policy="least-recently-stored",  # lookups never write
        )

    def _wait_for_write_lock(self) -> None:
        """Take and release the index's write lock, waiting at most ``lock_timeout`` seconds.

        diskcache's own set-up retries a locked index for a minute; a held lock should cost a
        compile no more than the bound, after which it goes on without the disk layer.
        """
        import sqlite3

        db = os.path.join(self._directory, "cache.db")
        if not os.path.exists(db):
            return
        con = sqlite3.connect(db, timeout=self._lock_timeout, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise TimeoutError(f"another process held the cache's write lock for over {self._lock_timeout:g} s") from None
        finally:
            con.close()

    def _disable(self, reason: str, *, refused: bool = False) -> None:
        """Fall back to memory only, with one warning for this store."""
        if self._disk_error is not None:
            return
        self._disk_error = reason
        if self._cache is not None:
            try:
                self._cache.close()
            except Exception:  # already failing; the warning below says why
                pass
            self._cache = None
        self._close_reader()
        fix = ("Use a directory only you can write (FFTFUSE_CACHE_DIR), and share precompiled callbacks "
               "read-only through FFTFUSE_CACHE_PATH" if refused else
               "Point FFTFUSE_CACHE_DIR at a writable directory to keep them across runs")
        warnings.warn(
            f"fftfuse: the compile cache in {self._directory!r} is disabled for this process"
            f" ({reason}); compiled callbacks are kept in memory only. {fix}"
            " (FFTFUSE_CACHE=0 turns the disk cache off without this warning).",
            RuntimeWarning,
            stacklevel=5,
        )

    def _disk_read(self, key: str, expect: dict[str, Any] | None) -> tuple[bytes, dict[str, Any]] | None:
        if not self._disk_enabled or self._disk_error is not None or not self._check_trust():
            return None
        blob: Any = _UNKNOWN
        if self._cache is None:
            if self._reader is None:
                self._reader = _IndexReader(self._directory, self._lock_timeout)
            blob = self._reader.read(key)
        if blob is _UNKNOWN:
            cache = self._open()
            if cache is None:
                return None
            try:
                blob = cache.get(key)
            except self._io_errors() as exc:
                _logger().warning("cache read of %s failed in %s: %s", key, self._directory, exc)
                return None
        if blob is None:
            return None
        try:
            payload, meta = decode_entry(blob, key)
            problem = mismatch(meta, expect) if expect else None
            if problem is not None:
                raise BadEntry(f"it is not the entry asked for: {problem}")
        except BadEntry as exc:
            _logger().warning("dropping damaged or mismatched cache entry %s in %s (it is compiled again): %s", key, self._directory, exc)
            self._disk_delete(key)
            return None
        return payload, meta

    def _read_only(self) -> list[_IndexReader]:
        if self._layers is None:
            layers = []
            for path in self._layer_paths:
                problem = directory_problem(path)
                if problem is not None:
                    warnings.warn(
                        f"fftfuse: the read-only cache layer {path!r} from FFTFUSE_CACHE_PATH is not used: "
                        f"{problem}. A shared layer must be owned by root (or you) and writable by nobody else.",
                        RuntimeWarning, stacklevel=6)
                elif os.path.isdir(path) and os.path.realpath(path) != os.path.realpath(self._directory):
                    problem = index_files_problem(path)
                    if problem is not None:
                        self._warn_layer(path, problem)
                    else:
                        layers.append(_IndexReader(path, self._lock_timeout))
            self._layers = layers
        return self._layers

    @staticmethod
    def _warn_layer(path: str, problem: str) -> None:
        warnings.warn(f"fftfuse: the read-only cache layer {path!r} from FFTFUSE_CACHE_PATH is not used: {problem}.",
                      RuntimeWarning, stacklevel=7)

    def _layer_read(self, key: str, expect: dict[str, Any] | None) -> tuple[bytes, dict[str, Any]] | None:
        for layer in list(self._read_only()):
            blob = layer.read(key)
            if layer.refused is not None:  # its index files changed since it was opened
                self._warn_layer(layer.directory, layer.refused)
                assert self._layers is not None
                self._layers.remove(layer)
                continue
            if blob is None or blob is _UNKNOWN:
                continue
            try:
                payload, meta = decode_entry(blob, key)
                problem = mismatch(meta, expect) if expect else None
                if problem is None:
                    return payload, meta
                raise BadEntry(f"it is not the entry asked for: {problem}")
            except BadEntry as exc:  # never deleted: the layer is not ours to change
                _logger().warning("skipping cache entry %s in read-only layer %s: %s", key, layer.directory, exc)
        return None

    def _disk_write(self, key: str, blob: bytes) -> None:
        cache = self._open()
        if cache is None:
            return
        try:
            cache.set(key, blob)
        except self._io_errors() as exc:
            self._disable(f"{type(exc).__name__}: {exc}" if str(exc) else
                          f"another process held the cache's write lock for over {self._lock_timeout:g} s")

    def _disk_delete(self, key: str) -> bool:
        cache = self._open()
        if cache is None:
            return False
        try:
            return bool(cache.delete(key))
        except self._io_errors() as exc:
            _logger().warning("could not delete cache entry %s in %s: %s", key, self._directory, exc)
            return False

    def _disk_keys(self, cache: Any) -> list[str]:
        try:
            return [k for k in cache.iterkeys() if type(k) is str]
        except self._io_errors() as exc:
            raise CacheError(f"could not read the cache index in {self._directory!r}: {exc}") from None

    def _verified_blobs(self) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
        """Yield ``(key, blob, meta)`` for every entry that verifies, disk first, then memory.

        Unlike :meth:`get`, this leaves the memory layer and the counters alone.
        """
        seen = set()
        for check in self.check_entries() if self._open() is not None else ():
            if check.problem is not None:
                _logger().warning("not exporting cache entry %s: %s", check.key, check.problem)
                continue
            assert check.payload is not None
            seen.add(check.key)
            yield check.key, encode_entry(check.key, check.payload, check.meta)[0], check.meta
        with self._lock:
            memory = [(k, p, m) for k, (p, m) in self._memory.items() if k not in seen]
        for key, payload, meta in memory:
            blob, full = encode_entry(key, payload, meta)
            yield key, blob, full

    def _disk_meta(self, cache: Any, key: str) -> dict[str, Any] | None:
        """Metadata of one disk entry, reading its header only; None if damaged or gone."""
        try:
            # Inline values come back as bytes, file-backed ones as a file object.
            value = cache.get(key, read=True)
            if value is None:
                return None
            if hasattr(value, "read"):
                with value:
                    head = value.read(HEADER)
                    length = meta_length(head)
                    if length is not None:
                        head += value.read(length)
                value = head
            return decode_meta(value)[0]
        except BadEntry as exc:
            _logger().warning("cache entry %s in %s is damaged: %s", key, self._directory, exc)
        except self._io_errors() as exc:
            _logger().warning("could not read cache entry %s in %s: %s", key, self._directory, exc)
        return None


_default: ArtifactStore | None = None
_default_lock = _thread.allocate_lock()


def default_store() -> ArtifactStore:
    """Return the process-wide store, configured from the environment on first call."""
    global _default
    store = _default
    if store is None:
        with _default_lock:
            if _default is None:
                _default = ArtifactStore()
            store = _default
    return store


def reset_default_store() -> None:
    """Close and forget the process-wide store (tests, or after changing the environment)."""
    global _default
    with _default_lock:
        store, _default = _default, None
    if store is not None:
        store.close()
