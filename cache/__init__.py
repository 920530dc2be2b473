"""Persistent compile cache: content-addressed artifacts on disk, with a memory layer.

This package is storage only: it imports nothing else of fftfuse.
"""

from .artifact import ArtifactMeta, Found, compiled_through, keep_artifact, stored_artifact, stored_record
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

# The package's public names: the store's, listed once there, and the artifact record's.
from .store import __all__ as _store_names

__all__ = [*_store_names, "ArtifactMeta", "Found", "compiled_through", "keep_artifact", "stored_artifact",
           "stored_record"]
