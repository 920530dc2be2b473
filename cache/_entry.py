"""The self-verifying blob each entry is stored as, on disk and in bundles.

::

    b"FFTF" | meta length (4 bytes, little-endian) | meta JSON (utf-8) | payload

The metadata records the payload's ``size`` and ``sha256``, both checked on every read.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAGIC = b"FFTF"
HEADER = len(MAGIC) + 4


class BadEntry(ValueError):
    """A stored blob failed verification."""


def encode_entry(payload: bytes, meta: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Return the blob for ``payload`` and the metadata it records.

    >>> blob, meta = encode_entry(b"abc", {"kind": "epilog"})
    >>> decode_entry(blob) == (b"abc", meta)
    True
    """
    full = dict(meta)
    full["size"] = len(payload)
    full["sha256"] = hashlib.sha256(payload).hexdigest()
    header = json.dumps(full, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + len(header).to_bytes(4, "little") + header + payload, full


def decode_meta(head: Any) -> tuple[dict[str, Any], int]:
    """Parse the header at the start of ``head``; return (meta, offset of the payload)."""
    if type(head) is not bytes:
        raise BadEntry(f"value is a {type(head).__name__}, not bytes")
    if len(head) < HEADER or head[:4] != MAGIC:
        raise BadEntry("bad magic")
    end = HEADER + int.from_bytes(head[4:HEADER], "little")
    if end > len(head):
        raise BadEntry("truncated metadata")
    try:
        meta = json.loads(head[HEADER:end].decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadEntry(f"unreadable metadata: {exc}") from None
    if not isinstance(meta, dict):
        raise BadEntry("metadata is not an object")
    return meta, end


def decode_entry(blob: Any) -> tuple[bytes, dict[str, Any]]:
    """Verify a blob; return (payload, meta) or raise :class:`BadEntry`."""
    meta, start = decode_meta(blob)
    payload = blob[start:]
    if meta.get("size") != len(payload):
        raise BadEntry(f"size {len(payload)} != recorded {meta.get('size')}")
    if meta.get("sha256") != hashlib.sha256(payload).hexdigest():
        raise BadEntry("payload sha256 mismatch")
    return payload, meta
