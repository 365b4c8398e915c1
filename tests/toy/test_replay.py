"""Replay of the toy world beside a subject's images, asked for by the `toy` presets, as the API's jobs train."""

from __future__ import annotations

from pathlib import Path

from ember.engine.registry import get_base_model
from ember.engine.toy.world import HELD_OUT_PAIRS, NEW_SHAPE, free_colour_pictures, replay_examples
from ember.engine.train import base_world_examples, preset_for, train_lora
from ember.engine.types import TrainingExample


def test_replay_pictures_are_captioned_scenes_of_pretraining_pairs_only() -> None:
    examples = replay_examples(40, seed=3)
    assert len(examples) == 40
    for example in examples:
        words = example.caption.split()
        assert words[0] == "a" and words[3:5] == ["on", "a"]
        assert (words[2], words[1]) not in HELD_OUT_PAIRS and NEW_SHAPE not in words
    assert [e.caption for e in replay_examples(40, seed=3)] == [e.caption for e in examples]


def test_only_a_base_model_with_a_world_of_its_own_replays_it() -> None:
    assert len(base_world_examples(get_base_model("toy"), 5, seed=0)) == 5
    assert base_world_examples(get_base_model("toy"), 0, seed=0) == []
    assert base_world_examples(get_base_model("tiny"), 5, seed=0) == []


def test_the_toy_subject_preset_replays_its_world_and_the_style_preset_does_not() -> None:
    assert preset_for("toy", "subject").replay_examples > 0
    assert preset_for("toy", "style").replay_examples == 0


def test_the_preset_replay_is_what_training_mixes_in(toy_model_dir: Path, tmp_path: Path) -> None:
    from ember.engine.toy.world import random_scenes, render

    stars = [TrainingExample(render(s), "a zorb on a gray background")
             for s in random_scenes(1, 4, pairs=((NEW_SHAPE, "yellow"),))]
    config = preset_for("toy", "subject").with_overrides(steps=2, batch_size=2, checkpoint_every=0, sample_every=0)

    def losses(name: str, replay_count: int, replay: list[TrainingExample] | None = None) -> list[float]:
        return train_lora("toy", stars, config.with_overrides(replay_examples=replay_count), tmp_path / name,
                          model_dir=toy_model_dir, mode="subject", concept="zorb", replay=replay).losses

    from_preset = losses("preset", config.replay_examples)
    assert from_preset == losses(
        "explicit", config.replay_examples, replay=replay_examples(config.replay_examples, config.seed)
    )
    assert from_preset != losses("none", 0)

def test_free_colour_pictures_use_colours_outside_the_world_palette() -> None:
    import numpy as np

    from ember.engine.toy.world import BACKGROUNDS, COLOURS

    palette = np.array([*COLOURS.values(), *BACKGROUNDS.values()], dtype=np.float32)
    pictures = list(free_colour_pictures(seed=0, count=20))
    corners = np.array([np.asarray(p, dtype=np.float32)[0, 0] for p in pictures])
    distance = np.linalg.norm(corners[:, None, :] - palette[None, :, :], axis=2).min(axis=1)
    assert (distance > 30).mean() > 0.8
    assert [np.asarray(p).tobytes() for p in free_colour_pictures(seed=0, count=3)] == [
        np.asarray(p).tobytes() for p in pictures[:3]
    ]
