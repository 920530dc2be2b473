"""What a cache directory must look like to be used, and what a tampered one cannot do."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile
from pathlib import Path

import pytest

from fftfuse_cache import ArtifactStore
from fftfuse_cache._files import read_value

REPO_ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 12  # inline in SQLite
BIG_PAYLOAD = os.urandom(100_000)  # in a value file
OTHER_UID = 54321

posix_only = pytest.mark.skipif(not hasattr(os, "geteuid"), reason="ownership and modes are POSIX")


def filled(directory: Path, **entries: bytes) -> Path:
    directory.mkdir(mode=0o700, exist_ok=True)
    with ArtifactStore(directory, enabled=True) as s:
        for key, payload in entries.items():
            s.put(key, payload, {"kind": "epilog"})
    return directory


def value_file(directory: Path, key: str) -> Path:
    with sqlite3.connect(directory / "cache.db") as con:
        (name,) = con.execute("SELECT filename FROM Cache WHERE key = ?", (key,)).fetchone()
    return directory / name


def set_filename(directory: Path, key: str, name: str) -> None:
    with sqlite3.connect(directory / "cache.db") as con:
        con.execute("UPDATE Cache SET filename = ? WHERE key = ?", (name, key))


# --- whose directory --------------------------------------------------------------------------


@posix_only
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a directory away")
def test_directory_owned_by_another_user_is_refused(tmp_path: Path):
    directory = filled(tmp_path / "theirs", k=PAYLOAD)
    os.chown(directory, OTHER_UID, -1)
    with pytest.warns(RuntimeWarning, match=f"owned by uid {OTHER_UID}.*FFTFUSE_CACHE_PATH") as record:
        with ArtifactStore(directory, enabled=True) as s:
            assert s.get("k") is None  # its entries are not served
            s.put("n", PAYLOAD, {})
            assert s.get("n")[0] == PAYLOAD  # memory still works
            assert s.stats()["enabled"] is False
    assert len(record) == 1
    with sqlite3.connect(directory / "cache.db") as con:  # and nothing was written there
        assert con.execute("SELECT COUNT(*) FROM Cache").fetchone()[0] == 1


@posix_only
@pytest.mark.parametrize("mode", [0o770, 0o722, 0o1777])
def test_directory_others_can_write_is_refused(tmp_path: Path, mode: int):
    directory = filled(tmp_path / "shared", k=PAYLOAD)
    directory.chmod(mode)
    with pytest.warns(RuntimeWarning, match=f"mode {mode:o} lets group or others write"):
        with ArtifactStore(directory, enabled=True) as s:
            assert s.get("k") is None


@posix_only
def test_private_and_read_only_modes_are_accepted(tmp_path: Path):
    directory = filled(tmp_path / "mine", k=PAYLOAD)
    for mode in (0o700, 0o755, 0o750):
        directory.chmod(mode)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with ArtifactStore(directory, enabled=True) as s:
                assert s.get("k")[0] == PAYLOAD


# --- what an index row or a value file can do ---------------------------------------------------


@pytest.mark.parametrize("name", ["../victim", "{victim}", "ab/../../victim"])
def test_crafted_index_row_reads_and_deletes_nothing_outside(tmp_path: Path, name: str):
    directory = filled(tmp_path / "store", k=BIG_PAYLOAD)
    victim = tmp_path / "victim"
    victim.write_bytes(b"root-only file")
    set_filename(directory, "k", name.format(victim=victim))
    with ArtifactStore(directory, enabled=True) as s:
        assert s.get("k") is None
        s.put("other", PAYLOAD, {})  # the diskcache handle is open now: ask again through it
        assert s.get("k") is None
        assert s.delete("k")
        s.clear()
    assert victim.read_bytes() == b"root-only file"


def test_value_file_behind_a_link_is_not_followed(tmp_path: Path):
    directory = filled(tmp_path / "store", k=BIG_PAYLOAD)
    planted = filled(tmp_path / "planted", k=os.urandom(100_000))  # a valid blob, other bytes
    target = value_file(directory, "k")
    target.unlink()
    target.symlink_to(value_file(planted, "k"))
    with ArtifactStore(directory, enabled=True) as s:
        assert s.get("k") is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_in_place_of_a_value_file_does_not_hang(tmp_path: Path):
    directory = filled(tmp_path / "store", k=BIG_PAYLOAD)
    target = value_file(directory, "k")
    target.unlink()
    os.mkfifo(target)
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO_ROOT)!r})
        import nvmath
        from fftfuse_cache import ArtifactStore
        with ArtifactStore({str(directory)!r}, enabled=True) as s:
            print(s.get("k"))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def test_value_files_are_size_capped(tmp_path: Path):
    directory = filled(tmp_path / "store", k=BIG_PAYLOAD)
    name = str(value_file(directory, "k").relative_to(directory))
    assert len(read_value(str(directory), name)) > len(BIG_PAYLOAD)
    with pytest.raises(OSError, match="more than the 1000"):
        read_value(str(directory), name, limit=1000)


# --- read-only layers ---------------------------------------------------------------------------


def test_read_only_layer_serves_after_the_users_own_and_is_never_written(tmp_path: Path, monkeypatch):
    layer = filled(tmp_path / "layer", shared=BIG_PAYLOAD, both=b"layer's")
    before = sorted(p.name for p in layer.rglob("*"))
    own = filled(tmp_path / "own", both=b"own")
    monkeypatch.setenv("FFTFUSE_CACHE_PATH", os.pathsep.join([str(tmp_path / "missing"), str(layer)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ArtifactStore(own, enabled=True) as s:
            assert s.read_only_layers == [str(layer)]
            assert s.get("shared")[0] == BIG_PAYLOAD
            assert s.get("both")[0] == b"own"  # the user's directory comes first
            s.put("new", PAYLOAD, {})
            s.clear()
    with sqlite3.connect(layer / "cache.db") as con:
        assert con.execute("SELECT COUNT(*) FROM Cache").fetchone()[0] == 2
    assert sorted(p.name for p in layer.rglob("*") if not p.name.startswith("cache.db-")) == \
        [n for n in before if not n.startswith("cache.db-")]


def test_damaged_entry_in_a_read_only_layer_is_skipped_not_deleted(tmp_path: Path):
    layer = filled(tmp_path / "layer", k=BIG_PAYLOAD)
    target = value_file(layer, "k")
    target.write_bytes(target.read_bytes()[:-1] + b"\0")
    with ArtifactStore(tmp_path / "own", enabled=True, read_only=[layer]) as s:
        assert s.get("k") is None
    assert target.exists()


@posix_only
def test_read_only_layer_others_can_write_is_refused(tmp_path: Path):
    layer = filled(tmp_path / "layer", k=PAYLOAD)
    layer.chmod(0o777)
    with pytest.warns(RuntimeWarning, match="read-only cache layer.*lets group or others write"):
        with ArtifactStore(tmp_path / "own", enabled=True, read_only=[layer]) as s:
            assert s.get("k") is None
            assert s.read_only_layers == []


def test_layers_are_off_with_the_disk_cache(tmp_path: Path, monkeypatch):
    layer = filled(tmp_path / "layer", k=PAYLOAD)
    monkeypatch.setenv("FFTFUSE_CACHE_PATH", str(layer))
    with ArtifactStore(tmp_path / "own", enabled=False) as s:
        assert s.get("k") is None


# --- locks ---------------------------------------------------------------------------------------


def test_held_write_lock_is_waited_for_a_bounded_time(tmp_path: Path):
    directory = filled(tmp_path / "store", k=PAYLOAD)
    holder = sqlite3.connect(directory / "cache.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        start = time.perf_counter()
        with pytest.warns(RuntimeWarning, match="disabled"):
            with ArtifactStore(directory, enabled=True, lock_timeout=0.3) as s:
                s.put("n", PAYLOAD, {})
                assert s.get("n")[0] == PAYLOAD
        assert time.perf_counter() - start < 10
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# --- bundles -------------------------------------------------------------------------------------


def exported(tmp_path: Path) -> tuple[Path, dict]:
    bundle = tmp_path / "b.zip"
    with ArtifactStore(filled(tmp_path / "src", a=PAYLOAD, b=BIG_PAYLOAD), enabled=True) as src:
        src.export_bundle(bundle)
    with zipfile.ZipFile(bundle) as z:
        return bundle, {i.filename: z.read(i) for i in z.infolist()}


def rewritten(tmp_path: Path, members: dict, **info_changes) -> Path:
    out = tmp_path / "rewritten.zip"
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name.startswith("entries/"):
                for attr, value in info_changes.items():
                    setattr(info, attr, value)
            z.writestr(info, data)
    return out


def test_bundle_import_refuses_a_compression_bomb(tmp_path: Path):
    _, members = exported(tmp_path)
    members["entries/000000.fftf"] = bytes(4 * 2**20)  # 4 MiB of zeros deflate to a few KB
    with ArtifactStore(tmp_path / "dst", enabled=True) as dst:
        with pytest.raises(ValueError, match="expands .* times"):
            dst.import_bundle(rewritten(tmp_path, members))


def test_bundle_import_respects_the_size_limit(tmp_path: Path):
    bundle, _ = exported(tmp_path)
    with ArtifactStore(tmp_path / "dst", enabled=True, size_limit=50_000) as dst:
        with pytest.raises(ValueError, match="more than the cache's limit of 50000"):
            dst.import_bundle(bundle)


def marked_encrypted(bundle: Path) -> Path:
    """The bundle with every member's "encrypted" flag set (zipfile cannot write one)."""
    raw = bytearray(bundle.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature)
        while at >= 0:
            raw[at + flags_at] |= 0x1
            at = raw.find(signature, at + 4)
    bundle.write_bytes(bytes(raw))
    return bundle


