"""Lexical diversity: distinct-n, MATTR and self-BLEU (docs/evaluation.md has the formulas).

Tokens are the privacy gate's (``engine.gate.text.tokens``: lower-cased word runs), so every
axis counts words the same way; distinct n-grams are counted by their 64-bit hashes.
Self-BLEU is quadratic and grows with the set, so it is taken on a fixed-size sample drawn
with a fixed seed, and the size is reported with it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.evaluate.packed import Packed
from engine.gate.text import TokenHasher, tokens

#: tokens per MATTR window
MATTR_WINDOW = 50
#: notes in the self-BLEU sample
SELF_BLEU_SAMPLE = 100


def distinct_n(docs: Sequence[Sequence[str]], n: int) -> float:
    """Distinct n-grams over all n-grams of the set (0 when the set has none)."""
    hasher = TokenHasher()
    return _distinct(Packed([hasher.hashes(list(d)) for d in docs]), n)


def _distinct(packed: Packed, n: int) -> float:
    """distinct-n from 64-bit n-gram hashes of every note, packed (one numpy pass)."""
    grams, inside = packed.windows(n)
    total = int(np.count_nonzero(inside))
    return len(np.unique(grams[inside])) / total if total else 0.0


def mattr(toks: Sequence[str], window: int = MATTR_WINDOW) -> float:
    """Moving-average type-token ratio: mean TTR over every ``window``-token window
    (the plain TTR when the text is shorter; 0 for no tokens)."""
    if not toks:
        return 0.0
    if len(toks) <= window:
        return len(set(toks)) / len(toks)
    counts: dict[str, int] = {}
    for t in toks[:window]:
        counts[t] = counts.get(t, 0) + 1
    total = len(counts)
    for i in range(window, len(toks)):
        out, new = toks[i - window], toks[i]
        counts[out] -= 1
        if not counts[out]:
            del counts[out]
        counts[new] = counts.get(new, 0) + 1
        total += len(counts)
    return total / ((len(toks) - window + 1) * window)


def self_bleu(
    texts: Sequence[str], sample: int = SELF_BLEU_SAMPLE, seed: int = 0
) -> dict[str, Any]:
    """Mean sentence BLEU (sacrebleu, 0-100, ``effective_order``) of each sampled note against
    the other sampled notes as references; ``None`` below two notes.

    sacrebleu's own tokeniser, n-gram counts and score; what it would redo per note (merging
    the other notes' counts) is done once: each n-gram keeps its two largest counts and the
    note holding the largest, so "the largest among the others" is one lookup."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    rng = random.Random(seed)
    picked = list(texts) if len(texts) <= sample else rng.sample(list(texts), sample)
    if len(picked) < 2:
        return {"value": None, "sample": len(picked), "seed": seed}
    bleu = BLEU(effective_order=True)
    order = bleu.max_ngram_order
    counts, lengths = [], []
    for text in picked:
        grams, length = extract_all_word_ngrams(bleu._preprocess_segment(text), 1, order)
        counts.append(grams)
        lengths.append(length)
    top: dict[tuple[str, ...], tuple[int, int, int]] = {}  # gram -> (largest, its note, next)
    for i, grams in enumerate(counts):
        for gram, c in grams.items():
            best, owner, second = top.get(gram, (0, -1, 0))
            if c > best:
                top[gram] = (c, i, best)
            elif c > second:
                top[gram] = (best, owner, c)
    scores = []
    for i, grams in enumerate(counts):
        correct, total = [0] * order, [0] * order
        for gram, c in grams.items():
            best, owner, second = top[gram]
            total[len(gram) - 1] += c
            correct[len(gram) - 1] += min(c, second if owner == i else best)
        ref_len = bleu._get_closest_ref_len(lengths[i], lengths[:i] + lengths[i + 1 :])
        stats = [lengths[i], ref_len, *correct, *total]
        scores.append(bleu._compute_score_from_stats(stats).score)
    return {"value": round(sum(scores) / len(scores), 4), "sample": len(picked), "seed": seed}


def diversity(
    texts: Sequence[str], *, sample: int = SELF_BLEU_SAMPLE, seed: int = 0
) -> dict[str, Any]:
    """The diversity figures of one set of notes."""
    docs = [tokens(t) for t in texts]
    per_note = [mattr(d) for d in docs]
    hasher = TokenHasher()
    packed = Packed([hasher.hashes(d) for d in docs])
    return {
        "notes": len(texts),
        "tokens": sum(map(len, docs)),
        "distinct_1": round(_distinct(packed, 1), 4),
        "distinct_2": round(_distinct(packed, 2), 4),
        "distinct_3": round(_distinct(packed, 3), 4),
        "mattr": round(sum(per_note) / len(per_note), 4) if per_note else 0.0,
        "mattr_window": MATTR_WINDOW,
        "self_bleu": self_bleu(texts, sample, seed),
    }
