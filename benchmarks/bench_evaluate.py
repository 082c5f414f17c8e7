"""Evaluation cost: every non-embedding metric of ``kgsynth evaluate`` at 100k synthetic
sentences against 20k reference sentences, beside the naive ways, and embedding throughput.

Sentences come from a seeded clinical grammar over the curated graph's symptom vocabulary
(every ``Symptom`` name and synonym in kg/seed/*.yaml, slots rendered), so they are varied and
reproducible without a network; 1% of the reference sentences are planted copies of synthetic
ones (the privacy figures have something to find).

1. Every non-embedding metric on the full sets (target: under 2 minutes together): diversity
   (distinct-1/2/3, MATTR, self-BLEU on a fixed sample of ``--bleu-sample``), the longest
   shared n-gram of each sentence with the reference (galloping over hashed n-gram indexes),
   MinHash near-duplicates within the set and against the reference, and the graph alignment
   statistics (chi-square, Jensen-Shannon) on tallies of the same size.
2. The naive ways, measured on a sample and extrapolated: self-BLEU over all pairs (each
   sentence scored by sacrebleu against every other: quadratic) and pairwise n-gram overlap
   (the longest common token run of each synthetic sentence with every reference sentence by
   dynamic programming). The ratio to the figures of 1 is printed.
3. Embedding throughput of the default model (packaged all-MiniLM-L6-v2) on CPU, and on the
   GPU when torch sees one ("not available" otherwise).

Run: ``python benchmarks/bench_evaluate.py`` (``--synthetic``/``--reference`` to resize).
Ends with ``BENCH <name> <value> <unit>`` lines.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from engine.evaluate.alignment import chi_square, js_divergence
from engine.evaluate.diversity import diversity
from engine.evaluate.privacy import near_duplicates, passages
from engine.gate.text import tokens

SEED_DIR = Path(__file__).resolve().parents[1] / "kg" / "seed"
SLOT = re.compile(r"\{[a-z_]+\}")

SUBJECTS = (
    "The patient", "She", "He", "Her daughter", "His wife", "The family", "Her son",
    "The carer", "His partner", "The nursing staff",
)  # fmt: skip
VERBS = (
    "reports", "describes", "notes", "mentions", "has noticed", "complains of", "denies",
    "has had", "admits to", "is worried about", "was seen for", "presents with",
)  # fmt: skip
TIMES = (
    "for two weeks", "over the past month", "since the spring", "for several months",
    "since the last visit", "for about a year", "on most days", "at night", "in the mornings",
    "after meals", "intermittently", "since starting the new medication",
)  # fmt: skip
TAILS = (
    "", "", "", "which is getting worse", "without clear triggers", "and it limits daily tasks",
    "despite treatment", "with some improvement", "that started gradually",
    "and sleep is affected", "which worries the family", "but no falls",
)  # fmt: skip
OPENERS = ("", "", "", "Today ", "At review, ", "On examination, ", "By history, ", "Since then, ")
SLOTS = {"{possessive}": "her", "{subject}": "she", "{object}": "her", "{reflexive}": "herself"}


def vocabulary() -> list[str]:
    """Every Symptom name and synonym of the curated seed, slots filled for one persona."""
    names: set[str] = set()
    for path in sorted(SEED_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for symptom in (doc.get("nodes") or {}).get("Symptom") or []:
            for form in [symptom["name"], *(symptom.get("synonyms") or [])]:
                names.add(SLOT.sub(lambda m: SLOTS.get(m.group(0), "the patient"), form))
    return sorted(names)


def sentences(count: int, seed: int, words: list[str]) -> list[str]:
    """``count`` sentences of the grammar, the same for the same seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        symptoms = rng.sample(words, rng.choice((1, 1, 2, 2, 3)))
        listed = (
            symptoms[0] if len(symptoms) == 1 else ", ".join(symptoms[:-1]) + " and " + symptoms[-1]
        )
        parts = [
            rng.choice(OPENERS) + rng.choice(SUBJECTS),
            rng.choice(VERBS),
            listed,
            rng.choice(TIMES),
        ]
        tail = rng.choice(TAILS)
        out.append(" ".join(parts) + (f", {tail}" if tail else "") + ".")
    return out


