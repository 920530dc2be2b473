"""Persistent, content-addressed store of compiled artifacts.

An :class:`ArtifactStore` maps a key (see :func:`artifact_key`) to a payload (``bytes``,
e.g. LTO-IR) and a small JSON metadata dict. It has two layers:

* memory: a bounded dict in front, so a repeated lookup in one process never touches disk;
* disk: a ``diskcache.Cache`` (SQLite index, large values in files) under the cache
  directory, bounded by ``size_limit`` bytes. When an insert takes the cache over the
  bound, diskcache evicts the entries stored longest ago ("least-recently-stored").

Each disk value is one raw ``bytes`` blob, never a pickle::

    b"FFTF" | meta length (4 bytes, little-endian) | meta JSON (utf-8) | payload

The metadata records the payload's ``size`` and ``sha256``, both checked on every read; a
damaged entry is deleted and reported as a miss, so the caller simply recompiles.

The disk layer never makes a lookup fail: if the directory cannot be created or written
(permissions, read-only or full disk), the store warns once and carries on in memory.

Environment:

``FFTFUSE_CACHE_DIR``
    cache directory (default: the platform's user cache directory for ``fftfuse``).
``FFTFUSE_CACHE``
    ``0``, ``off``, ``false`` or ``no`` turns the disk layer off.

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
import hashlib
import json
import os
import warnings
from typing import Any, Iterator

__all__ = [
    "FORMAT_VERSION",
    "ArtifactStore",
    "artifact_key",
    "default_store",
    "reset_default_store",
]

#: Version of the key derivation and entry layout; bump it to orphan every old entry.
FORMAT_VERSION = 1

MAGIC = b"FFTF"
_HEADER = len(MAGIC) + 4
_MEMORY_ENTRIES = 256
_DISABLING = frozenset({"0", "off", "false", "no"})
_BUNDLE_MANIFEST = "manifest.json"
_BUNDLE_FORMAT = "fftfuse-artifact-bundle"


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
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _hashable_key(version: int, items: tuple) -> str:
    # Keys are computed on every FFT call: remember them (JSON + SHA-256 cost ~6 us).
    return _digest({k: v for k, _, v in items})


class _BadEntry(ValueError):
    """A stored blob failed verification."""


def _encode_entry(payload: bytes, meta: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Return the disk blob for ``payload`` and the metadata it records."""
    full = dict(meta)
    full["size"] = len(payload)
    full["sha256"] = hashlib.sha256(payload).hexdigest()
    header = json.dumps(full, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + len(header).to_bytes(4, "little") + header + payload, full


def _decode_meta(head: Any) -> tuple[dict[str, Any], int]:
    """Parse the header at the start of ``head``; return (meta, offset of the payload)."""
    if type(head) is not bytes:
        raise _BadEntry(f"value is a {type(head).__name__}, not bytes")
    if len(head) < _HEADER or head[:4] != MAGIC:
        raise _BadEntry("bad magic")
    end = _HEADER + int.from_bytes(head[4:_HEADER], "little")
    if end > len(head):
        raise _BadEntry("truncated metadata")
    try:
        meta = json.loads(head[_HEADER:end].decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _BadEntry(f"unreadable metadata: {exc}") from None
    if not isinstance(meta, dict):
        raise _BadEntry("metadata is not an object")
    return meta, end


def _decode_entry(blob: Any) -> tuple[bytes, dict[str, Any]]:
    """Verify a disk blob; return (payload, meta) or raise :class:`_BadEntry`."""
    meta, start = _decode_meta(blob)
    payload = blob[start:]
    if meta.get("size") != len(payload):
        raise _BadEntry(f"size {len(payload)} != recorded {meta.get('size')}")
    if meta.get("sha256") != hashlib.sha256(payload).hexdigest():
        raise _BadEntry("payload sha256 mismatch")
    return payload, meta


def _logger() -> Any:
    import logging  # only when there is something to report

    return logging.getLogger("fftfuse.cache")


def _env_enabled() -> bool:
    return os.environ.get("FFTFUSE_CACHE", "").strip().lower() not in _DISABLING


def _default_directory() -> str:
    env = os.environ.get("FFTFUSE_CACHE_DIR")
    if env:
        return os.path.expanduser(env)
    import platformdirs  # only when no directory is configured

    return platformdirs.user_cache_dir("fftfuse")


_UNKNOWN = object()  # the fast reader could not tell; ask diskcache
_FOREIGN = object()  # a disk key or value this store did not write (not plain bytes)
_disk_class: Any = None


def _bytes_only_disk() -> Any:
    """A ``diskcache.Disk`` that refuses to unpickle keys or values.

    The store only writes ``str`` keys and ``bytes`` values, which diskcache keeps raw; a
    pickled entry in our directory was not written by us and must not be executed.
    """
    global _disk_class
    if _disk_class is None:
        import diskcache
        from diskcache.core import MODE_BINARY, MODE_RAW

        class BytesOnlyDisk(diskcache.Disk):
            def get(self, key: Any, raw: bool) -> Any:
                return super().get(key, raw) if raw else _FOREIGN

            def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
                if mode in (MODE_RAW, MODE_BINARY):
                    return super().fetch(mode, filename, value, read)
                return _FOREIGN

        _disk_class = BytesOnlyDisk
    return _disk_class


class _IndexReader:
    """Read-only lookups straight in diskcache's SQLite index.

    diskcache keeps each ``str`` key in table ``Cache`` (``raw = 1``) with either the bytes
    inline (``mode = 1``) or a file name relative to the directory (``mode = 2``). Reading
    that directly avoids importing diskcache and running its schema set-up, which costs
    more than the lookup itself. Anything unexpected answers :data:`_UNKNOWN` so the caller
    falls back to diskcache proper.
    """

    _QUERY = (
        "SELECT mode, filename, value FROM Cache"
        " WHERE key = ? AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)"
    )

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._con: Any = None

    def read(self, key: str) -> Any:
        """Return the stored bytes, None if absent, or :data:`_UNKNOWN`."""
        import sqlite3
        import time

        if self._con is None:
            path = os.path.join(self._directory, "cache.db")
            if not os.path.exists(path):
                return None  # nothing was ever written here
            try:
                self._con = sqlite3.connect(
                    f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error:
                return _UNKNOWN
        try:
            row = self._con.execute(self._QUERY, (key, time.time())).fetchone()
        except sqlite3.Error:
            return _UNKNOWN
        if row is None:
            return None
        mode, filename, value = row  # diskcache's MODE_RAW = 1, MODE_BINARY = 2
        if mode == 1 and type(value) is bytes:
            return value
        if mode == 2 and filename:
            try:
                with open(os.path.join(self._directory, filename), "rb") as f:
                    return f.read()
            except OSError:
                return _UNKNOWN
        return _UNKNOWN

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


class ArtifactStore:
    """Two-layer (memory, disk) content-addressed store of compiled artifacts.

    ``directory`` defaults to ``$FFTFUSE_CACHE_DIR``, else the user cache directory.
    ``size_limit`` bounds the disk layer in bytes (diskcache evicts the oldest entries).
    ``enabled=None`` reads ``$FFTFUSE_CACHE``; ``False`` keeps the store in memory only.
    Thread-safe; several processes may share one directory.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        size_limit: int = 2**30,
        enabled: bool | None = None,
    ) -> None:
        self._directory = os.fspath(directory) if directory is not None else _default_directory()
        self._size_limit = int(size_limit)
        self._disk_enabled = _env_enabled() if enabled is None else bool(enabled)
        self._memory: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self._lock = _thread.RLock()
        self._cache: Any = None  # diskcache.Cache, opened on first need
        self._reader: _IndexReader | None = _IndexReader(self._directory) if self._disk_enabled else None
        self._disk_error: str | None = None
        self._counters = {"hits": 0, "misses": 0, "memory_hits": 0, "disk_hits": 0, "puts": 0}

    @property
    def directory(self) -> str:
        """The cache directory (whether or not the disk layer is in use)."""
        return self._directory

    # --- lookups ------------------------------------------------------------------------

    def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        """Return ``(payload, meta)`` for ``key``, or None on a miss or a damaged entry."""
        with self._lock:
            entry = self._memory.pop(key, None)
            if entry is not None:
                self._memory[key] = entry  # re-insert: most recently used goes last
                self._count("hits", "memory_hits")
                return entry[0], dict(entry[1])
            blob = self._disk_read(key)
            if blob is None:
                self._count("misses")
                return None
            try:
                payload, meta = _decode_entry(blob)
            except _BadEntry as exc:
                _logger().warning("dropping damaged cache entry %s in %s: %s", key, self._directory, exc)
                self._disk_delete(key)
                self._count("misses")
                return None
            self._remember(key, payload, meta)
            self._count("hits", "disk_hits")
            return payload, dict(meta)

    def put(self, key: str, payload: bytes, meta: dict[str, Any]) -> None:
        """Store ``payload`` with ``meta`` (JSON-serialisable) under ``key``.

        The store adds ``size`` and ``sha256`` to the metadata. Disk problems are not raised:
        the entry then lives in memory only.
        """
        payload = bytes(payload)
        blob, full = _encode_entry(payload, meta)
        with self._lock:
            self._remember(key, payload, full)
            self._count("puts")
            self._disk_write(key, blob)

    def delete(self, key: str) -> bool:
        """Remove ``key`` from both layers; return whether it was present."""
        with self._lock:
            in_memory = self._memory.pop(key, None) is not None
            return self._disk_delete(key) or in_memory

    def clear(self) -> int:
        """Remove every entry; return how many disk entries were removed."""
        with self._lock:
            self._memory.clear()
            cache = self._open()
            if cache is None:
                return 0
            try:
                return int(cache.clear())
            except self._io_errors() as exc:
                _logger().warning("could not clear cache %s: %s", self._directory, exc)
                return 0

    def entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, meta)`` for every entry, reading only the entries' headers.

        On disk entries come oldest first; entries held only in memory (disk layer off or
        unusable) follow.
        """
        seen = set()
        cache = self._open()
        if cache is not None:
            try:
                keys = list(cache.iterkeys())
            except self._io_errors() as exc:
                _logger().warning("could not list cache %s: %s", self._directory, exc)
                keys = []
            for key in keys:
                meta = self._disk_meta(cache, key)
                if meta is not None:
                    seen.add(key)
                    yield key, meta
        with self._lock:
            memory = [(k, dict(m)) for k, (_, m) in self._memory.items() if k not in seen]
        yield from memory

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
                "entries": entries,
                "volume": volume,
                "size_limit": self._size_limit,
                "memory_entries": len(self._memory),
                **self._counters,
            }

    # --- bundles ------------------------------------------------------------------------

    def export_bundle(self, path: str | os.PathLike[str]) -> int:
        """Write every valid entry to one zip file at ``path``; return how many.

        The zip holds ``manifest.json`` (keys and digests) and one member per entry with the
        same self-verifying blob as on disk. No pickles are involved.
        """
        import zipfile

        path = os.fspath(path)
        manifest: list[dict[str, Any]] = []
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
                for key, blob, meta in self._verified_blobs():
                    member = f"entries/{len(manifest):06d}.fftf"
                    bundle.writestr(member, blob)
                    manifest.append({"key": key, "member": member, "sha256": meta["sha256"], "size": meta["size"]})
                header = {"format": _BUNDLE_FORMAT, "version": FORMAT_VERSION, "entries": manifest}
                bundle.writestr(_BUNDLE_MANIFEST, json.dumps(header, indent=1))
            os.replace(tmp, path)  # readers never see half a bundle
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return len(manifest)

    def import_bundle(self, path: str | os.PathLike[str]) -> int:
        """Add the entries of a bundle made by :meth:`export_bundle`; return how many.

        Entries whose digest or layout does not verify are skipped and logged. Raises
        ``ValueError`` if ``path`` is not a bundle at all.
        """
        import zipfile

        try:
            bundle = zipfile.ZipFile(os.fspath(path))
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{os.fspath(path)!r} is not an artifact bundle: {exc}") from None
        imported = 0
        with bundle:
            try:
                header = json.loads(bundle.read(_BUNDLE_MANIFEST))
                listed = header["entries"]
                if header.get("format") != _BUNDLE_FORMAT or not isinstance(listed, list):
                    raise ValueError("unknown bundle format")
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{os.fspath(path)!r} is not an artifact bundle: {exc}") from None
            for item in listed:
                try:
                    key, blob = item["key"], bundle.read(item["member"])
                    if not isinstance(key, str):
                        raise _BadEntry("key is not a string")
                    payload, meta = _decode_entry(blob)
                    if meta["sha256"] != item.get("sha256"):
                        raise _BadEntry("digest differs from the manifest")
                except (KeyError, TypeError, ValueError, zipfile.BadZipFile) as exc:
                    _logger().warning("skipping bundle entry %r from %s: %s", item, os.fspath(path), exc)
                    continue
                with self._lock:
                    self._remember(key, payload, meta)
                    self._disk_write(key, blob)
                imported += 1
        return imported

    # --- life cycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close disk handles; the store reopens them if used again."""
        with self._lock:
            if self._reader is not None:
                self._reader.close()
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

    @staticmethod
    def _io_errors() -> tuple[type[BaseException], ...]:
        """Exceptions that mean the disk layer cannot do its job right now."""
        import sqlite3

        from diskcache import Timeout

        return (OSError, sqlite3.Error, Timeout)

    def _open(self) -> Any:
        """Return the diskcache.Cache, opening it on first use; None if unavailable."""
        if self._cache is not None or not self._disk_enabled or self._disk_error is not None:
            return self._cache
        with self._lock:
            if self._cache is not None or self._disk_error is not None:
                return self._cache
            try:
                import diskcache

                directory = self._directory
                if not os.path.isdir(directory):
                    os.makedirs(directory, mode=0o700, exist_ok=True)
                    os.chmod(directory, 0o700)  # makedirs' mode is filtered by the umask
                self._cache = diskcache.Cache(
                    directory,
                    disk=_bytes_only_disk(),
                    size_limit=self._size_limit,
                    eviction_policy="least-recently-stored",  # lookups never write
                )
            except self._io_errors() as exc:
                self._disable(exc)
                return None
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            return self._cache

    def _disable(self, exc: BaseException) -> None:
        """Fall back to memory only, with one warning for this store."""
        if self._disk_error is not None:
            return
        self._disk_error = f"{type(exc).__name__}: {exc}"
        if self._cache is not None:
            try:
                self._cache.close()
            except Exception:  # already failing; the warning below says why
                pass
            self._cache = None
        warnings.warn(
            f"fftfuse: the compile cache in {self._directory!r} is disabled for this process"
            f" ({self._disk_error}); compiled callbacks are kept in memory only. Point"
            " FFTFUSE_CACHE_DIR at a writable directory to keep them across runs"
            " (FFTFUSE_CACHE=0 turns the disk cache off without this warning).",
            RuntimeWarning,
            stacklevel=4,
        )

    def _disk_read(self, key: str) -> Any:
        if not self._disk_enabled:
            return None
        if self._cache is None and self._reader is not None:
            blob = self._reader.read(key)
            if blob is not _UNKNOWN or self._disk_error is not None:
                return None if blob is _UNKNOWN else blob
        cache = self._open()
        if cache is None:
            return None
        try:
            return cache.get(key)
        except self._io_errors() as exc:
            _logger().warning("cache read of %s failed in %s: %s", key, self._directory, exc)
            return None

    def _disk_write(self, key: str, blob: bytes) -> None:
        cache = self._open()
        if cache is None:
            return
        try:
            cache.set(key, blob)
        except self._io_errors() as exc:
            self._disable(exc)

    def _disk_delete(self, key: str) -> bool:
        cache = self._open()
        if cache is None:
            return False
        try:
            return bool(cache.delete(key))
        except self._io_errors() as exc:
            _logger().warning("could not delete cache entry %s in %s: %s", key, self._directory, exc)
            return False

    def _verified_blobs(self) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
        """Yield ``(key, blob, meta)`` for every entry that verifies, disk first, then memory.

        Unlike :meth:`get`, this leaves the memory layer and the counters alone.
        """
        seen = set()
        cache = self._open()
        if cache is not None:
            try:
                keys = [k for k in cache.iterkeys() if type(k) is str]
            except self._io_errors() as exc:
                _logger().warning("could not list cache %s: %s", self._directory, exc)
                keys = []
            for key in keys:
                try:
                    blob = cache.get(key)
                    if blob is None:
                        continue  # evicted meanwhile
                    _, meta = _decode_entry(blob)
                except _BadEntry as exc:
                    _logger().warning("not exporting damaged cache entry %s: %s", key, exc)
                    continue
                except self._io_errors() as exc:
                    _logger().warning("could not read cache entry %s in %s: %s", key, self._directory, exc)
                    continue
                seen.add(key)
                yield key, blob, meta
        with self._lock:
            memory = [(k, p, m) for k, (p, m) in self._memory.items() if k not in seen]
        for key, payload, meta in memory:
            blob, full = _encode_entry(payload, {k: v for k, v in meta.items() if k not in ("size", "sha256")})
            yield key, blob, full

    def _disk_meta(self, cache: Any, key: str) -> dict[str, Any] | None:
        """Metadata of one disk entry, reading its header only; None if damaged or gone."""
        if type(key) is not str:
            return None  # not one of ours
        try:
            # Inline values come back as bytes, file-backed ones as an open file.
            value = cache.get(key, read=True)
            if value is None:
                return None
            if hasattr(value, "read"):
                with value:
                    head = value.read(_HEADER)
                    if len(head) == _HEADER and head[:4] == MAGIC:
                        head += value.read(int.from_bytes(head[4:], "little"))
                value = head
            return _decode_meta(value)[0]
        except _BadEntry as exc:
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
