"""``fftfuse doctor``: what this machine offers fftfuse, and what is missing.

Every probe is independent and reports a failure as text instead of raising, so the report
is complete on a machine without a GPU, without CUDA wheels, or with a broken install.
"""

from __future__ import annotations

import os
from typing import Any, Callable

__all__ = ["diagnose", "format_report", "healthy"]


def _probe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # a probe reports; it never stops the others
        return {"error": f"{type(exc).__name__}: {exc}".strip()}


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _gpu() -> dict[str, Any]:
    from cuda.bindings import driver

    (err,) = driver.cuInit(0)
    if err != driver.CUresult.CUDA_SUCCESS:
        return {"gpus": [], "driver": None, "note": f"no GPU ({err.name})"}
    err, version = driver.cuDriverGetVersion()
    err, count = driver.cuDeviceGetCount()
    gpus = []
    for ordinal in range(count):
        _, dev = driver.cuDeviceGet(ordinal)
        _, name = driver.cuDeviceGetName(64, dev)
        attr = driver.CUdevice_attribute
        _, major = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
        _, minor = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
        gpus.append({"name": name.split(b"\0")[0].decode(), "arch": f"sm_{major}{minor}"})
    return {"gpus": gpus, "driver": f"{version // 1000}.{version % 1000 // 10}",
            "note": None if gpus else "no GPU"}


def _cufft() -> dict[str, Any]:
    from .fft import _cufft

    version = _cufft.cufft_version()
    try:
        _cufft.require_lto_callbacks()
        problem = None
    except RuntimeError as exc:
        problem = str(exc)
    return {"version": _cufft.format_version(version), "library": _cufft.library_path(),
            "lto_callbacks": problem is None, "problem": problem}


def _toolkit() -> dict[str, Any]:
    from fftfuse_compiler.linkcheck import nvjitlink_version, nvrtc_version

    return {"nvjitlink": "%d.%d" % nvjitlink_version(), "nvrtc": "%d.%d" % nvrtc_version()}


def _link() -> dict[str, Any]:
    """Compile a one-line epilog and link it against cuFFT's prototype: the whole chain, no GPU."""
    from fftfuse_cache import ArtifactStore
    from fftfuse_compiler import compile_callback
    from fftfuse_compiler.linkcheck import link_check

    compiled = compile_callback(lambda v: v * 2, "epilog", "complex64", store=ArtifactStore(enabled=False))
    link_check(compiled.ltoir, "epilog", "complex64", compiled.arch)
    return {"ok": True, "arch": f"sm_{compiled.arch}"}


def _nvmath() -> dict[str, Any]:
    from . import _packages

    import nvmath

    return {"imported_from": os.path.dirname(nvmath.__file__ or ""), "fftfuse": _version("fftfuse"),
            "other_distribution": _packages.other_distribution()}


def _cache(directory: str | None) -> dict[str, Any]:
    from fftfuse_cache import ArtifactStore, CacheError, disk_enabled_by_environment

    with ArtifactStore(directory, enabled=True) as store:
        report: dict[str, Any] = {"directory": store.directory, "enabled_for_compiles": disk_enabled_by_environment(),
                                  "read_only_layers": store.read_only_layers, "exists": store.has_disk_data}
        problem = store.directory_problem()
        if problem is not None:
            report["error"] = f"not usable: {problem}"
        elif store.has_disk_data:
            try:
                store.open_disk()
                report["index_problem"] = store.check_index()
                report["entries"] = store.stats()["entries"]
            except CacheError as exc:
                report["error"] = str(exc)
    report["ok"] = "error" not in report and not report.get("index_problem")
    return report


