"""Bundles: every entry of a cache in one zip file, to warm another machine's cache.

The zip holds ``manifest.json`` (keys and digests) and one member per entry holding the same
self-verifying blob as on disk, bound to its key (``fftfuse_cache._entry``). No pickles are involved.
Reading is bounded (per member, in total, by compression ratio and by the manifest's nesting)
and all-or-nothing: one bad member rejects the bundle. A member is accepted only as the entry of
the key the manifest lists it under, so no entry is ever imported under another entry's key.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import zlib
from typing import Any, Iterable

from ._entry import LAYOUT, BadEntry, decode_entry
from ._files import MAX_ENTRY_BYTES, UnsafeFile, open_regular

FORMAT = "fftfuse-artifact-bundle"
MANIFEST = "manifest.json"
#: A member may expand this many times its compressed size (LTO-IR deflates about 3:1).
MAX_RATIO = 100
_MANIFEST_MAX = 16 * 2**20


class BundleError(ValueError):
    """A file that is not a bundle, or a bundle that cannot be imported whole."""


def write_bundle(path: str, entries: Iterable[tuple[str, bytes, dict[str, Any]]], version: int) -> int:
    """Write ``(key, blob, meta)`` entries to a bundle at ``path``; return how many.

    The zip is written to a fresh temporary file beside ``path`` (created exclusively, so a
    link planted there is never followed) and renamed over ``path`` once complete.
    """
    import zipfile

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    manifest: list[dict[str, Any]] = []
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for key, blob, meta in entries:
                member = f"entries/{len(manifest):06d}.fftf"
                bundle.writestr(member, blob)
                manifest.append({"key": key, "member": member, "sha256": meta["sha256"], "size": meta["size"]})
            header = {"format": FORMAT, "version": version, "layout": LAYOUT, "entries": manifest}
            bundle.writestr(MANIFEST, json.dumps(header, indent=1))
        os.chmod(tmp, 0o644 & ~_umask())  # mkstemp makes 0600; a bundle is meant to be shared
        os.replace(tmp, path)  # readers never see half a bundle
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return len(manifest)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_bundle(path: str, *, total_limit: int) -> list[tuple[str, bytes, bytes, dict[str, Any]]]:
    """Every entry of the bundle at ``path`` as ``(key, blob, payload, meta)``, all verified.

    Raises :class:`BundleError` saying which member is wrong and why; nothing is returned
    unless every entry verifies.
    """
    import zipfile

    try:
        fd = open_regular(path, sys.maxsize)  # a FIFO would block, a device never end
    except UnsafeFile as exc:
        raise BundleError(f"{exc}; expected a bundle file (a zip made by 'fftfuse cache export')") from None
    with os.fdopen(fd, "rb") as raw:
        try:
            bundle = zipfile.ZipFile(raw)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise BundleError(f"{path!r} is not an artifact bundle: {exc}") from None
        with bundle:
            return _entries(bundle, path, total_limit, zipfile)


def _entries(bundle: Any, path: str, total_limit: int, zipfile: Any) -> list[tuple[str, bytes, bytes, dict[str, Any]]]:
    """The verified entries of an open bundle (see :func:`read_bundle`)."""
    infos = {info.filename: info for info in bundle.infolist()}
    declared = 0
    for info in infos.values():
        _check_member(path, info, zipfile)
        declared += info.file_size
    if declared > total_limit:
        raise BundleError(f"{path!r} would expand to {declared} bytes, more than the cache's limit of "
                          f"{total_limit}; raise the cache's size limit or import a smaller bundle")
    if MANIFEST not in infos:
        raise BundleError(f"{path!r} is not an artifact bundle: it has no {MANIFEST}")
    text = _read(bundle, path, infos[MANIFEST], _MANIFEST_MAX)
    try:
        header = json.loads(text)
    except RecursionError:
        raise BundleError(f"{path!r}: its {MANIFEST} is nested too deeply to be a manifest this tool "
                          "wrote (it is a flat list of entries); nothing was imported") from None
    except ValueError as exc:
        raise BundleError(f"{path!r} is not an artifact bundle: its {MANIFEST} is not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or not isinstance(header.get("entries"), list):
        raise BundleError(f"{path!r} is not an artifact bundle: unknown bundle format")
    if header.get("layout") != LAYOUT:
        raise BundleError(f"{path!r} was made by an older fftfuse, whose entries are not bound to their keys; "
                          "export it again with this version ('fftfuse cache export'); nothing was imported")
    out = []
    for item in header["entries"]:
        try:
            key, member = item["key"], item["member"]
            if not isinstance(key, str) or not isinstance(member, str) or member not in infos:
                raise BadEntry("its key is not a string or its member is missing")
            blob = _read(bundle, path, infos[member], MAX_ENTRY_BYTES + 2**20)
            payload, meta = decode_entry(blob, key)  # refuses a member listed under another key
            if meta["sha256"] != item.get("sha256") or meta["size"] != item.get("size"):
                raise BadEntry("its digest or size differs from the manifest")
        except (KeyError, TypeError, BadEntry) as exc:
            what = item.get("member", item) if isinstance(item, dict) else item
            raise BundleError(f"{path!r}: entry {str(what)[:200]!r} is refused ({exc}); nothing was imported") from None
        out.append((key, blob, payload, meta))
    return out


def _check_member(path: str, info: Any, zipfile: Any) -> None:
    where = f"{path!r}: member {info.filename!r}"
    if info.flag_bits & 0x1:
        raise BundleError(f"{where} is encrypted; bundles are never encrypted (re-export it with 'fftfuse cache export')")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise BundleError(f"{where} uses compression method {info.compress_type}; bundles use only "
                          "stored (0) or deflate (8)")
    if info.file_size > MAX_ENTRY_BYTES + 2**20:
        raise BundleError(f"{where} expands to {info.file_size} bytes, more than an entry may hold")
    if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise BundleError(f"{where} expands {info.file_size // max(info.compress_size, 1)} times; "
                          f"more than {MAX_RATIO} is not a bundle this tool wrote")


def _read(bundle: Any, path: str, info: Any, limit: int) -> bytes:
    import zipfile

    try:
        with bundle.open(info) as member:
            data = member.read(min(limit, info.file_size) + 1)
    except (zlib.error, zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError, OSError) as exc:
        raise BundleError(f"{path!r}: member {info.filename!r} cannot be read ({type(exc).__name__}: {exc}); "
                          "nothing was imported") from None
    if len(data) > min(limit, info.file_size):
        raise BundleError(f"{path!r}: member {info.filename!r} is larger than it declares; nothing was imported")
    return data
