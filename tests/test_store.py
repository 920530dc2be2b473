"""Tests for fftfuse_cache.store: layers, entry verification, degradation, bundles, eviction."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import warnings
import zipfile
from pathlib import Path

import diskcache
import pytest

import fftfuse_cache
from fftfuse_cache import store as store_module
from fftfuse_cache.store import FORMAT_VERSION, ArtifactStore, artifact_key, default_store, reset_default_store

REPO_ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 12  # ~3 KB, kept inline in SQLite by diskcache
BIG_PAYLOAD = os.urandom(100_000)  # over diskcache's 32 KB threshold: kept in a file


def raw_cache(directory: Path) -> diskcache.Cache:
    """diskcache's own view of a store directory, for inspecting and tampering."""
    return diskcache.Cache(str(directory))


def flip_last_byte(blob: bytes) -> bytes:
    return blob[:-1] + bytes([blob[-1] ^ 0xFF])


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(directory: Path):
    with ArtifactStore(directory, enabled=True) as s:
        yield s


# --- keys ---------------------------------------------------------------------------------


def test_artifact_key_is_canonical():
    key = artifact_key(fingerprint="ab", arch="sm_90", options={"fast": True, "opt": 3})
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == artifact_key(options={"opt": 3, "fast": True}, arch="sm_90", fingerprint="ab")
    assert key != artifact_key(fingerprint="ab", arch="sm_80", options={"fast": True, "opt": 3})


def test_artifact_key_includes_format_version(monkeypatch):
    key = artifact_key(a=1)
    monkeypatch.setattr(store_module, "FORMAT_VERSION", FORMAT_VERSION + 1)
    assert artifact_key(a=1) != key


def test_artifact_key_rejects_non_json_parts():
    with pytest.raises(TypeError):
        artifact_key(a=object())


# --- get / put ------------------------------------------------------------------------


def test_miss_then_round_trip(store: ArtifactStore):
    key = artifact_key(name="round-trip")
    assert store.get(key) is None
    store.put(key, PAYLOAD, {"entry": "cb", "arch": "sm_90"})
    payload, meta = store.get(key)
    assert payload == PAYLOAD
    assert meta["entry"] == "cb" and meta["arch"] == "sm_90"
    assert meta["size"] == len(PAYLOAD)
    assert len(meta["sha256"]) == 64
    stats = store.stats()
    assert (stats["hits"], stats["misses"], stats["puts"]) == (1, 1, 1)


def test_persists_across_store_instances(directory: Path):
    key = artifact_key(name="persist")
    with ArtifactStore(directory, enabled=True) as writer:
        writer.put(key, PAYLOAD, {"entry": "cb"})
        writer.put("big", BIG_PAYLOAD, {})
    with ArtifactStore(directory, enabled=True) as reader:
        assert reader.get(key) == (PAYLOAD, writer.get(key)[1])
        assert reader.get("big")[0] == BIG_PAYLOAD
        assert reader.stats()["disk_hits"] == 2


def test_memory_layer_serves_repeated_gets(store: ArtifactStore, directory: Path):
    key = artifact_key(name="memory")
    store.put(key, PAYLOAD, {})
    with ArtifactStore(directory, enabled=True) as fresh:
        fresh.get(key)
        assert fresh.stats()["disk_hits"] == 1
        raw_cache(directory).delete(key)  # gone from disk: only memory can answer now
        for _ in range(3):
            assert fresh.get(key)[0] == PAYLOAD
        stats = fresh.stats()
        assert (stats["memory_hits"], stats["disk_hits"], stats["hits"]) == (3, 1, 4)


def test_memory_layer_is_bounded():
    s = ArtifactStore("/nonexistent-unused", enabled=False)
    for i in range(1000):
        s.put(str(i), b"x", {})
    assert s.stats()["memory_entries"] <= 256
    assert s.get("999") is not None and s.get("0") is None


def test_returned_meta_is_a_copy(store: ArtifactStore):
    store.put("k", PAYLOAD, {"a": 1})
    store.get("k")[1]["a"] = 2
    assert store.get("k")[1]["a"] == 1


def test_put_rejects_unserialisable_meta(store: ArtifactStore):
    with pytest.raises(TypeError):
        store.put("k", PAYLOAD, {"bad": object()})


