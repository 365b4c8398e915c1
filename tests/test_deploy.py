"""The deploy manifests keep up with the code: they parse, every `EMBER_*` variable they set is a setting, and every
pod that joins the Ray cluster uses Ray's token authentication."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ember.config import Settings

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "deploy" / "kuberay" / "ember.yaml"
# What whoever creates the pool needs, besides Ray's token: every API replica may be the one that creates it.
DEPLOYMENT_CONFIGURATION = {"EMBER_DATABASE_URL", "EMBER_BLOB_URL", "EMBER_TOKEN_SECRET", "EMBER_RAY_ADDRESS",
                            "EMBER_MODEL_DIR", "EMBER_DATA_DIR", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
RAY_TOKEN = {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}


def documents() -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(MANIFEST.read_text()) if document]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [document for document in documents() if document["kind"] == kind]


def pod_specs() -> dict[str, dict[str, Any]]:
    """Every pod template of the manifest, by a readable name."""
    specs = {}
    for document in documents():
        spec = document.get("spec", {})
        name = f"{document['kind']}/{document['metadata']['name']}"
        if document["kind"] == "RayCluster":
            specs[f"{name}/head"] = spec["headGroupSpec"]["template"]["spec"]
            for group in spec["workerGroupSpecs"]:
                specs[f"{name}/{group['groupName']}"] = group["template"]["spec"]
        elif "template" in spec:
            specs[name] = spec["template"]["spec"]
    return specs


def env_names(pod: dict[str, Any]) -> set[str]:
    """The variables a pod's containers get, from `env` and from the ConfigMaps and Secrets they name."""
    sources = {
        (document["kind"], document["metadata"]["name"]): set(document.get("data", {}))
        | set(document.get("stringData", {}))
        for document in documents()
        if document["kind"] in ("ConfigMap", "Secret")
    }
    names: set[str] = set()
    for container in pod["containers"]:
        names |= {variable["name"] for variable in container.get("env", [])}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                names |= sources[("ConfigMap", source["configMapRef"]["name"])]
            if "secretRef" in source:
                names |= sources[("Secret", source["secretRef"]["name"])]
    return names


def test_the_manifest_parses_into_the_parts_of_a_deployment() -> None:
    kinds = sorted(document["kind"] for document in documents())
    assert kinds == ["ConfigMap", "Deployment", "Job", "RayCluster", "Secret", "Service"]
    (job,) = by_kind("Job")
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "ember engine serve --ray-address" in command
    (api,) = by_kind("Deployment")
    command = " ".join(api["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "ember serve" in command and "--ray-address" in command


def test_every_ember_variable_of_the_manifest_is_a_setting() -> None:
    names = set().union(*(env_names(pod) for pod in pod_specs().values()))
    settings = {f"EMBER_{field.upper()}" for field in Settings.model_fields}
    unknown = sorted(name for name in names if name.startswith("EMBER_") and name not in settings)
    assert unknown == [], f"EMBER_ variables that are no setting: {unknown}"


def test_every_ray_node_uses_token_authentication_and_the_pool_creators_share_one_configuration() -> None:
    specs = pod_specs()
    for name, pod in specs.items():
        assert RAY_TOKEN <= env_names(pod), f"{name} joins Ray without token authentication"
    for name in ("Job/ember-engine-pool", "Deployment/ember-api"):
        missing = DEPLOYMENT_CONFIGURATION - env_names(specs[name])
        assert not missing, f"{name} lacks {sorted(missing)}"
    gpu_nodes = specs["RayCluster/ember/gpu"]
    assert not {name for name in env_names(gpu_nodes) if name.startswith(("EMBER_", "AWS_"))}, (
        "GPU nodes take Ember's configuration from the pool, not from their own environment"
    )


def test_the_scaling_doc_names_every_variable_of_the_manifest() -> None:
    doc = (ROOT / "docs" / "jobs.md").read_text()
    names = set().union(*(env_names(pod) for pod in pod_specs().values()))
    missing = sorted(name for name in names if name not in doc)
    assert missing == [], f"variables of deploy/kuberay/ember.yaml missing from docs/jobs.md: {missing}"
