"""What a cache directory must look like to be used, and what a tampered one cannot do."""

from __future__ import annotations

import ast
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

from cache import ArtifactStore
from cache._files import read_value

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
        from cache import ArtifactStore
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
    ours = {"compiler", "nvmath", "benchmarks"}
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
    script = (f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); import cache, cache._bundle;"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('compiler', 'nvmath')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
