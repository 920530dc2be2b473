"""SHA-256 for keys, fingerprints and entry digests, without loading OpenSSL.

``import hashlib`` loads OpenSSL's libcrypto (about 2.5 ms of a fresh process's start-up, a
quarter of a cache hit's budget); CPython's own SHA-256 module is the same function without
that load. Where it is not built in, hashlib's is used. The digests are identical either way.

>>> sha256(b"abc").hexdigest()[:16]
'ba7816bf8f01cfea'
"""

from __future__ import annotations

try:
    from _sha2 import sha256  # CPython 3.12 and later
except ImportError:
    try:
        from _sha256 import sha256  # CPython 3.11
    except ImportError:
        from hashlib import sha256

__all__ = ["sha256"]