def diagnose(*, cache_dir: str | None = None, link: bool = True) -> dict[str, Any]:
    """Every probe's findings as a JSON-serialisable dict.

    ``cache_dir`` is the cache directory to examine (default: the one compiles use);
    ``link=False`` skips the compile-and-link test.

    >>> import tempfile
    >>> report = diagnose(cache_dir=tempfile.mkdtemp(), link=False)
    >>> {"directory", "ok"} <= set(report["cache"]), "gpu" in report
    (True, True)
    """
    return {
        "fftfuse": _version("fftfuse"),
        "numba": _version("numba"),
        "numba-cuda": _version("numba-cuda"),
        "cuda-bindings": _version("cuda-bindings"),
        "cupy": _version("cupy-cuda13x") or _version("cupy-cuda12x") or _version("cupy"),
        "gpu": _probe(_gpu),
        "cufft": _probe(_cufft),
        "toolkit": _probe(_toolkit),
        "link_lto_callback": _probe(_link) if link else {"skipped": True},
        "nvmath": _probe(_nvmath),
        "cache": _probe(lambda: _cache(cache_dir)),
        "cpu_engines": {"ducc0": _version("ducc0"), "scipy": _version("scipy"), "pyfftw": _version("pyfftw")},
    }


def healthy(report: dict[str, Any]) -> bool:
    """Whether fftfuse can compile callbacks and cache them here (a GPU is not required)."""
    return bool(report["link_lto_callback"].get("ok", report["link_lto_callback"].get("skipped"))
                and report["cache"].get("ok") and not report["nvmath"].get("other_distribution"))


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned text lines."""
    def line(label: str, value: Any) -> str:
        return f"{label + ':':<20}{value}"

    def err(part: dict[str, Any]) -> str | None:
        return part.get("error") if isinstance(part, dict) else None

    gpu, cufft, tk, link, nv, cache = (report[k] for k in ("gpu", "cufft", "toolkit", "link_lto_callback",
                                                           "nvmath", "cache"))
    rows = [line("fftfuse", report["fftfuse"] or "not installed (run from a checkout)")]
    if err(gpu):
        rows.append(line("GPU", f"no GPU ({err(gpu)})"))
    else:
        names = ", ".join(f"{g['name']} ({g['arch']})" for g in gpu["gpus"]) or gpu["note"]
        rows += [line("GPU", names), line("driver", gpu["driver"] or "-")]
    rows.append(line("cuFFT", err(cufft) or f"{cufft['version']} ({cufft['library']})"))
    if not err(cufft):
        rows.append(line("  LTO callbacks", "yes" if cufft["lto_callbacks"] else f"no: {cufft['problem']}"))
    rows.append(line("nvJitLink / NVRTC", err(tk) or f"{tk['nvjitlink']} / {tk['nvrtc']}"))
    rows.append(line("link a callback", "skipped" if link.get("skipped") else err(link) or f"ok ({link['arch']})"))
    rows.append(line("CUDA Python / CuPy", f"{report['cuda-bindings'] or 'missing'} / {report['cupy'] or 'missing'}"))
    rows.append(line("numba / numba-cuda", f"{report['numba'] or 'missing'} / {report['numba-cuda'] or 'missing'}"))
    cpu = report["cpu_engines"]
    fftw = f"fftw (pyFFTW {cpu['pyfftw']})" if cpu["pyfftw"] else "fftw: not installed (pip install pyfftw, GPL)"
    rows.append(line("CPU FFT engines", f"ducc0 {cpu['ducc0'] or 'missing'}, scipy {cpu['scipy'] or 'missing'}, {fftw}"))
    if err(nv):
        rows.append(line("nvmath", err(nv)))
    else:
        rows.append(line("nvmath", nv["imported_from"]))
        other = nv["other_distribution"]
        rows.append(line("  nvmath-python", f"ALSO INSTALLED: {other}" if other else "not installed"))
    if err(cache):
        rows.append(line("cache", err(cache)))
    else:
        state = cache.get("error") or (f"index damaged: {cache['index_problem']}" if cache.get("index_problem")
                                        else f"ok, {cache.get('entries', 0)} entries" if cache["exists"]
                                        else "ok (nothing stored yet)")
        rows.append(line("cache", f"{cache['directory']}: {state}"))
        if not cache["enabled_for_compiles"]:
            rows.append(line("", "disk cache off for compiles (FFTFUSE_CACHE=0)"))
        for layer in cache["read_only_layers"]:
            rows.append(line("  read-only layer", layer))
    return "\n".join(rows)
