"""``fftfuse precompile`` warms exactly the entry a stateless GPU call with data looks up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nvmath

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

CALLBACK = "def weighted(x, d):\n    return x * d\n"


@pytest.mark.parametrize("dtype, user", [("complex64", "float32"), ("complex128", "complex128")])
def test_precompiled_entry_serves_a_stateless_call_with_data(tmp_path: Path, monkeypatch, dtype: str, user: str):
    import fftfuse_cache
    from nvmath.cli import load_function, main

    source = tmp_path / f"precompiled_{dtype}.py"
    source.write_text(CALLBACK)
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    fftfuse_cache.reset_default_store()
    spec = f"{source}:weighted"
    assert main(["precompile", spec, "--kind", "epilog", "--dtype", dtype, "--user-dtype", user]) == 0
    fn = load_function(spec)  # the function object precompile compiled
    fftfuse_cache.reset_default_store()  # as a fresh process: nothing in memory

    rng = np.random.default_rng(7)
    x = (rng.standard_normal(4096) + 1j * rng.standard_normal(4096)).astype(dtype)
    d = rng.standard_normal(4096).astype(user)
    y = nvmath.fft.fft(cp.asarray(x), epilog={"fn": fn, "data": cp.asarray(d)})

    stats = fftfuse_cache.default_store().stats()
    assert stats["puts"] == 0 and stats["disk_hits"] == 1, stats  # found, not compiled
    want = np.fft.fft(x.astype(np.complex128)) * d.astype(np.complex128)
    err = np.abs(cp.asnumpy(y) - want).max() / np.abs(want).max()
    assert err < (1e-5 if dtype == "complex64" else 1e-12), err
