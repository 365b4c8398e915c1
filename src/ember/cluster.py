"""The server's link to Ray: a local Ray started in the background, a cluster joined, or none at all."""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

log = logging.getLogger("ember.cluster")

# Ray's ports run code for whoever reaches them. With "clusters" off, Ray takes 127.0.0.1 as the node's address
# and its GCS, raylet, workers and agents listen on loopback only (by default they listen on every interface,
# and a node address of 127.0.0.1 given to ray.init is rewritten to the machine's external one). The variable
# must be set before Ray is imported; Ray's processes inherit it from the server's environment.
LOOPBACK_ONLY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


class RayState(StrEnum):
    disabled = "disabled"
    starting = "starting"
    connected = "connected"
    failed = "failed"


@dataclass(frozen=True)
class RayStatus:
    state: RayState
    detail: str

    @property
    def ready(self) -> bool:
        return self.state in (RayState.connected, RayState.disabled)


class RayConnection:
    """Connects in a thread so the API answers at once; `status()` says how far it got.

    `address` "" starts a local Ray owned by this process, "disabled" skips Ray, anything else is joined."""

    def __init__(self, address: str, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self._state = RayState.disabled if address == "disabled" else RayState.starting
        self._detail = ""
        self._thread: threading.Thread | None = None
        self._connected_event = threading.Event()
        self._stop_requested = threading.Event()

    def start(self) -> None:
        if self._state is RayState.disabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._connect, name="ember-ray", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> RayStatus:
        """Block until connected or failed (for callers that need Ray, such as tests and job dispatch)."""
        self._connected_event.wait(timeout)
        return self.status()

    def status(self) -> RayStatus:
        if self._state is RayState.connected:
            import ray

            if not ray.is_initialized():
                return RayStatus(RayState.failed, "Ray is no longer initialized")
        return RayStatus(self._state, self._detail)

    def stop(self) -> None:
        """Disconnect (shutting a local Ray down); returns when done or after a minute."""
        self._stop_requested.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _connect(self) -> None:
        # This thread owns the Ray session until stop(): Ray must be shut down by the thread that
        # initialized it, or its core worker hangs for a minute and then aborts the process.
        try:
            if not self.address:
                _bind_local_ray_to_loopback()
            import ray

            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
        except Exception as error:  # Ray raises many kinds; any of them means "not reachable".
            self._state = RayState.failed
            self._detail = f"{type(error).__name__}: {error}"
            log.error("could not connect to Ray: %s", self._detail)
            self._connected_event.set()
            return
        self._state = RayState.connected
        self._detail = "local" if not self.address else self.address
        log.info("connected to Ray (%s)", self._detail)
        self._connected_event.set()
        self._stop_requested.wait()
        ray.shutdown()
        self._state = RayState.starting
        self._detail = "stopped"


def _bind_local_ray_to_loopback() -> None:
    """Make the local Ray this process starts listen on 127.0.0.1 only (see LOOPBACK_ONLY_ENV)."""
    os.environ.update(LOOPBACK_ONLY_ENV)
    constants: Any = sys.modules.get("ray._private.ray_constants")
    if constants is not None:  # Ray was imported before the variable was set: its constant was read already
        constants.ENABLE_RAY_CLUSTER = False


class AttachedRay(RayConnection):
    """A Ray already connected in this process (a test session's, a bench's): the app uses it and never shuts
    it down; its owner does."""

    def start(self) -> None:
        pass

    def wait(self, timeout: float) -> RayStatus:
        return self.status()

    def status(self) -> RayStatus:
        return RayStatus(RayState.connected, self.address)

    def stop(self) -> None:
        pass