def test_disk_holds_raw_bytes_blobs_not_pickles(store: ArtifactStore, directory: Path):
    store.put("small", PAYLOAD, {"entry": "cb"})
    store.put("big", BIG_PAYLOAD, {"entry": "cb"})
    store.close()
    with sqlite3.connect(directory / "cache.db") as con:
        modes = dict(con.execute("SELECT key, mode FROM Cache"))
        (value,) = con.execute("SELECT value FROM Cache WHERE key = 'small'").fetchone()
    assert modes == {"small": 1, "big": 2}  # diskcache's MODE_RAW and MODE_BINARY
    assert value[:4] == b"FFT2"
    meta_len = int.from_bytes(value[4:8], "little")
    assert json.loads(value[40 : 40 + meta_len])["key"] == "small"  # each entry names its key
    assert value[40 + meta_len :] == PAYLOAD


# --- damaged entries ------------------------------------------------------------------


def _open_disk_first(s: ArtifactStore) -> None:
    s.put("unrelated", b"x", {})  # forces the diskcache path instead of the index reader


@pytest.mark.parametrize("path", ["index-reader", "diskcache"])
@pytest.mark.parametrize("damage", ["garbage", "flipped-payload-byte", "wrong-size", "bad-json"])
def test_damaged_entry_is_dropped(directory: Path, caplog, path: str, damage: str):
    key = artifact_key(name="damaged")
    with ArtifactStore(directory, enabled=True) as s:
        s.put(key, PAYLOAD, {"entry": "cb"})
    raw = raw_cache(directory)
    blob = raw.get(key)
    meta_len = int.from_bytes(blob[4:8], "little")
    damaged = {
        "garbage": b"not an entry at all",
        "flipped-payload-byte": flip_last_byte(blob),
        "wrong-size": blob + b"extra",
        "bad-json": blob[:8] + b"\xff" + blob[9:],
    }[damage]
    assert meta_len > 0
    raw.set(key, damaged)
    with ArtifactStore(directory, enabled=True) as s, caplog.at_level(logging.WARNING, "fftfuse.cache"):
        if path == "diskcache":
            _open_disk_first(s)
        assert s.get(key) is None
        assert key not in raw
        assert s.stats()["misses"] == 1
    assert any("damaged" in r.getMessage() for r in caplog.records)


def test_damaged_file_backed_entry_is_dropped(directory: Path):
    with ArtifactStore(directory, enabled=True) as s:
        s.put("big", BIG_PAYLOAD, {})
    (value_file,) = [p for p in directory.rglob("*.val")]
    data = value_file.read_bytes()
    value_file.write_bytes(flip_last_byte(data))
    with ArtifactStore(directory, enabled=True) as s:
        assert s.get("big") is None
    assert "big" not in raw_cache(directory)


