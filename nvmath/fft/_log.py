"""What the FFT layer logs, on ``fftfuse.*`` loggers and on ``FFTOptions.logger``.

``fftfuse.fft`` gets plans built (INFO) or reused (DEBUG) and callbacks compiled (INFO) or found
in the cache (DEBUG); ``fftfuse.compiler`` gets the compiler's own events. An FFT given
``FFTOptions(logger=...)`` sends its events there instead. Callers check ``isEnabledFor``
before formatting anything, so a quiet logger costs one call.
"""

from __future__ import annotations

import logging
from typing import Any

FFT_LOG = logging.getLogger("fftfuse.fft")


def fft_logger(options: Any) -> logging.Logger:
    """The logger for one FFT's events: its options' logger, else ``fftfuse.fft``."""
    return options.logger if options.logger is not None else FFT_LOG


def log_compiled(options: Any, name: str, source: str, size: int, seconds: float) -> None:
    """A callback compiled (INFO) or found in the cache (DEBUG)."""
    log = fft_logger(options)
    level = logging.INFO if source == "compiled" else logging.DEBUG
    if log.isEnabledFor(level):
        how = "compiled" if source == "compiled" else "found in the cache"
        log.log(level, "%s %s: %d bytes of LTO-IR in %.1f ms", name, how, size, 1e3 * seconds)
