"""The one-kernel chain's knobs as measured on a GPU architecture, kept in the cache.

``_chain_kernel.choose_knobs`` asks :func:`tuned_knobs` before its rule: a pair (FFTs per block,
elements per thread) that :func:`nvmath.fft.tune_chains` measured fastest for this length and
precision on a GPU of the same architecture, with the same libmathdx and toolchain. A record is
read once per process and kept in memory; a record that no longer describes a pair cuFFTDx
implements is dropped, and the rule answers.

Guarantees: nothing is measured here (measuring compiles a kernel per candidate, seconds each, so
it happens only when ``tune_chains`` is called); a record serves only the architecture, libmathdx
and toolchain it was measured with (all in its key), so another GPU or an upgrade falls back to
the rule until tuned again.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

__all__ = ["knobs_key", "tuned_knobs", "keep_knobs", "forget_knobs"]

TARGET, KIND = "chain-knobs", "chain-knobs"
LAYOUT = 1  # of the stored record


_memo: dict[tuple[int, str, int], tuple[int, int] | None] = {}
_lock = threading.Lock()


def knobs_key(n: int, precision: str, arch: int) -> str:
    """The store key of the knobs measured for a length-``n`` chain in ``precision`` on sm_``arch``."""
    from fftfuse_cache import artifact_key
    from fftfuse_compiler.toolchain import toolchain_stamp
    from nvmath.device import _mathdx

    return artifact_key(target=TARGET, n=n, precision=precision, arch=arch, layout=LAYOUT,
                        mathdx=list(_mathdx.version()), toolchain=toolchain_stamp())


def tuned_knobs(n: int, precision: str, arch: int, valid: Callable[[int, int], bool], *,
                store: Any = None) -> tuple[int, int] | None:
    """The measured ``(ffts_per_block, elements_per_thread)``, or None where none was measured
    (or libmathdx does not load: then no kernel is built either). ``valid(fpb, ept)``: whether
    cuFFTDx implements the pair (a record that fails it is dropped)."""
    memo_key = (n, precision, arch)
    with _lock:
        if memo_key in _memo:
            return _memo[memo_key]
    try:
        key = knobs_key(n, precision, arch)
    except (RuntimeError, OSError):
        return None
    if store is None:
        from fftfuse_cache import default_store

        store = default_store()
    found = _stored(store, key, valid)
    with _lock:
        _memo[memo_key] = found
    return found


def _stored(store: Any, key: str, valid: Callable[[int, int], bool]) -> tuple[int, int] | None:
    from fftfuse_cache import stored_record

    def read(record: Any) -> tuple[int, int]:
        pair = int(record["ffts_per_block"]), int(record["elements_per_thread"])
        if not valid(*pair):
            raise ValueError(f"cuFFTDx has no implementation of {pair[0]} x {pair[1]}")
        return pair

    return stored_record(store, key, {"target": TARGET, "kind": KIND}, read, "chain knobs")


def keep_knobs(n: int, precision: str, arch: int, pair: tuple[int, int], timings_ms: dict[str, float], *,
               store: Any = None) -> None:
    """Store ``pair`` as the knobs of length-``n`` chains in ``precision`` on sm_``arch`` (with the
    timings it won by), and use it in this process from now on."""
    from fftfuse_cache import ArtifactMeta, default_store, keep_artifact
    from fftfuse_compiler.toolchain import toolchain_stamp

    store = default_store() if store is None else store
    payload = json.dumps({"ffts_per_block": pair[0], "elements_per_thread": pair[1], "timings_ms": timings_ms},
                         sort_keys=True).encode()
    meta = ArtifactMeta(TARGET, KIND, element_dtype="complex64" if precision == "float32" else "complex128",
                        arch=arch, toolchain=toolchain_stamp(), extra={"n": n, "knobs": f"{pair[0]}x{pair[1]}"})
    keep_artifact(store, knobs_key(n, precision, arch), payload, meta)
    with _lock:
        _memo[(n, precision, arch)] = pair


def forget_knobs() -> None:
    """Drop this process's memory of the records read (the store keeps them)."""
    with _lock:
        _memo.clear()
