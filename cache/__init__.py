"""Persistent compile cache: content-addressed artifacts on disk, with a memory layer.

This package is storage only: it imports nothing else of fftfuse.
"""

__fftfuse_package__ = True

from .store import (
    FORMAT_VERSION,
    ArtifactStore,
    CacheError,
    EntryCheck,
    artifact_key,
    default_store,
    disk_enabled_by_environment,
    read_only_directories,
    reset_default_store,
)

# The package's public names are the store's, listed once there.
from .store import __all__