class _Trap:
    """Unpickling this would create a file; the store must never unpickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize("path", ["index-reader", "diskcache"])
def test_foreign_pickled_value_is_never_unpickled(directory: Path, tmp_path: Path, path: str):
    trap = tmp_path / "unpickled"
    raw_cache(directory).set("k", _Trap(str(trap)))
    with ArtifactStore(directory, enabled=True) as s:
        if path == "diskcache":
            _open_disk_first(s)
        assert s.get("k") is None
        assert "k" not in [key for key, _ in s.entries()]
    assert not trap.exists()
    assert "k" not in raw_cache(directory)


def test_corrupt_database_is_set_aside_and_rebuilt(directory: Path, caplog):
    directory.mkdir(mode=0o700)
    (directory / "cache.db").write_bytes(b"this is not sqlite" * 100)
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, "fftfuse.cache"):
        warnings.simplefilter("error")  # a repaired cache is no reason to warn the user
        with ArtifactStore(directory, enabled=True) as s:
            assert s.get("k") is None
            s.put("k", PAYLOAD, {})
    assert any("rebuilt" in r.getMessage() for r in caplog.records)
    assert (directory / "cache.db.damaged").read_bytes().startswith(b"this is not sqlite")
    with ArtifactStore(directory, enabled=True) as later:  # the next process finds the entry
        assert later.get("k")[0] == PAYLOAD


# --- degradation and configuration ----------------------------------------------------


def _unwritable_dirs(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file, so nothing can be created below it")
    yield blocker / "cache"
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        yield locked / "cache"


def test_unwritable_directory_warns_once_and_keeps_working(tmp_path: Path):
    for directory in _unwritable_dirs(tmp_path):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            s = ArtifactStore(directory, enabled=True)
            assert s.get("a") is None
            s.put("a", PAYLOAD, {"n": 1})
            s.put("b", PAYLOAD, {"n": 2})
            assert s.get("a")[0] == PAYLOAD and s.get("b")[1]["n"] == 2
            assert s.stats()["enabled"] is False
            assert s.stats()["disk_error"]
            assert [k for k, _ in s.entries()] == ["a", "b"]
        runtime = [w for w in record if issubclass(w.category, RuntimeWarning)]
        assert len(runtime) == 1, [str(w.message) for w in record]
        message = str(runtime[0].message)
        assert "disabled" in message and "FFTFUSE_CACHE_DIR" in message and str(directory) in message


def test_failing_put_degrades(store: ArtifactStore, monkeypatch):
    store.put("a", PAYLOAD, {})

    def disk_full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store._cache, "set", disk_full)
    with pytest.warns(RuntimeWarning, match="disk is full"):
        store.put("b", PAYLOAD, {})
    store.put("c", PAYLOAD, {})  # no second warning: pytest would fail on an unexpected one
    assert store.get("b")[0] == PAYLOAD and store.get("c")[0] == PAYLOAD


@pytest.mark.parametrize("value", ["0", "off", "false", "no", "OFF"])
def test_disabled_by_environment(directory: Path, monkeypatch, value: str):
    monkeypatch.setenv("FFTFUSE_CACHE", value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = ArtifactStore(directory)
        s.put("k", PAYLOAD, {})
        assert s.get("k")[0] == PAYLOAD
        assert s.stats()["enabled"] is False
    assert not directory.exists()


def test_enabled_argument_overrides_environment(directory: Path, monkeypatch):
    monkeypatch.setenv("FFTFUSE_CACHE", "0")
    with ArtifactStore(directory, enabled=True) as s:
        s.put("k", PAYLOAD, {})
        assert s.stats()["enabled"] is True
    assert (directory / "cache.db").exists()


def test_directory_created_private(tmp_path: Path):
    directory = tmp_path / "a" / "b" / "cache"
    old_umask = os.umask(0o022)
    try:
        with ArtifactStore(directory, enabled=True) as s:
            s.put("k", PAYLOAD, {})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_existing_directory_mode_is_left_alone(tmp_path: Path):
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    with ArtifactStore(directory, enabled=True) as s:
        s.put("k", PAYLOAD, {})
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755


def test_directory_from_environment_and_platform(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "env-dir"))
    assert ArtifactStore().directory == str(tmp_path / "env-dir")
    monkeypatch.delenv("FFTFUSE_CACHE_DIR")
    import platformdirs

    assert ArtifactStore().directory == platformdirs.user_cache_dir("fftfuse")


def test_get_before_any_write_creates_nothing(directory: Path):
    with ArtifactStore(directory, enabled=True) as s:
        assert s.get("k") is None
    assert not directory.exists()


# --- listing, deleting, statistics ----------------------------------------------------


def test_entries_delete_and_clear(store: ArtifactStore):
    store.put("a", PAYLOAD, {"n": 1})
    store.put("b", BIG_PAYLOAD, {"n": 2})
    listed = dict(store.entries())
    assert listed["a"]["n"] == 1 and listed["b"]["n"] == 2
    assert listed["b"]["size"] == len(BIG_PAYLOAD)
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert store.get("a") is None
    assert store.stats()["entries"] == 1
    assert store.clear() == 1
    assert store.get("b") is None
    assert store.stats()["entries"] == 0


def test_stats_fields(store: ArtifactStore, directory: Path):
    store.put("a", PAYLOAD, {})
    stats = store.stats()
    assert stats["directory"] == str(directory)
    assert stats["entries"] == 1 and stats["volume"] > 0
    assert stats["size_limit"] == 2**30 and stats["enabled"] is True


@pytest.mark.parametrize("payload_size", [8_000, 40_000], ids=["inline", "file-backed"])
def test_size_limit_evicts_oldest(directory: Path, payload_size: int):
    limit = 512 * 1024
    count = 3 * limit // payload_size
    with ArtifactStore(directory, size_limit=limit, enabled=True) as s:
        for i in range(count):
            s.put(f"k{i}", os.urandom(payload_size), {"i": i})
        stats = s.stats()
        assert stats["entries"] < count
        # diskcache culls after each insert, so the volume stays within about one entry.
        assert stats["volume"] <= limit + 2 * payload_size + 64 * 1024, stats
        s.close()
    with ArtifactStore(directory, enabled=True) as fresh:
        assert fresh.get(f"k{count - 1}") is not None  # newest kept
        assert fresh.get("k0") is None  # oldest evicted


# --- concurrency ----------------------------------------------------------------------

_WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
import nvmath
from fftfuse_cache.store import ArtifactStore
payload = bytes(range(256)) * 12
with ArtifactStore(sys.argv[2], enabled=True) as s:
    for i in range(25):
        s.put(sys.argv[3], payload, {"entry": "cb"})
        got = s.get(sys.argv[3])
        assert got is not None and got[0] == payload
"""