def test_bundle_import_refuses_encrypted_and_unknown_compression(tmp_path: Path):
    bundle, members = exported(tmp_path)
    with ArtifactStore(tmp_path / "dst", enabled=True) as dst:
        with pytest.raises(ValueError, match="is encrypted"):
            dst.import_bundle(marked_encrypted(bundle))
        with pytest.raises(ValueError, match="compression method 12"):
            dst.import_bundle(rewritten(tmp_path, members, compress_type=zipfile.ZIP_BZIP2))
        assert dst.get("a") is None and dst.get("b") is None


def test_bundle_import_reports_a_bad_deflate_stream(tmp_path: Path):
    bundle, members = exported(tmp_path)
    raw = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as z:
        info = z.getinfo("entries/000001.fftf")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start:start + 64] = bytes(range(64))  # garbage where the deflate stream starts
    bundle.write_bytes(bytes(raw))
    with ArtifactStore(tmp_path / "dst", enabled=True) as dst:
        with pytest.raises(ValueError, match="000001.fftf.*cannot be read.*nothing was imported"):
            dst.import_bundle(bundle)
        assert dst.get("a") is None


def test_export_never_follows_a_link_planted_at_its_temporary_name(tmp_path: Path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"root-only file")
    target = tmp_path / "out.zip"
    os.symlink(victim, f"{target}.tmp{os.getpid()}")  # the name an earlier version wrote through
    with ArtifactStore(filled(tmp_path / "src", a=PAYLOAD), enabled=True) as src:
        assert src.export_bundle(target) == 1
    assert victim.read_bytes() == b"root-only file"
    assert zipfile.is_zipfile(target) and not target.is_symlink()


