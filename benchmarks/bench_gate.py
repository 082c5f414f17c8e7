"""Benchmark: the gate on 100k generated notes against a 20k-note reference corpus.

Notes are synthetic SOAP notes (phrase banks, symptom keywords, vitals, relatives, drawn per
note), the reference corpus is written in another style; planted among the generated notes:
copies of reference passages (privacy), near-copies of earlier notes with a word or two
changed (near-duplicate) and diagnosis mentions in pre-diagnosis notes (leakage). Every note
goes through the gate exactly as the runner calls it (``GateRun.screen``, then ``sketch``,
``near_duplicate`` and ``accept``), one note at a time, in input order.

The naive way is measured in the same run on a sample and extrapolated: each note's n-gram
set intersected with every reference note's (pairwise), and exact shingle-set Jaccard
against every earlier accepted note.

Run: ``python benchmarks/bench_gate.py [--notes 100000] [--reference 20000]``. Ends with
``BENCH <name> <value> <unit>`` lines.
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import time
from collections import Counter

from engine.gate import Gate, GateConfig, ReferenceDoc
from engine.spec import GenerationSpec, WindowRef

SYMPTOMS = [
    "forgets recent conversations",
    "repeats the same questions",
    "misplaces keys",
    "missed bills",
    "gets lost on familiar routes",
    "trouble finding words",
    "difficulty cooking",
    "poor sleep",
    "low mood",
    "apathy",
    "irritability",
    "wandering at night",
    "missed medications",
    "trouble with the remote",
    "stopped driving",
    "confused about dates",
    "relies on lists",
    "withdrawn from friends",
    "anxious when alone",
    "word-finding pauses",
    "difficulty with finances",
    "falls at home",
    "weight loss",
    "poor appetite",
    "suspicious of neighbours",
    "hallucinations at dusk",
    "trouble dressing",
    "incontinence",
    "slowed walking",
    "loses track of conversations",
    "difficulty using the phone",
    "forgets names of grandchildren",
    "leaves the tap running",
    "repeats stories",
    "cannot follow recipes",
    "puts items in odd places",
    "daytime sleepiness",
    "",
]
RELATIVES = ["daughter", "son", "wife", "husband", "niece", "neighbour", "carer", "partner"]
OPENERS = [
    "presents for review",
    "is seen in the memory clinic",
    "attends with {rel}",
    "comes in accompanied by {poss} {rel}",
    "is reviewed at home",
    "attends a scheduled follow-up",
    "is seen after a referral from the GP",
    "returns for results",
]
SINCE = ["over the past {n} months", "for about {n} months", "since last winter",
         "gradually over {n} months", "in the last {n} weeks", "for more than a year"]  # fmt: skip
EXAMS = [
    "Alert, cooperative, in no distress.",
    "Pleasant and engaged; speech fluent.",
    "Oriented to person, not to date.",
    "Mildly anxious; answers prompted by {rel}.",
    "Neurological exam non-focal.",
    "Gait slightly slowed, Romberg negative.",
]
ASSESS = [
    "Cognitive complaints with functional impact.",
    "Progressive decline reported by family.",
    "Findings warrant further evaluation.",
    "Symptoms suggest a neurocognitive process.",
    "Mood and cognition both affected.",
]
HISTORY = [
    "Past history of hypertension, on amlodipine {n} mg daily.",
    "Type 2 diabetes, last HbA1c {n} mmol/mol.",
    "Ex-smoker, stopped {n} years ago.",
    "Drinks about {n} units of alcohol a week.",
    "Lives with {poss} {rel} in a two-storey house.",
    "Lives alone; {rel} visits most days.",
    "Retired from work as a {job} {n} years ago.",
    "Hearing reduced on the left; wears reading glasses.",
    "No recent infections or hospital admissions.",
    "Had a fall in the garden {n} weeks ago without injury.",
    "Takes aspirin and a statin; no new medicines.",
    "Mother had memory problems in her eighties.",
    "Sleeps {n} hours a night with frequent waking.",
    "Still manages personal care with prompting.",
    "Stopped attending the {club} club this year.",
]
JOBS = ["teacher", "bus driver", "nurse", "builder", "accountant", "farmer", "shop owner"]
CLUBS = ["bowls", "choir", "bridge", "walking", "book", "gardening"]
PLANS = [
    "Bloods including B12 and TSH.",
    "MRI brain requested.",
    "Refer to memory clinic.",
    "Review driving safety.",
    "Carer support leaflet given.",
    "Occupational therapy assessment.",
    "Medication review with pharmacist.",
    "Follow up in {n} weeks.",
    "Falls assessment arranged.",
    "Discuss advance care planning.",
]
REF_LINES = [
    "History obtained from {rel} who is the main carer.",
    "Complains chiefly of {a} and {b}.",
    "Background of hypertension and type 2 diabetes.",
    "Takes amlodipine {n} mg and metformin.",
    "On examination BP {s}/{d}, pulse {h} irregular.",
    "Addenbrooke score {m} out of 100.",
    "CT head shows small vessel change only.",
    "Impression: mixed picture, monitor closely.",
    "Letter copied to {rel} with consent.",
    "Safeguarding concerns discussed; none raised.",
]
DIAGNOSIS = [
    "Alzheimer's disease",
    "Alzheimer disease",
    "G30.9",
    "AD",
    "probable Alzheimer's disease",
]


def generated_note(rng: random.Random) -> str:
    rel = rng.choice(RELATIVES)
    poss = rng.choice(["her", "his"])
    fill = {
        "rel": rel,
        "poss": poss,
        "n": rng.randint(2, 30),
        "job": rng.choice(JOBS),
        "club": rng.choice(CLUBS),
    }
    kws = rng.sample(SYMPTOMS, rng.randint(4, 9))
    subjective = (
        f"Subjective: {rng.randint(58, 94)}-year-old {rng.choice(['woman', 'man'])} "
        f"{rng.choice(OPENERS).format(**fill)}. {rel.capitalize()} reports {', '.join(kws[:-1])} "
        f"and {kws[-1]} {rng.choice(SINCE).format(**fill)}. "
        + " ".join(h.format(**fill) for h in rng.sample(HISTORY, rng.randint(4, 8)))
    )
    objective = (
        f"Objective: BP {rng.randint(105, 175)}/{rng.randint(60, 98)}, HR {rng.randint(52, 104)}, "
        f"MMSE {rng.randint(14, 29)}/30. {rng.choice(EXAMS).format(**fill)}"
    )
    assessment = f"Assessment: {rng.choice(ASSESS)}"
    plan = "Plan: " + " ".join(p.format(**fill) for p in rng.sample(PLANS, rng.randint(2, 4)))
    return "\n".join((subjective, objective, assessment, plan))


def reference_note(rng: random.Random) -> str:
    lines = []
    for line in rng.sample(REF_LINES, 9):
        a, b = rng.sample(SYMPTOMS, 2)
        lines.append(
            line.format(
                rel=rng.choice(RELATIVES),
                a=a,
                b=b,
                n=rng.randint(2, 10),
                s=rng.randint(100, 180),
                d=rng.randint(60, 100),
                h=rng.randint(50, 110),
                m=rng.randint(40, 99),
            )
        )
    return f"Clinic letter {rng.randrange(10**6)}. " + " ".join(lines)


def spec(diagnosed: bool) -> GenerationSpec:
    return GenerationSpec(
        recipe="dualalign",
        run_seed=0,
        record_index=0,
        record_id="bench",
        record_seed=0,
        icd_code="G30.9",
        icd_title="Alzheimer's disease, unspecified",
        disease_id="KGS:disease/alzheimers-disease",
        disease="Alzheimer's disease",
        window=WindowRef(
            id="KGS:win/w",
            name="at diagnosis" if diagnosed else "year before diagnosis",
            order=2,
            start_months=0 if diagnosed else -12,
            end_months=6 if diagnosed else 0,
            phrase="",
            diagnosed=diagnosed,
        ),
        template_id="dualalign",
        template_hash="0",
        kg_hash="0",
    )


Built = tuple[list[str], list[str], list[bool], dict[int, str]]


def build(n_notes: int, n_ref: int, seed: int) -> Built:
    """Notes, reference texts, each note's window (pre-diagnosis?) and the planted items."""
    rng = random.Random(seed)
    refs = [reference_note(rng) for _ in range(n_ref)]
    notes: list[str] = []
    pre: list[bool] = []
    planted: dict[int, str] = {}
    for i in range(n_notes):
        note = generated_note(rng)
        before = rng.random() < 0.8
        kind = rng.random()
        if kind < 0.01:  # a reference passage copied (14-20 words)
            words = rng.choice(refs).split()
            start = rng.randrange(len(words) - 20)
            note += " " + " ".join(words[start : start + rng.randint(14, 20)])
            planted[i] = "privacy"
        elif kind < 0.02 and i > 100:  # a near-copy of an earlier note: one or two words changed
            words = notes[rng.randrange(i)].split(" ")
            for _ in range(rng.randint(1, 2)):
                words[rng.randrange(len(words))] = rng.choice(["today", "also", "now"])
            note = " ".join(words)
            planted[i] = "near-duplicate"
        elif kind < 0.03 and before:
            note += f" Impression: {rng.choice(DIAGNOSIS)}."
            planted[i] = "leakage"
        notes.append(note)
        pre.append(before)
    return notes, refs, pre, planted


