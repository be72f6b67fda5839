"""The package version (one place; the root package and provenance hashes read it)."""

__version__ = "0.1.0"
