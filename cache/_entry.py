"""The self-verifying blob each entry is stored as, on disk and in bundles, bound to its key.

::

    b"FFT2" | meta length (4 bytes, little-endian) | binding digest (32 bytes) | meta JSON (utf-8) | payload

The binding digest is SHA-256 over the key, the metadata's exact bytes and the payload. An entry
therefore verifies only under the key it was written for, with the metadata it was written with:
two value files, index rows or bundle members swapped between keys, a metadata byte changed
(``symbols``, ``kind``, ...) or a damaged payload all fail :func:`decode_entry`. The metadata also
records the ``key``, the payload's ``size`` and ``sha256`` (for listings and bundle manifests).

The digest detects damage and mix-ups, not forgery: whoever can write a cache directory or make a
bundle can compute it too, which is why the store trusts only directories no other user can write.

Entries of the first layout (``b"FFTF"``, payload digest only) are not bound to a key, so they
are refused like any mismatch: the store drops them and the caller compiles again.
"""

from __future__ import annotations

import json
from typing import Any

from .hashing import sha256

#: The entry layout (bundles record it): 2 binds each entry to its key.
LAYOUT = 2
MAGIC = b"FFT2"
OLD_MAGIC = b"FFTF"  # the unbound layout: read never, reported as such
_LENGTH = slice(4, 8)
_DIGEST = slice(8, 40)
HEADER = 40
_DOMAIN = b"fftfuse-entry-2\0"
# Fields the store derives; a caller's values for them are replaced.
DERIVED = ("key", "size", "sha256")


class BadEntry(ValueError):
    """A stored blob failed verification (damaged, or not the entry of the key asked for)."""


def _binding(key: str, header: bytes, payload: bytes) -> bytes:
    digest = sha256(_DOMAIN)
    encoded = key.encode("utf-8", "surrogatepass")
    digest.update(len(encoded).to_bytes(8, "little"))
    digest.update(encoded)
    digest.update(len(header).to_bytes(8, "little"))
    digest.update(header)
    digest.update(payload)
    return digest.digest()


def encode_entry(key: str, payload: bytes, meta: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Return the blob binding ``payload`` and ``meta`` to ``key``, and the metadata it records.

    >>> blob, meta = encode_entry("k1", b"abc", {"kind": "epilog"})
    >>> decode_entry(blob, "k1") == (b"abc", meta)
    True
    >>> try:
    ...     decode_entry(blob, "k2")
    ... except BadEntry as exc:
    ...     print(exc)
    it is the entry of key 'k1', not of this one (entries swapped or moved)
    """
    full = {k: v for k, v in meta.items() if k not in DERIVED}
    full["key"] = key
    full["size"] = len(payload)
    full["sha256"] = sha256(payload).hexdigest()
    header = json.dumps(full, sort_keys=True, separators=(",", ":")).encode()
    binding = _binding(key, header, payload)
    return MAGIC + len(header).to_bytes(4, "little") + binding + header + payload, full


def meta_length(prefix: bytes) -> int | None:
    """The metadata's length from a blob's first :data:`HEADER` bytes; None if not this layout."""
    if len(prefix) < HEADER or prefix[:4] != MAGIC:
        return None
    return int.from_bytes(prefix[_LENGTH], "little")


def decode_meta(head: Any) -> tuple[dict[str, Any], int]:
    """Parse the metadata at the start of ``head`` (unverified); return (meta, offset of the payload)."""
    if type(head) is not bytes:
        raise BadEntry(f"value is a {type(head).__name__}, not bytes")
    if head[:4] == OLD_MAGIC:
        raise BadEntry("written in an older entry layout that does not bind an entry to its key; "
                       "it is never served (it is dropped and compiled again)")
    length = meta_length(head[:HEADER])
    if length is None:
        raise BadEntry("bad magic")
    end = HEADER + length
    if end > len(head):
        raise BadEntry("truncated metadata")
    try:
        meta = json.loads(head[HEADER:end].decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadEntry(f"unreadable metadata: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(meta, dict):
        raise BadEntry("metadata is not an object")
    return meta, end


def decode_entry(blob: Any, key: str) -> tuple[bytes, dict[str, Any]]:
    """Verify that ``blob`` is the entry of ``key``; return (payload, meta) or raise :class:`BadEntry`."""
    meta, start = decode_meta(blob)
    payload = blob[start:]
    # A plain comparison: the digest guards against damage and mix-ups, not forgery (see above), so
    # there is no secret for a timing side channel to reveal (hmac would load OpenSSL at start-up).
    if _binding(key, blob[HEADER:start], payload) == blob[_DIGEST]:
        if meta.get("key") != key or meta.get("size") != len(payload):
            raise BadEntry("its metadata contradicts its digest (not written by fftfuse)")
        return payload, meta
    # Say which part is wrong; the digest alone cannot.
    if meta.get("key") != key:
        raise BadEntry(f"it is the entry of key {str(meta.get('key'))[:64]!r}, not of this one "
                       "(entries swapped or moved)")
    if meta.get("size") != len(payload):
        raise BadEntry(f"size {len(payload)} != recorded {meta.get('size')}")
    if meta.get("sha256") != sha256(payload).hexdigest():
        raise BadEntry("payload sha256 mismatch")
    raise BadEntry("its metadata was changed after it was written (the digest over key, metadata and "
                   "payload does not match)")


def mismatch(meta: dict[str, Any], expect: dict[str, Any]) -> str | None:
    """Which recorded field differs from what the caller asked for; None if all recorded ones match.

    Fields the metadata does not record are not compared.

    >>> mismatch({"kind": "epilog", "arch": 90}, {"kind": "prolog", "form": "plain"})
    "it records kind 'epilog', not 'prolog'"
    """
    for name, wanted in expect.items():
        if name in meta and meta[name] != wanted:
            return f"it records {name} {meta[name]!r}, not {wanted!r}"
    return None