_WORD = re.compile(r"\w+")


def naive_privacy_s(notes: list[str], refs: list[str], n: int, sample: int) -> float:
    """Seconds per note for the pairwise way: n-gram sets intersected with every reference."""
    t0 = time.perf_counter()
    for note in notes[:sample]:
        words = _WORD.findall(note.lower())
        mine = {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
        for ref in refs:
            rw = _WORD.findall(ref.lower())
            if mine & {tuple(rw[i : i + n]) for i in range(len(rw) - n + 1)}:
                break
    return (time.perf_counter() - t0) / sample


def naive_near_pair_s(notes: list[str], k: int, pairs: int) -> float:
    """Seconds per pair for exact shingle-set Jaccard (sets prepared once per note)."""
    sets = []
    for note in notes[: pairs + 1]:
        words = _WORD.findall(note.lower())
        sets.append({tuple(words[i : i + k]) for i in range(len(words) - k + 1)})
    t0 = time.perf_counter()
    probe = sets[0]
    for other in sets[1:]:
        _ = len(probe & other) / len(probe | other)
    return (time.perf_counter() - t0) / pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--reference", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--naive-sample", type=int, default=5, help="notes for the naive way")
    args = parser.parse_args()

    t0 = time.perf_counter()
    notes, refs, pre, planted = build(args.notes, args.reference, args.seed)
    words = sum(len(n.split()) for n in notes) / len(notes)
    print(
        f"built {len(notes):,} notes (mean {words:.0f} words) and {len(refs):,} reference "
        f"notes in {time.perf_counter() - t0:.1f} s; planted {dict(Counter(planted.values()))}"
    )
    gc.collect()
    gc.freeze()

    config = GateConfig()
    t0, cpu0 = time.perf_counter(), time.process_time()
    gate = Gate(
        config,
        references=[ReferenceDoc(id=str(i), text=t) for i, t in enumerate(refs)],
        leakage={"KGS:disease/alzheimers-disease": ["Alzheimer disease", "AD"]},
    )
    index_s, index_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert gate.privacy is not None
    print(f"indexed {gate.privacy.size:,} reference {config.ngram}-grams in {index_s:.1f} s")

    specs = {True: spec(False), False: spec(True)}  # pre-diagnosis? -> spec
    run = gate.start()
    caught: Counter[tuple[str, str]] = Counter()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for i, note in enumerate(notes):
        rejection = run.screen(note, specs[pre[i]])
        if rejection is None:
            sketch = run.sketch(note)
            rejection = run.near_duplicate(sketch)
            if rejection is None:
                run.accept(f"n{i}", sketch, regenerated=False)
        if rejection is not None:
            caught[(planted.get(i, "none"), rejection.check)] += 1
    check_s, check_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    total_s = index_s + check_s
    print(
        f"checked {len(notes):,} notes in {check_s:.1f} s ({len(notes) / check_s:,.0f}/s; "
        f"{check_cpu:.1f} s of CPU, {check_cpu / len(notes) * 1e6:.0f} us per note)"
    )
    for kind in ("privacy", "near-duplicate", "leakage"):
        n = sum(1 for v in planted.values() if v == kind)
        print(f"  planted {kind}: {caught[(kind, kind)]}/{n} caught as {kind}")
    stray = {f"{k}->{c}": v for (k, c), v in caught.items() if k != c}
    print(f"  other rejections (planted kind -> check): {stray or 'none'}")
    print(f"  counts: {run.counts.model_dump()}")

    sample = args.naive_sample
    per_note = naive_privacy_s(notes, refs, config.ngram, sample)
    per_pair = naive_near_pair_s(notes, config.shingle, 5_000)
    naive_privacy = per_note * len(notes)
    naive_near = per_pair * len(notes) * (len(notes) - 1) / 2
    naive_total = naive_privacy + naive_near
    print(
        f"naive (measured on {sample} notes x {len(refs):,} references and 5,000 pairs, "
        f"extrapolated): privacy {naive_privacy:,.0f} s + near-duplicate {naive_near:,.0f} s "
        f"= {naive_total:,.0f} s ({naive_total / 3600:.1f} h); gate {total_s:.1f} s, "
        f"{naive_total / total_s:,.0f}x faster"
    )
    recall = {
        kind: caught[(kind, kind)] / max(1, sum(1 for v in planted.values() if v == kind))
        for kind in ("privacy", "near-duplicate", "leakage")
    }
    print(f"BENCH gate_total_{len(notes) // 1000}k_vs_{len(refs) // 1000}k {total_s:.1f} s")
    print(f"BENCH gate_total_cpu {index_cpu + check_cpu:.1f} s")
    print(f"BENCH gate_index_reference {index_s:.1f} s")
    print(f"BENCH gate_notes_per_s {len(notes) / check_s:.0f} notes/s")
    print(f"BENCH gate_naive_extrapolated {naive_total:.0f} s")
    print(f"BENCH gate_speedup_vs_naive {naive_total / total_s:.0f} x")
    for kind, value in recall.items():
        print(f"BENCH gate_recall_{kind.replace('-', '_')} {value:.3f} fraction")


if __name__ == "__main__":
    main()