def timed(label: str, fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - start
    print(f"  {label:<46} {elapsed:8.2f} s")
    return elapsed, value


def naive_self_bleu(texts: list[str]) -> float:
    """Mean sacrebleu sentence BLEU of each text against all the others (the quadratic way)."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(effective_order=True)
    scores = [bleu.sentence_score(t, texts[:i] + texts[i + 1 :]).score for i, t in enumerate(texts)]
    return sum(scores) / len(scores)


def longest_common_run(a: list[str], b: list[str]) -> int:
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def naive_overlap(synthetic: list[str], reference: list[str]) -> list[int]:
    """Longest shared token run of each synthetic text with any reference text, pair by pair."""
    ref = [tokens(t) for t in reference]
    return [max(longest_common_run(tokens(s), r) for r in ref) for s in synthetic]


def alignment_stats(rng: random.Random, n: int) -> None:
    """Chi-square and JS on tallies of ``n`` records (what alignment adds to the audit)."""
    values = [f"v{i}" for i in range(8)]
    shares = {v: rng.random() for v in values}
    counts = {v: 0 for v in values}
    for v in rng.choices(values, weights=list(shares.values()), k=n):
        counts[v] += 1
    chi_square(counts, shares)
    js_divergence(counts, shares)


def embedding_throughput(texts: list[str]) -> tuple[float, float | None]:
    """Sentences per second of the default model on CPU, and on the GPU when there is one."""
    import torch

    from engine.evaluate.embed import Embedder

    embedder = Embedder()
    embedder.model.to("cpu")
    embedder.encode(texts[:64])  # warm up
    start = time.perf_counter()
    embedder.encode(texts)
    cpu = len(texts) / (time.perf_counter() - start)
    if not torch.cuda.is_available():
        return cpu, None
    embedder.model.to("cuda")
    embedder.batch_size = 256
    embedder.encode(texts[:256])
    many = texts * 10
    start = time.perf_counter()
    embedder.encode(many)
    torch.cuda.synchronize()
    return cpu, len(many) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--reference", type=int, default=20_000)
    parser.add_argument(
        "--bleu-sample", type=int, default=100, help="self-BLEU sample (as evaluate)"
    )
    parser.add_argument(
        "--naive-bleu", type=int, default=100, help="sentences in the naive self-BLEU"
    )
    parser.add_argument(
        "--naive-overlap", type=int, default=4, help="synthetic sentences, naive overlap"
    )
    parser.add_argument(
        "--naive-overlap-ref", type=int, default=2000, help="reference sentences, naive overlap"
    )
    parser.add_argument("--embed", type=int, default=2000, help="sentences embedded on CPU")
    parser.add_argument("--ngram", type=int, default=12)
    args = parser.parse_args()

    words = vocabulary()
    synthetic = sentences(args.synthetic, 1, words)
    rng = random.Random(2)
    reference = sentences(args.reference, 2, words)
    planted = rng.sample(range(args.reference), args.reference // 100)
    for i in planted:
        reference[i] = synthetic[rng.randrange(args.synthetic)]
    toks = sum(len(tokens(t)) for t in synthetic)
    print(
        f"{len(synthetic)} synthetic sentences ({toks} tokens, {toks / len(synthetic):.1f} per "
        f"sentence) from {len(words)} graph symptom phrases; {len(reference)} reference "
        f"sentences ({len(planted)} planted copies)"
    )

    print("1. every non-embedding metric, full sets")
    t_div, div = timed("diversity (distinct-n, MATTR, self-BLEU sample)",
                       lambda: diversity(synthetic, sample=args.bleu_sample, seed=0))  # fmt: skip
    corpus = [(str(i), t) for i, t in enumerate(reference)]
    t_pass, shared = timed(
        "longest shared n-gram vs reference", lambda: passages(synthetic, corpus, args.ngram)
    )
    t_dup, dups = timed("MinHash near-duplicates (within, vs reference)",
                        lambda: near_duplicates(synthetic, reference))  # fmt: skip
    t_align, _ = timed(
        "alignment chi-square + JS", lambda: alignment_stats(random.Random(3), args.synthetic)
    )
    total = t_div + t_pass + t_dup + t_align
    print(f"  {'total':<46} {total:8.2f} s  (target < 120 s)")
    print(
        f"  distinct-2 {div['distinct_2']}, self-BLEU {div['self_bleu']['value']} "
        f"(sample {div['self_bleu']['sample']}), longest shared max {shared['longest_max']}, "
        f"share >= {args.ngram} {shared['share_at_threshold']}, near-dup within "
        f"{dups['within_rate']}, vs reference {dups['reference_rate']}"
    )

    print("2. the naive ways, on a sample, extrapolated")
    m = min(args.naive_bleu, args.synthetic)
    t_nb, _ = timed(
        f"self-BLEU over all pairs, {m} sentences", lambda: naive_self_bleu(synthetic[:m])
    )
    full_bleu = t_nb * (args.synthetic / m) ** 2
    a, b = min(args.naive_overlap, args.synthetic), min(args.naive_overlap_ref, args.reference)
    t_no, _ = timed(
        f"pairwise n-gram overlap, {a} x {b}", lambda: naive_overlap(synthetic[:a], reference[:b])
    )
    full_overlap = t_no * (args.synthetic / a) * (args.reference / b)
    print(
        f"  self-BLEU all pairs at {args.synthetic}: {full_bleu:,.0f} s extrapolated vs "
        f"{t_div:.1f} s (diversity, fixed sample): x{full_bleu / t_div:,.0f}"
    )
    print(
        f"  pairwise overlap at {args.synthetic} x {args.reference}: {full_overlap:,.0f} s "
        f"extrapolated vs {t_pass:.1f} s (hashed n-gram indexes): x{full_overlap / t_pass:,.0f}"
    )

    print("3. embedding throughput (packaged all-MiniLM-L6-v2)")
    cpu, gpu = embedding_throughput(synthetic[: args.embed])
    print(f"  CPU: {cpu:,.0f} sentences/s ({args.embed} sentences)")
    shown = "not available (torch.cuda.is_available() is False)"
    print(f"  GPU: {shown if gpu is None else f'{gpu:,.0f} sentences/s'}")

    print(f"BENCH evaluate_nonembedding_total {total:.2f} s")
    print(f"BENCH evaluate_diversity {t_div:.2f} s")
    print(f"BENCH evaluate_shared_ngrams {t_pass:.2f} s")
    print(f"BENCH evaluate_near_duplicates {t_dup:.2f} s")
    print(f"BENCH evaluate_naive_self_bleu_extrapolated {full_bleu:.0f} s")
    print(f"BENCH evaluate_naive_overlap_extrapolated {full_overlap:.0f} s")
    print(f"BENCH evaluate_self_bleu_speedup {full_bleu / t_div:.0f} x")
    print(f"BENCH evaluate_overlap_speedup {full_overlap / t_pass:.0f} x")
    print(f"BENCH evaluate_embed_cpu {cpu:.0f} sentences/s")
    if gpu is not None:
        print(f"BENCH evaluate_embed_gpu {gpu:.0f} sentences/s")


if __name__ == "__main__":
    main()