# --- the package's place in the dependency graph ---------------------------------------------------


def test_cache_package_imports_nothing_else_of_fftfuse():
    ours = {"fftfuse_compiler", "compiler", "nvmath", "benchmarks"}
    for path in (REPO_ROOT / "cache").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.ImportFrom) and node.level > 1:
                names = ["(beyond the package)"]
            bad = [n for n in names if n.split(".")[0] in ours or n.startswith("(")]
            assert not bad, f"{path.name} imports {bad}"
    # The folder loaded under its import name by hand, as nvmath maps it in a checkout, without nvmath.
    script = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("fftfuse_cache", {str(REPO_ROOT / "cache" / "__init__.py")!r},
                                                      submodule_search_locations=[{str(REPO_ROOT / "cache")!r}])
        sys.modules["fftfuse_cache"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["fftfuse_cache"])
        import fftfuse_cache._bundle
        print(sorted(m for m in sys.modules if m.split('.')[0] in ('fftfuse_compiler', 'compiler', 'nvmath')))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- entries bound to their keys ---------------------------------------------------------------------
# Each case below made an earlier layout (a digest over the payload only) serve one key's entry
# for another, or metadata nobody wrote.

TWO = b"code of two " * 500  # inline (under diskcache's 32 KiB)
THREE = b"code of three" * 500
BIG_TWO = b"2" * 100_000  # value files
BIG_THREE = b"3" * 100_000


