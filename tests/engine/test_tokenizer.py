"""The tokenizer made in code: byte-level characters, whole words on request, CLIP's special tokens."""

from __future__ import annotations

from pathlib import Path

from ember.engine.tokenizer import BOS, EOS, build_clip_tokenizer


def test_text_is_split_into_characters_with_end_of_word_marks(tmp_path: Path) -> None:
    tokenizer = build_clip_tokenizer(tmp_path)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("a cat").input_ids)
    assert tokens == [BOS, "a</w>", "c", "a", "t</w>", EOS]


def test_requested_words_become_single_tokens(tmp_path: Path) -> None:
    tokenizer = build_clip_tokenizer(tmp_path, words=["zorb"])
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("a zorb zorbs").input_ids)
    assert tokens[1:3] == ["a</w>", "zorb</w>"]
    assert "zorbs</w>" not in tokens


def test_sequences_pad_and_truncate_to_model_max_length(tmp_path: Path) -> None:
    tokenizer = build_clip_tokenizer(tmp_path, model_max_length=77)
    encoded = tokenizer("x " * 200, padding="max_length", max_length=tokenizer.model_max_length, truncation=True)
    assert len(encoded.input_ids) == 77


def test_non_ascii_text_is_encoded_without_unknown_tokens(tmp_path: Path) -> None:
    tokenizer = build_clip_tokenizer(tmp_path)
    ids = tokenizer("crème brûlée 🍮").input_ids[1:-1]
    assert tokenizer.unk_token_id not in ids


def test_the_directory_reloads_as_the_same_tokenizer(tmp_path: Path) -> None:
    from transformers import CLIPTokenizer

    built = build_clip_tokenizer(tmp_path, words=["zorb"])
    reloaded = CLIPTokenizer.from_pretrained(str(tmp_path))
    assert reloaded("a zorb on red").input_ids == built("a zorb on red").input_ids
    assert reloaded.model_max_length == 77


def test_words_that_share_letter_pairs_each_stay_one_token(tmp_path: Path) -> None:
    # "ring" joins "r i" before "triangle" would join "t r": every word must still come out whole.
    words = ["ring", "triangle", "green", "gray", "red", "background", "cross", "zorb", "star", "style", "sepia"]
    tokenizer = build_clip_tokenizer(tmp_path, words=words)
    for word in words:
        assert tokenizer.tokenize(word) == [f"{word}</w>"]
