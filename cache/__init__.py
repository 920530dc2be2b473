"""Persistent compile cache: content-addressed artifacts on disk, with a memory layer."""

__fftfuse_package__ = True

from .store import FORMAT_VERSION, ArtifactStore, artifact_key, default_store, reset_default_store

__all__ = ["FORMAT_VERSION", "ArtifactStore", "artifact_key", "default_store", "reset_default_store"]
