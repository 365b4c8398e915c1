"""GPU placement on a real Ray with declared GPU resources (no GPU needed): one GPU of its own per worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

# Run in a fresh interpreter: Ray allows one local cluster per process, and other tests start their own.
PROGRAM = textwrap.dedent(
    """
    import json, ray
    from ember.jobs.dispatch import gpus_per_worker

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)

    class Worker:
        def gpus(self):
            return [str(gpu) for gpu in ray.get_gpu_ids()]

    gpus = gpus_per_worker(None, ray.cluster_resources().get("GPU", 0.0))
    actors = [ray.remote(Worker).options(num_cpus=0.5, num_gpus=gpus).remote() for _ in range(2)]
    print(json.dumps({"per_worker": gpus, "seen": ray.get([actor.gpus.remote() for actor in actors])}))
    ray.shutdown()
    """
)


@pytest.mark.slow
def test_with_no_setting_each_worker_gets_its_own_gpu_of_the_cluster() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["per_worker"] == 1.0
    seen = report["seen"]
    assert [len(gpus) for gpus in seen] == [1, 1] and seen[0] != seen[1]