def test_concurrent_processes_writing_one_key(directory: Path):
    key = artifact_key(name="contended")
    env = {k: v for k, v in os.environ.items() if k != "FFTFUSE_CACHE"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-W", "error::RuntimeWarning", "-c", _WRITER, str(REPO_ROOT), str(directory), key],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        assert b"Warning" not in err, err.decode()
    raw = raw_cache(directory)
    assert list(raw.iterkeys()) == [key]
    with ArtifactStore(directory, enabled=True) as s:
        assert s.get(key)[0] == bytes(range(256)) * 12


def test_default_store_is_a_thread_safe_singleton(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "default"))
    reset_default_store()
    seen = []
    barrier = threading.Barrier(8)

    def grab():
        barrier.wait()
        seen.append(default_store())

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen}) == 1
    assert seen[0].directory == str(tmp_path / "default")
    assert fftfuse_cache.default_store() is seen[0]
    reset_default_store()
    assert default_store() is not seen[0]
    reset_default_store()


def test_fresh_process_read_stays_light(directory: Path):
    """A hit in a new process needs neither diskcache nor numpy (start-up cost)."""
    with ArtifactStore(directory, enabled=True) as s:
        s.put("k", PAYLOAD, {"entry": "cb"})
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import nvmath;"
        "import fftfuse_cache.store as cs;"
        "s = cs.ArtifactStore(sys.argv[2], enabled=True); p, m = s.get('k');"
        "print(len(p), m['entry'], 'diskcache' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO_ROOT), str(directory)], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [str(len(PAYLOAD)), "cb", "False", "False"]


# --- bundles --------------------------------------------------------------------------


def test_bundle_import_is_all_or_nothing(tmp_path: Path):
    bundle = tmp_path / "artifacts.zip"
    with ArtifactStore(tmp_path / "src", enabled=True) as src:
        src.put("a", PAYLOAD, {"n": 1})
        src.put("b", BIG_PAYLOAD, {"n": 2})
        src.put("c", b"third", {"n": 3})
        assert src.export_bundle(bundle) == 3
        expected = {k: src.get(k) for k in "abc"}

    # Rewrite the bundle with the entry for "b" damaged.
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(bundle) as zin, zipfile.ZipFile(damaged, "w") as zout:
        manifest = zin.read("manifest.json")
        members = {e["key"]: e["member"] for e in json.loads(manifest)["entries"]}
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == members["b"]:
                data = flip_last_byte(data)
            zout.writestr(info, data)

    with ArtifactStore(tmp_path / "dst", enabled=True) as dst:
        with pytest.raises(ValueError, match=f"{members['b']}.*sha256 mismatch.*nothing was imported"):
            dst.import_bundle(damaged)
        assert all(dst.get(k) is None for k in "abc")
        assert dst.import_bundle(bundle) == 3
        assert dst.get("b") == expected["b"]
    with ArtifactStore(tmp_path / "dst", enabled=True) as again:  # imported entries reached disk
        assert [again.get(k) for k in "abc"] == [expected[k] for k in "abc"]


def test_bundle_contains_no_pickles(tmp_path: Path):
    bundle = tmp_path / "b.zip"
    with ArtifactStore(tmp_path / "src", enabled=True) as src:
        src.put("a", PAYLOAD, {"n": 1})
        src.export_bundle(bundle)
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        assert "manifest.json" in names
        for name in names:
            data = z.read(name)
            assert data.startswith(b"FFT2") or data.lstrip().startswith(b"{")


def test_import_of_a_non_bundle_raises(tmp_path: Path, store: ArtifactStore):
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"nope")
    with pytest.raises(ValueError, match="not an artifact bundle"):
        store.import_bundle(not_zip)
    other_zip = tmp_path / "y.zip"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ValueError, match="not an artifact bundle"):
        store.import_bundle(other_zip)


def test_bundle_from_memory_only_store_and_damaged_disk_entry(tmp_path: Path):
    bundle = tmp_path / "m.zip"
    memory_only = ArtifactStore(tmp_path / "unused", enabled=False)
    memory_only.put("a", PAYLOAD, {"n": 1})
    assert memory_only.export_bundle(bundle) == 1
    with ArtifactStore(tmp_path / "dst", enabled=True) as dst:
        assert dst.import_bundle(bundle) == 1
        assert dst.get("a") == memory_only.get("a")

    with ArtifactStore(tmp_path / "src", enabled=True) as writer:
        writer.put("good", PAYLOAD, {})
        writer.put("bad", PAYLOAD, {})
    raw_cache(tmp_path / "src").set("bad", b"garbage")
    with ArtifactStore(tmp_path / "src", enabled=True) as src:  # nothing in memory
        before = src.stats()
        assert src.export_bundle(bundle) == 1
        after = src.stats()
        assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])
    with zipfile.ZipFile(bundle) as z:
        assert [e["key"] for e in json.loads(z.read("manifest.json"))["entries"]] == ["good"]


