"""One metadata record for every compiled artifact, and compiling through the store, written once.

Every kind of artifact (a Python callback's LTO-IR, its CPU native loops, a CUDA C++ callback,
a cuFFTDx device function, a linked kernel) is looked up under its key, compiled on a miss and
stored with an :class:`ArtifactMeta`. The record's fields are stored flat in the entry's JSON
metadata, so ``fftfuse cache list`` reads the same names for every kind.

An entry written before the record existed (no ``record`` field, or another version) is dropped
on read and compiled again: its metadata is never read under today's names.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, NamedTuple, TypeVar

#: Version of the record's layout; an entry with another one is dropped on read.
RECORD_VERSION = 1

T = TypeVar("T")

_FIELDS = ("target", "kind", "form", "element_dtype", "user_dtype", "arch", "function", "fingerprint",
           "toolchain")
# Not a kind's own fields: the record's, and what the store adds to every entry.
_NOT_EXTRA = frozenset((*_FIELDS, "record", "key", "size", "sha256"))


# A NamedTuple, not a dataclass: the cache-hit path must not import dataclasses (and inspect).
class ArtifactMeta(NamedTuple):
    """What an artifact is and what it was compiled for.

    ``arch`` is a GPU architecture (90 for sm_90) or, for native CPU code, a summary of the CPU
    (``"x86_64-linux-gnu/znver3"``). ``extra`` holds kind-specific fields (symbols, the toolkit,
    the native format, ...), stored next to the others.

    >>> meta = ArtifactMeta("cpu", "epilog", element_dtype="complex64", extra={"symbols": ["a", "b"]})
    >>> ArtifactMeta.from_stored(meta.stored()) == meta
    True
    """

    target: str  # "ltoir", "cpu", "ltoir-cuda-source", "cufftdx-ltoir", "numba-cubin"
    kind: str  # "prolog"/"epilog" for callbacks, "cufftdx", "kernel-cubin"
    form: str | None = None
    element_dtype: str | None = None
    user_dtype: str | None = None
    arch: int | str | None = None
    function: str | None = None
    fingerprint: str | None = None
    toolchain: str | None = None
    extra: Mapping[str, Any] = {}

    def stored(self) -> dict[str, Any]:
        """The flat JSON metadata written with the entry."""
        clash = set(self.extra) & {*_FIELDS, "record"}
        if clash:
            raise ValueError(f"extra metadata {sorted(clash)} would hide the record's own fields")
        fields = {name: value for name, value in zip(_FIELDS, self) if value is not None}
        return {**self.extra, **fields, "record": RECORD_VERSION}

    @classmethod
    def from_stored(cls, meta: Mapping[str, Any]) -> ArtifactMeta | None:
        """The record in an entry's metadata; None for metadata not written as this record."""
        if meta.get("record") != RECORD_VERSION or not isinstance(meta.get("target"), str) \
                or not isinstance(meta.get("kind"), str):
            return None
        extra = {k: meta[k] for k in meta.keys() - _NOT_EXTRA}
        return cls._make([*map(meta.get, _FIELDS), extra])

    def expected(self, *names: str) -> dict[str, Any]:
        """The named fields as the store's ``expect=`` (what an entry must record to be served)."""
        return {name: getattr(self, name) if name in _FIELDS else self.extra[name] for name in names}


class Found(NamedTuple):
    """An artifact and where this call found it."""

    payload: bytes
    meta: ArtifactMeta
    source: str  # "cache" or "compiled"


def stored_artifact(store: Any, key: str, expect: Mapping[str, Any]) -> Found | None:
    """The artifact stored under ``key`` whose record matches ``expect``; None on a miss.

    An entry whose metadata is no record of this version is deleted, so it is compiled afresh.
    """
    hit = store.get(key, expect=dict(expect, record=RECORD_VERSION))
    if hit is None:
        return None
    payload, raw = hit
    meta = ArtifactMeta.from_stored(raw)
    if meta is None or any(v is not None and k not in raw for k, v in expect.items()):
        # Written before the record, or without a field asked for.
        store.delete(key)
        return None
    return Found(payload, meta, "cache")


def stored_record(store: Any, key: str, expect: Mapping[str, Any], read: Callable[[Any], T], what: str) -> T | None:
    """A measured choice kept as JSON under ``key`` (its record matching ``expect``, as
    :func:`stored_artifact`), as ``read(record)`` makes it; None on a miss. A record ``read``
    refuses (ValueError, KeyError, TypeError: a field missing, of the wrong type, naming something
    that no longer exists) is deleted with a warning naming ``what``, so it is measured again."""
    found = stored_artifact(store, key, expect)
    if found is None:
        return None
    try:
        return read(json.loads(found.payload))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        import logging  # here: a cache hit imports no logging

        logging.getLogger("fftfuse.cache").warning("dropping the stored %s %s: %s", what, key, exc)
        store.delete(key)
        return None


def keep_artifact(store: Any, key: str, payload: bytes, meta: ArtifactMeta) -> None:
    """Store ``payload`` under ``key`` with ``meta``."""
    store.put(key, payload, meta.stored())


def compiled_through(store: Any, key: str | None, expect: Mapping[str, Any],
                     compile_fn: Callable[[], tuple[bytes, ArtifactMeta]]) -> Found:
    """The artifact under ``key`` from ``store``, or ``compile_fn()``'s, stored there.

    ``expect``: fields the stored record must hold with these values (see :func:`stored_artifact`).
    ``key`` None (an artifact that cannot be cached) compiles without the store.

    >>> from fftfuse_cache import ArtifactStore
    >>> store = ArtifactStore(enabled=False)
    >>> make = lambda: (b"code", ArtifactMeta("demo", "epilog", arch=90))
    >>> [compiled_through(store, "k", {"arch": 90}, make).source for _ in range(2)]
    ['compiled', 'cache']
    """
    if key is not None:
        found = stored_artifact(store, key, expect)
        if found is not None:
            return found
    payload, meta = compile_fn()
    if key is not None:
        keep_artifact(store, key, payload, meta)
    return Found(payload, meta, "compiled")
