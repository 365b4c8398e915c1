"""Ember: self-hosted custom image models behind a Firefly-compatible API."""

__version__ = "0.1.0"
