"""The parts of a scaled-out Ember on one machine, each a real process in its own process group: Ray nodes on
loopback, moto's S3 server, `ember serve` replicas. Every start has a matching hard stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ray_env() -> dict[str, str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    if (Path.home() / ".ray" / "auth_token").is_file():
        env["RAY_AUTH_MODE"] = "token"  # a token file turns token authentication on for the whole cluster
    return env


@dataclass
class Process:
    """A process started in its own group: `kill()` takes the group down (-9), `stop()` asks first."""

    popen: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.is_file() else ""


def start(command: list[str], log: Path, env: dict[str, str]) -> Process:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Process(popen, log)


def ray_node(temp_dir: Path, log: Path, head_address: str | None = None, num_cpus: int = 1) -> tuple[Process, str]:
    """A Ray node on loopback with ports of its own (`--block`: the node lives as long as this process group);
    the head when `head_address` is None. Returns the process and the cluster's address."""
    gcs, node_manager, object_manager, agent_listen, agent_grpc, metrics, runtime_env, client = free_ports(8)
    worker_low = free_ports(1)[0]
    command = [
        str(BIN / "ray"), "start", "--block", f"--num-cpus={num_cpus}", "--node-ip-address=127.0.0.1",
        f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
        f"--dashboard-agent-listen-port={agent_listen}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
        f"--min-worker-port={worker_low}", f"--max-worker-port={worker_low + 40}", "--disable-usage-stats",
    ]
    if head_address is None:
        address = f"127.0.0.1:{gcs}"
        command += ["--head", f"--port={gcs}", "--include-dashboard=false", f"--ray-client-server-port={client}",
                    f"--temp-dir={temp_dir}"]
    else:
        address = head_address
        command += [f"--address={head_address}"]
    return start(command, log, ray_env()), address


def wait_for_nodes(address: str, count: int, timeout: float = 120) -> None:
    """Until the cluster at `address` has `count` live nodes (asked with `ray status`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = subprocess.run(
            [str(BIN / "ray"), "status", f"--address={address}"], capture_output=True, text=True, env=ray_env(),
            timeout=60, check=False,
        )
        if status.stdout.count(" node_") >= count:
            return
        time.sleep(1)  # another process's cluster: `ray status` is the only way to ask
    raise AssertionError(f"the Ray cluster did not reach {count} nodes:\n{status.stdout}\n{status.stderr}")


def moto_server(log: Path) -> tuple[Process, str]:
    port = free_ports(1)[0]
    process = start([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], log, dict(os.environ))
    endpoint = f"http://127.0.0.1:{port}"
    wait_http(endpoint, process)
    return process, endpoint


def ember_serve(data_dir: Path, env: dict[str, str], log: Path) -> tuple[Process, str]:
    port = free_ports(1)[0]
    process = start(
        [str(BIN / "ember"), "serve", "--port", str(port), "--data-dir", str(data_dir)], log, {**ray_env(), **env}
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthz", process)
    return process, base


def wait_http(url: str, process: Process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise AssertionError(f"{url}: the process ended\n{process.tail()}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)  # polling another process's port: there is no event to await
    raise AssertionError(f"{url} did not answer\n{process.tail()}")
