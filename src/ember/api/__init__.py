"""The control plane's HTTP API (never imports torch)."""

from ember.api.app import create_app

__all__ = ["create_app"]