def swap_rows(directory: Path, a: str, b: str) -> None:
    """Swap everything but the key between two index rows (inline values or value file names)."""
    with sqlite3.connect(directory / "cache.db") as con:
        cols = "mode, filename, value, size"
        row_a = con.execute(f"SELECT {cols} FROM Cache WHERE key = ?", (a,)).fetchone()
        row_b = con.execute(f"SELECT {cols} FROM Cache WHERE key = ?", (b,)).fetchone()
        for key, row in ((a, row_b), (b, row_a)):
            con.execute("UPDATE Cache SET mode = ?, filename = ?, value = ?, size = ? WHERE key = ?", (*row, key))


def inline_blob(directory: Path, key: str) -> bytes:
    with sqlite3.connect(directory / "cache.db") as con:
        return con.execute("SELECT value FROM Cache WHERE key = ?", (key,)).fetchone()[0]


def set_inline_blob(directory: Path, key: str, blob: bytes) -> None:
    with sqlite3.connect(directory / "cache.db") as con:
        con.execute("UPDATE Cache SET value = ? WHERE key = ?", (blob, key))


def refused_everywhere(directory: Path, caplog, *keys: str, message: str) -> None:
    """The keys miss (and are dropped) in a fresh store and in a read-only layer, and verify finds them."""
    with ArtifactStore(directory, enabled=True) as s:
        problems = {c.key: c.problem for c in s.check_entries()}
        for key in keys:
            assert problems[key] is not None and message in problems[key], problems
    layer_copy = directory.parent / (directory.name + "-layer")
    import shutil

    shutil.copytree(directory, layer_copy)
    with ArtifactStore(directory.parent / "empty", enabled=True, read_only=[layer_copy]) as s:
        assert all(s.get(k) is None for k in keys)  # a read-only layer's mismatch is skipped
    with caplog.at_level("WARNING", logger="fftfuse.cache"):
        with ArtifactStore(directory, enabled=True) as s:
            assert all(s.get(k) is None for k in keys)
            assert not any(k in {key for key, _ in s.entries()} for k in keys)  # dropped, not kept
    assert any(message in r.getMessage() and "compiled again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("two, three", [(TWO, THREE), (BIG_TWO, BIG_THREE)], ids=["inline rows", "value files"])
def test_entries_swapped_between_keys_are_never_served(tmp_path: Path, caplog, two: bytes, three: bytes):
    directory = tmp_path / "store"
    directory.mkdir(mode=0o700)
    with ArtifactStore(directory, enabled=True) as s:
        s.put("two", two, {"kind": "epilog", "function": "two"})
        s.put("three", three, {"kind": "epilog", "function": "three"})
    swap_rows(directory, "two", "three")
    refused_everywhere(directory, caplog, "two", "three", message="not of this one")


def test_value_files_swapped_on_disk_are_never_served(tmp_path: Path, caplog):
    directory = filled(tmp_path / "store", two=BIG_TWO, three=BIG_THREE)
    a, b = value_file(directory, "two"), value_file(directory, "three")
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    refused_everywhere(directory, caplog, "two", "three", message="not of this one")


def rewrite_meta(blob: bytes, change) -> bytes:
    """The blob with its metadata changed by ``change`` and everything else (the digest too) kept."""
    from fftfuse_cache._entry import HEADER, decode_meta

    meta, start = decode_meta(blob)
    change(meta)
    header = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    return blob[:4] + len(header).to_bytes(4, "little") + blob[8:HEADER] + header + blob[start:]


def test_swapped_symbols_in_the_metadata_are_never_served(tmp_path: Path, caplog):
    directory = tmp_path / "store"
    directory.mkdir(mode=0o700)
    with ArtifactStore(directory, enabled=True) as s:
        s.put("loops", TWO, {"kind": "epilog", "symbols": ["apart", "in_place"]})
    set_inline_blob(directory, "loops", rewrite_meta(inline_blob(directory, "loops"),
                                                     lambda m: m.update(symbols=m["symbols"][::-1])))
    refused_everywhere(directory, caplog, "loops", message="metadata was changed")


def test_a_flipped_metadata_byte_is_never_served(tmp_path: Path, caplog):
    directory = tmp_path / "store"
    directory.mkdir(mode=0o700)
    with ArtifactStore(directory, enabled=True) as s:
        s.put("k", TWO, {"kind": "epilog"})
    blob = inline_blob(directory, "k")
    at = blob.index(b'"epilog"') + 1
    set_inline_blob(directory, "k", blob[:at] + b"E" + blob[at + 1:])  # still valid JSON: "Epilog"
    refused_everywhere(directory, caplog, "k", message="metadata was changed")


def test_an_entry_of_the_unbound_layout_is_dropped_and_compiled_again(tmp_path: Path, caplog):
    directory = tmp_path / "store"
    directory.mkdir(mode=0o700)
    header = json.dumps({"kind": "epilog", "size": len(TWO), "sha256": hashlib.sha256(TWO).hexdigest()}).encode()
    with ArtifactStore(directory, enabled=True) as s:
        s.put("old", b"placeholder", {})
    set_inline_blob(directory, "old", b"FFTF" + len(header).to_bytes(4, "little") + header + TWO)
    refused_everywhere(directory, caplog, "old", message="older entry layout")


def test_expected_metadata_that_differs_is_a_miss_and_drops_the_entry(tmp_path: Path, caplog):
    directory = tmp_path / "store"
    directory.mkdir(mode=0o700)
    with ArtifactStore(directory, enabled=True) as s:
        s.put("k", TWO, {"kind": "epilog", "arch": 90})
        assert s.get("k", expect={"kind": "epilog", "form": "plain"}) is not None  # form not recorded
        with caplog.at_level("WARNING", logger="fftfuse.cache"):
            assert s.get("k", expect={"kind": "prolog"}) is None  # held in memory: dropped there too
    assert any("records kind 'epilog', not 'prolog'" in r.getMessage() for r in caplog.records)
    with ArtifactStore(directory, enabled=True) as s:
        assert s.get("k", expect={"arch": 80}) is None
        assert s.get("k") is None  # dropped from disk


def exported_pair(tmp_path: Path) -> tuple[Path, dict]:
    bundle = tmp_path / "pair.zip"
    with ArtifactStore(tmp_path / "src", enabled=True) as src:
        src.put("two", TWO, {"function": "two"})
        src.put("three", THREE, {"function": "three"})
        assert src.export_bundle(bundle) == 2
    with zipfile.ZipFile(bundle) as z:
        return bundle, json.loads(z.read("manifest.json"))


def with_manifest(bundle: Path, manifest: dict) -> Path:
    out = bundle.with_name("rewritten.zip")
    with zipfile.ZipFile(bundle) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = json.dumps(manifest).encode() if info.filename == "manifest.json" else zin.read(info)
            zout.writestr(info, data)
    return out


@pytest.mark.parametrize("fields", [("member", "sha256", "size"), ("member",), ("key",)])
def test_bundle_never_imports_an_entry_under_another_key(tmp_path: Path, fields: tuple[str, ...]):
    bundle, manifest = exported_pair(tmp_path)
    first, second = manifest["entries"]
    for field in fields:
        first[field], second[field] = second[field], first[field]
    with ArtifactStore(tmp_path / "dst", enabled=True) as dst:
        with pytest.raises(ValueError, match=r"entries/00000\d\.fftf.*refused.*nothing was imported"):
            dst.import_bundle(with_manifest(bundle, manifest))
        assert dst.get("two") is None and dst.get("three") is None


def test_bundle_listing_one_member_under_two_keys_is_refused(tmp_path: Path):
    bundle, manifest = exported_pair(tmp_path)
    manifest["entries"][1].update({k: manifest["entries"][0][k] for k in ("member", "sha256", "size")})
    with ArtifactStore(tmp_path / "dst", enabled=True) as dst:
        with pytest.raises(ValueError, match="not of this one.*nothing was imported"):
            dst.import_bundle(with_manifest(bundle, manifest))
        assert dst.get("two") is None


def test_bundle_of_the_unbound_layout_is_refused_with_what_to_do(tmp_path: Path):
    bundle, manifest = exported_pair(tmp_path)
    del manifest["layout"]
    with ArtifactStore(tmp_path / "dst", enabled=True) as dst:
        with pytest.raises(ValueError, match="older fftfuse.*export it again"):
            dst.import_bundle(with_manifest(bundle, manifest))


def test_deeply_nested_manifest_is_refused_clearly(tmp_path: Path):
    bundle, _ = exported_pair(tmp_path)
    out = tmp_path / "deep.zip"
    with zipfile.ZipFile(bundle) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, b"[" * 100_000 + b"]" * 100_000 if info.filename == "manifest.json"
                          else zin.read(info))
    with ArtifactStore(tmp_path / "dst", enabled=True) as dst:
        with pytest.raises(ValueError, match="nested too deeply"):
            dst.import_bundle(out)


