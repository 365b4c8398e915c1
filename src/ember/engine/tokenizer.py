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


def apply_merges(pieces: list[str], merges: list[str]) -> list[str]:
    """Byte-pair encoding of one word's pieces: the lowest-ranked adjacent pair is joined first, as CLIP does."""
    ranks = {tuple(merge.split(" ")): rank for rank, merge in enumerate(merges)}
    pieces = list(pieces)
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(pieces, pieces[1:], strict=False))]
        ranked = [(rank, i) for rank, i in pairs if rank is not None]
        if not ranked:
            break
        best = min(ranked)[0]
        joined: list[str] = []
        i = 0
        while i < len(pieces):
            if i + 1 < len(pieces) and ranks.get((pieces[i], pieces[i + 1])) == best:
                joined.append(pieces[i] + pieces[i + 1])
                i += 2
            else:
                joined.append(pieces[i])
                i += 1
        pieces = joined
    return pieces


def vocabulary_and_merges(words: Iterable[str] | None = None) -> tuple[dict[str, int], list[str]]:
    """The vocab (characters, their `</w>` forms, optional words, special tokens) and the merges words need.

    A word can only come out of BPE as one token when merges build it. Merges made for one word can split
    another one differently (for "ring", "r i" comes before "triangle"'s "t r"), so each word's pieces are
    encoded with the merges so far and the pair that is left is joined by a new, later merge, until every
    word is one token; without words the merges are empty.
    """
    vocab: dict[str, int] = {}
    for char in byte_characters():
        vocab[char] = len(vocab)
    for char in byte_characters():
        vocab[char + "</w>"] = len(vocab)
    merges: list[str] = []
    chosen = sorted({w.strip().lower() for w in (words or []) if w.strip()})
    for word in chosen:
        if any(c.isspace() for c in word):
            raise ValueError(f"a tokenizer word must be a single word, got {word!r}")
    changed = True
    while changed:
        changed = False
        for word in chosen:
            pieces = apply_merges(_word_pieces(word), merges)
            while len(pieces) > 1:
                merges.append(f"{pieces[0]} {pieces[1]}")
                vocab.setdefault(pieces[0] + pieces[1], len(vocab))
                changed = True
                pieces = apply_merges(_word_pieces(word), merges)
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
