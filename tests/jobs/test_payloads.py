"""The job payloads' stored form: what the submission side writes is what the worker and the views read, and rows
written before the payloads were typed (plain camelCase dicts, no version marker) still load."""

from __future__ import annotations

import pytest

from ember.jobs.payloads import (
    PAYLOAD_KEY,
    GeneratedImage,
    GenerationJob,
    GenerationOutcome,
    ImageRef,
    LoraChoice,
    TrainingImageRef,
    TrainingJob,
    TrainingOutcome,
    TrainingRecord,
    UnknownPayloadVersion,
    stored_affinity,
)

# A generation row as the submission side wrote it before the payloads were typed: one `lora`, no marker.
OLD_GENERATION_ROW = {
    "modelVersion": "image3_custom",
    "baseModel": "tiny",
    "prompt": "a zorb on a beach",
    "mimetype": "image/png",
    "seeds": [3, 9],
    "width": 1024,
    "height": 1024,
    "stylePresets": ["bw"],
    "styleStrength": 60,
    "styleImage": {"blobKey": "uploads/abc", "mimetype": "image/png"},
    "lora": {"key": "m:v1", "blobKey": "custom-models/m/versions/1/lora.safetensors", "weight": 1.0},
    "customModels": ["urn:aaid:sc:VA6C2:m"],
    "warnings": [{"code": "concept_missing", "message": "…"}],
}
OLD_TRAINING_ROW = {
    "customModelId": "5b1c1f9e-8a9e-4f0e-9d6c-2f8e6b1a7c3d",
    "baseModel": "tiny",
    "baseModelVersion": "1",
    "mode": "subject",
    "concept": "zorb",
    "samplePrompt": "a zorb on a beach",
    "images": [{"id": "i1", "blobKey": "custom-models/m/images/i1.png", "caption": "zorb, a toy"}],
    "config": {"steps": 50, "learning_rate": 0.001},
    "version": 2,
    "loraBlobKey": "custom-models/m/versions/2/lora.safetensors",
}


def test_a_generation_row_written_before_the_payloads_were_typed_still_loads() -> None:
    job = GenerationJob.from_json(OLD_GENERATION_ROW)
    assert (job.base_model, job.prompt, job.seeds) == ("tiny", "a zorb on a beach", (3, 9))
    assert (job.width, job.height) == (1024, 1024)
    assert job.loras == (LoraChoice("m:v1", "custom-models/m/versions/1/lora.safetensors", 1.0),)
    assert job.style_image == ImageRef(blob_key="uploads/abc", mimetype="image/png")
    assert (job.style_presets, job.style_strength, job.structure_image) == (("bw",), 60, None)
    assert job.affinity == "m:v1" == stored_affinity(OLD_GENERATION_ROW)


def test_a_generation_job_round_trips_through_its_stored_form_with_a_version_marker() -> None:
    job = GenerationJob.from_json(OLD_GENERATION_ROW)
    stored = job.to_json()
    assert stored[PAYLOAD_KEY] == 1
    assert stored["loras"] == [OLD_GENERATION_ROW["lora"]] and "lora" not in stored
    assert GenerationJob.from_json(stored) == job


def test_weighted_models_route_as_one_combination() -> None:
    loras = (LoraChoice("a:v1", "ka", 0.5), LoraChoice("b:v2", "kb", 1.0))
    job = GenerationJob("image3", "tiny", "p", "image/png", (1,), 64, 64, loras=loras, custom_models=("a", "b"))
    assert job.affinity == "a:v1@0.5+b:v2@1" == stored_affinity(job.to_json())
    assert stored_affinity(OLD_TRAINING_ROW) is None


def test_a_training_row_written_before_the_payloads_were_typed_still_loads_and_round_trips() -> None:
    job = TrainingJob.from_json(OLD_TRAINING_ROW)
    assert job.images == (TrainingImageRef("i1", "custom-models/m/images/i1.png", "zorb, a toy"),)
    assert (job.version, str(job.model_id)) == (2, job.custom_model_id)
    assert job.config == {"steps": 50, "learning_rate": 0.001}
    assert job.to_json() == {**OLD_TRAINING_ROW, PAYLOAD_KEY: 1}
    assert TrainingJob.from_json(job.to_json()) == job


def test_outcomes_read_back_what_the_worker_wrote() -> None:
    outcome = GenerationOutcome(64, 48, (GeneratedImage(3, "outputs/j/0-3.png", "image/png"),), content_class="art")
    assert GenerationOutcome.from_json(outcome.to_json()) == outcome
    record = TrainingRecord(total_steps=10, step=10, loss=0.25, losses=[0.5, 0.25], samples=[{"step": 5, "key": "k"}])
    stored = TrainingOutcome("urn:aaid:sc:VA6C2:m", 2, 1234, record).to_json()
    read = TrainingOutcome.from_json(stored)
    assert (read.custom_model_id, read.version, read.size) == ("urn:aaid:sc:VA6C2:m", 2, 1234)
    assert read.training.curve == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    assert read.training.samples == [{"step": 5, "key": "k"}]


def test_a_row_from_a_newer_payload_version_is_refused() -> None:
    with pytest.raises(UnknownPayloadVersion):
        GenerationJob.from_json({**OLD_GENERATION_ROW, PAYLOAD_KEY: 2})
    with pytest.raises(UnknownPayloadVersion):
        TrainingJob.from_json({**OLD_TRAINING_ROW, PAYLOAD_KEY: 2})