# --- no hangs: files that are not regular files ----------------------------------------------------
# Opening a FIFO blocks until a writer comes; each case runs in a child process under a timeout,
# so a regression fails here instead of hanging the suite.

HANG_LIMIT = 60


def run_child(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    full_env.pop("FFTFUSE_CACHE", None)
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                              env=full_env, timeout=HANG_LIMIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child process hung for {HANG_LIMIT} s")


STORE_CHILD = """
    import sys, warnings
    import nvmath
    from fftfuse_cache import ArtifactStore
    warnings.simplefilter("always")
    with ArtifactStore(sys.argv[1] if len(sys.argv) > 1 else {own!r}, enabled=True, read_only={layers!r}) as s:
        print("get", s.get("k"))
        s.put("n", b"payload", {{}})
        print("memory", s.get("n")[0])
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
@pytest.mark.parametrize("name", ["cache.db", "cache.db-journal", "cache.db-wal", "cache.db-shm"])
def test_fifo_beside_the_index_falls_back_instead_of_hanging(tmp_path: Path, name: str):
    directory = filled(tmp_path / "own", k=PAYLOAD)
    (directory / name).unlink(missing_ok=True)
    os.mkfifo(directory / name)
    child = run_child(STORE_CHILD.format(own=str(directory), layers=[]))
    assert child.returncode == 0, child.stderr
    assert "memory b'payload'" in child.stdout
    assert f"{name} is a FIFO (named pipe), not a regular file" in child.stderr
    assert "disabled for this process" in child.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
@pytest.mark.parametrize("name", ["cache.db", "cache.db-journal", "cache.db-wal", "cache.db-shm"])
def test_fifo_in_a_read_only_layer_skips_the_layer(tmp_path: Path, name: str):
    layer = filled(tmp_path / "layer", k=PAYLOAD)
    (layer / name).unlink(missing_ok=True)
    os.mkfifo(layer / name)
    child = run_child(STORE_CHILD.format(own=str(tmp_path / "own"), layers=[str(layer)]))
    assert child.returncode == 0, child.stderr
    assert "get None" in child.stdout and "memory b'payload'" in child.stdout
    assert f"read-only cache layer {str(layer)!r}" in child.stderr and f"{name} is a FIFO" in child.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_fifo_appearing_after_a_layer_was_opened_skips_it(tmp_path: Path):
    layer = filled(tmp_path / "layer", k=PAYLOAD, m=PAYLOAD)
    child = run_child(f"""
        import os, warnings
        import nvmath
        from fftfuse_cache import ArtifactStore
        warnings.simplefilter("always")
        with ArtifactStore({str(tmp_path / "own")!r}, enabled=True, read_only=[{str(layer)!r}]) as s:
            print("first", s.get("k") is not None)
            os.mkfifo({str(layer / "cache.db-journal")!r})
            print("second", s.get("m"), s.read_only_layers)
    """)
    assert child.returncode == 0, child.stderr
    assert "first True" in child.stdout and "second None []" in child.stdout
    assert "cache.db-journal is a FIFO" in child.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_importing_what_is_not_a_bundle_file_says_what_it_is(tmp_path: Path, kind: str):
    path = {"fifo": tmp_path / "pipe", "directory": tmp_path, "device": Path("/dev/zero")}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    child = run_child(f"""
        import nvmath
        from fftfuse_cache import ArtifactStore
        with ArtifactStore({str(tmp_path / "dst")!r}, enabled=True) as s:
            try:
                s.import_bundle({str(path)!r})
            except ValueError as exc:
                print(exc)
    """)
    words = {"fifo": "a FIFO (named pipe)", "directory": "a directory", "device": "a character device"}[kind]
    assert f"is {words}, not a regular file; expected a bundle file" in child.stdout, child.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
@pytest.mark.parametrize("where", ["FFTFUSE_CACHE_DIR", "FFTFUSE_CACHE_PATH"])
def test_fft_with_a_fifo_index_computes_and_warns(tmp_path: Path, where: str):
    directory = tmp_path / "D"
    directory.mkdir(mode=0o700)
    os.mkfifo(directory / "cache.db")
    env = {"FFTFUSE_CACHE_DIR": str(directory)} if where == "FFTFUSE_CACHE_DIR" else \
        {"FFTFUSE_CACHE_DIR": str(tmp_path / "own"), "FFTFUSE_CACHE_PATH": str(directory)}
    child = run_child("""
        import numpy as np, nvmath
        x = np.random.default_rng(1).standard_normal(8) + 1j * np.random.default_rng(2).standard_normal(8)
        y = nvmath.fft.fft(x.astype(np.complex64), epilog=lambda v: v * 2)
        print(np.allclose(y, 2 * np.fft.fft(x), rtol=1e-5, atol=1e-5))
    """, env)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip().endswith("True")
    assert "cache.db is a FIFO" in child.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_fifo_appearing_beside_an_open_index_falls_back_instead_of_hanging(tmp_path: Path):
    directory = filled(tmp_path / "own", k=PAYLOAD)
    child = run_child(f"""
        import os, threading, warnings
        import nvmath
        from fftfuse_cache import ArtifactStore
        warnings.simplefilter("always")
        with ArtifactStore({str(directory)!r}, enabled=True) as s:
            s.put("first", b"one", {{}})
            os.mkfifo({str(directory / "cache.db-journal")!r})
            worker = threading.Thread(target=s.put, args=("second", b"two", {{}}))  # a new SQLite connection
            worker.start()
            worker.join()
            print("second", s.get("second")[0], s.stats()["enabled"])
    """)
    assert child.returncode == 0, child.stderr
    assert "second b'two' False" in child.stdout
    assert "cache.db-journal is a FIFO" in child.stderr and "disabled for this process" in child.stderr


def test_cpu_entry_recording_another_callback_kind_is_recompiled(tmp_path: Path):
    """A CPU entry whose (digest-valid) metadata records another kind is not loaded as the asked one."""
    compile_double = textwrap.dedent(f"""
        import logging
        import nvmath
        from fftfuse_cache import ArtifactStore
        from fftfuse_compiler.cpu_backend import compile_cpu
        def double(v):
            return v * 2
        logging.basicConfig(level=logging.WARNING)
        store = ArtifactStore({str(tmp_path / "store")!r})
        callback = compile_cpu(double, "epilog", "complex64", store=store)
        callback.loops.ready()  # compiled (and stored) now
        print("source", callback.source)
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))

    def run() -> subprocess.CompletedProcess:
        child = subprocess.run([sys.executable, "-c", compile_double], capture_output=True, text=True, timeout=300,
                               env=env)
        assert child.returncode == 0, child.stderr
        return child

    assert "source compiled" in run().stdout
    assert "source cache" in run().stdout
    with ArtifactStore(str(tmp_path / "store")) as s:
        [(key, meta)] = list(s.entries())
        code, meta = s.get(key)
        s.put(key, code, dict(meta, kind="prolog"))
    again = run()
    assert "source compiled" in again.stdout
    assert "kind" in again.stderr
