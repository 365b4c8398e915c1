"""A CLIP tokenizer made in code: byte-level characters, optional whole words, no download."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


@lru_cache(maxsize=1)
def byte_characters() -> tuple[str, ...]:
    """The 256 printable characters that byte-level BPE uses for the bytes 0–255 (GPT-2's table)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table: dict[int, int] = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = 256 + extra
            extra += 1
    return tuple(chr(table[b]) for b in range(256))


def _word_pieces(word: str) -> list[str]:
    """A word's byte-level characters, the last one carrying the end-of-word mark."""
    table = byte_characters()
    chars = [table[b] for b in word.lower().encode("utf-8")]
    chars[-1] = chars[-1] + "</w>"
    return chars


def vocabulary_and_merges(words: Iterable[str] | None = None) -> tuple[dict[str, int], list[str]]:
    """The vocab (characters, their `</w>` forms, optional words, special tokens) and the merges words need.

    A word can only come out of BPE as one token when merges build it, so each whole word adds the merges
    (and intermediate pieces) that join its characters left to right; without words the merges are empty.
    """
    vocab: dict[str, int] = {}
    for char in byte_characters():
        vocab[char] = len(vocab)
    for char in byte_characters():
        vocab[char + "</w>"] = len(vocab)
    merges: list[str] = []
    seen_merges: set[str] = set()
    for word in sorted({w.strip().lower() for w in (words or []) if w.strip()}):
        if any(c.isspace() for c in word):
            raise ValueError(f"a tokenizer word must be a single word, got {word!r}")
        pieces = _word_pieces(word)
        current = pieces[0]
        for piece in pieces[1:]:
            merge = f"{current} {piece}"
            current = current + piece
            if merge not in seen_merges:
                seen_merges.add(merge)
                merges.append(merge)
            if current not in vocab:
                vocab[current] = len(vocab)
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    return vocab, merges


def build_clip_tokenizer(
    directory: Path, words: Iterable[str] | None = None, model_max_length: int = 77
) -> CLIPTokenizer:
    """Write vocab.json and merges.txt into `directory` and load a CLIPTokenizer from them.

    The files are written every time (the same words give the same files), so a directory made by this
    function can also be loaded later with `CLIPTokenizer.from_pretrained(directory)`.
    """
    from transformers import CLIPTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab, merges = vocabulary_and_merges(words)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
    tokenizer: CLIPTokenizer = CLIPTokenizer.from_pretrained(str(directory), model_max_length=model_max_length)
    tokenizer.save_pretrained(str(directory))
    return tokenizer