# --- compiling through the store, with one metadata record ------------------------------------------


def _compiler(calls: list, meta: fftfuse_cache.ArtifactMeta, payload: bytes = b"code"):
    def compile_now():
        calls.append(1)
        return payload, meta
    return compile_now


def test_compiled_through_compiles_once_then_serves_the_record(directory):
    meta = fftfuse_cache.ArtifactMeta("cpu", "epilog", "value", "complex64", "float32", "znver3 (linux)", "f", "fp", "tc",
                              extra={"symbols": ["a", "b"]})
    calls: list = []
    with ArtifactStore(directory) as store:
        first = fftfuse_cache.compiled_through(store, "k", {"kind": "epilog"}, _compiler(calls, meta))
        assert first == fftfuse_cache.Found(b"code", meta, "compiled")
    with ArtifactStore(directory) as store:  # as a new process
        again = fftfuse_cache.compiled_through(store, "k", {"kind": "epilog", "arch": "znver3 (linux)"},
                                       _compiler(calls, meta))
        assert again == fftfuse_cache.Found(b"code", meta, "cache") and len(calls) == 1
        [(_, stored)] = list(store.entries())
    assert {k: stored[k] for k in ("target", "element_dtype", "user_dtype", "arch", "symbols", "record")} == {
        "target": "cpu", "element_dtype": "complex64", "user_dtype": "float32", "arch": "znver3 (linux)",
        "symbols": ["a", "b"], "record": 1}


@pytest.mark.parametrize("old", [
    {"kind": "epilog", "element": "complex64"},  # written before the record
    {"kind": "epilog", "target": "cpu", "record": 0},  # another version of it
])
def test_an_entry_without_todays_record_is_dropped_and_compiled_again(directory, old):
    meta = fftfuse_cache.ArtifactMeta("cpu", "epilog", element_dtype="complex64")
    calls: list = []
    with ArtifactStore(directory) as store:
        store.put("k", b"old code", old)
        found = fftfuse_cache.compiled_through(store, "k", {"kind": "epilog"}, _compiler(calls, meta))
        assert found.source == "compiled" and found.payload == b"code" and len(calls) == 1
        assert store.get("k")[1]["record"] == 1


def test_a_record_that_disagrees_or_lacks_an_asked_field_is_not_served(directory):
    calls: list = []
    with ArtifactStore(directory) as store:
        fftfuse_cache.keep_artifact(store, "k", b"sm_80 code", fftfuse_cache.ArtifactMeta("ltoir", "epilog", arch=80))
        assert fftfuse_cache.stored_artifact(store, "k", {"arch": 90}) is None  # disagrees: dropped
        fftfuse_cache.keep_artifact(store, "k", b"code", fftfuse_cache.ArtifactMeta("ltoir", "epilog"))
        assert fftfuse_cache.stored_artifact(store, "k", {"arch": 90}) is None  # records no architecture
        assert store.get("k") is None
        found = fftfuse_cache.compiled_through(store, None, {}, _compiler(calls, fftfuse_cache.ArtifactMeta("ltoir", "epilog")))
        assert found.source == "compiled" and list(store.entries()) == []  # no key: nothing stored


def test_extra_fields_cannot_hide_the_records_own():
    with pytest.raises(ValueError, match="arch"):
        fftfuse_cache.ArtifactMeta("cpu", "epilog", extra={"arch": 90}).stored()


def test_a_stored_record_is_read_by_its_reader_and_dropped_when_refused(tmp_path, caplog):
    from fftfuse_cache import ArtifactMeta, keep_artifact, stored_record

    store = ArtifactStore(tmp_path / "cache")
    meta = ArtifactMeta("measured-thing", "choice", arch="here")
    keep_artifact(store, "k", json.dumps({"pick": 3}).encode(), meta)
    expect = {"target": "measured-thing", "kind": "choice"}
    assert stored_record(store, "k", expect, lambda r: r["pick"] * 2, "thing") == 6
    assert stored_record(store, "missing", expect, lambda r: r["pick"], "thing") is None

    def refuse(record):
        raise ValueError("no such pick any more")

    with caplog.at_level("WARNING", logger="fftfuse.cache"):
        assert stored_record(store, "k", expect, refuse, "thing") is None
    assert "dropping the stored thing k: no such pick any more" in caplog.text
    assert stored_record(store, "k", expect, lambda r: r["pick"], "thing") is None  # deleted: measured again
