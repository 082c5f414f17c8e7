"""The gate's checks on realistic notes: planted copies, paraphrases, leakage, near-duplicates.

Every verdict is compared with an independent second method: the longest run of tokens a
note shares with a protected text (a plain dynamic programme over token lists), exact
Jaccard over shingle sets, and hand-written expectations for diagnosis mentions.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

from engine.errors import EngineError
from engine.gate import Gate, GateConfig, ReferenceDoc, load_reference
from engine.gate.neardup import NearDuplicateIndex
from engine.gate.text import TokenHasher, ngram_hashes, tokens
from engine.spec import GenerationSpec, WindowRef

EXAMPLES = {
    "KGS:note/ex-1": (
        "S: 74-year-old retired teacher brought in by her husband, who reports eighteen months "
        "of worsening short-term memory. She repeats questions within minutes, has missed two "
        "electricity bills and left the stove on twice last month. Denies low mood. "
        "O: MMSE 23/30, lost points on recall and orientation to date. Gait normal. "
        "A: Progressive amnestic cognitive decline, functional impact on finances. "
        "P: B12, TSH, MRI brain; refer to memory clinic; review driving."
    ),
    "KGS:note/ex-2": (
        "History: Mr. Okafor, 81, attends with his daughter. Over the past year he has become "
        "lost twice while driving familiar routes and now relies on written lists for every "
        "errand. Word-finding pauses noted during the interview. He sleeps poorly and wanders "
        "at night. Exam: clock drawing abnormal with crowded numbers; MoCA 19/30. Plan: "
        "neuropsychology referral, caregiver support leaflet, follow up in eight weeks."
    ),
}
REFERENCE = [
    ReferenceDoc(
        id="ref-17",
        text=(
            "Patient is a 69 year old woman seen in the memory service after her son noticed "
            "that she could no longer manage her medications and had stopped cooking meals "
            "for herself; she became tearful when asked about the changes."
        ),
    )
]
FILLER = [
    "Patient seen in clinic today for routine review.",
    "Blood pressure 132/78, pulse 72 and regular.",
    "She lives alone in a ground floor flat and walks daily with a stick.",
    "No falls reported since the last visit; appetite is fair.",
    "Medication list reconciled with the pharmacy record.",
    "Plan to review again after the blood results are back.",
    "Family are supportive and attend most appointments.",
    "Hearing aids in place; vision corrected with glasses.",
]
_WORD = re.compile(r"\w+")


def toks(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def longest_shared_run(a: list[str], b: list[str]) -> int:
    """Longest common run of tokens (the textbook dynamic programme, no hashing)."""
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def protected() -> dict[str, list[str]]:
    out = {k: toks(v) for k, v in EXAMPLES.items()}
    out.update({f"reference:{d.id}": toks(d.text) for d in REFERENCE})
    return out


def make_gate(**config: object) -> Gate:
    return Gate(GateConfig.model_validate(config), references=REFERENCE, examples=EXAMPLES.items())


def passage(text: str, start: int, length: int) -> str:
    """The original characters of tokens ``start .. start+length-1`` of ``text``."""
    spans = [m.span() for m in _WORD.finditer(text)]
    return text[spans[start][0] : spans[start + length - 1][1]]


def disguise(text: str, rng: random.Random) -> str:
    """Case, spacing and punctuation changes that leave the words as they are."""
    out = text.upper() if rng.random() < 0.3 else text
    out = re.sub(r" ", lambda _: rng.choice([" ", "  ", "\n", " - "]), out)
    return out.replace(";", ",").replace(":", " -")


def note_with(planted: str, rng: random.Random) -> str:
    lines = rng.sample(FILLER, 5)
    lines.insert(rng.randrange(6), planted)
    return " ".join(lines)


def test_every_planted_copy_of_a_protected_passage_is_caught() -> None:
    gate = make_gate().start()
    rng = random.Random(11)
    texts = {**EXAMPLES, **{f"reference:{d.id}": d.text for d in REFERENCE}}
    planted = 0
    for source, text in texts.items():
        n_tokens = len(toks(text))
        for start in range(0, n_tokens - 12):
            length = rng.randint(12, min(24, n_tokens - start))
            copy = disguise(passage(text, start, length), rng)
            note = note_with(copy, rng)
            assert longest_shared_run(toks(note), toks(text)) >= 12  # the second method agrees
            rejection = gate.screen(note, None)
            assert rejection is not None and rejection.check == "privacy", (source, start)
            assert rejection.source == source
            shared = rejection.ngram
            assert shared is not None and len(shared.split()) == 12
            assert f" {shared} " in f" {' '.join(toks(text))} "  # the words really are the source's
            planted += 1
    assert planted == sum(len(toks(t)) - 12 for t in texts.values()) > 100
    assert gate.counts.checked == planted and gate.counts.rejected["privacy"] == planted


def test_paraphrases_below_the_threshold_pass() -> None:
    gate = make_gate().start()
    rng = random.Random(5)
    swaps = ["really", "notably", "also", "still", "again", "then"]
    checked = 0
    for text in EXAMPLES.values():
        words = toks(text)
        for start in range(0, len(words) - 30, 3):
            # every 11th word replaced: no run of 12 original words survives
            chunk = [
                swaps[rng.randrange(len(swaps))] if i % 11 == 10 else w
                for i, w in enumerate(words[start : start + 30])
            ]
            note = note_with(" ".join(chunk), rng)
            runs = max(longest_shared_run(toks(note), t) for t in protected().values())
            assert runs < 12
            assert gate.screen(note, None) is None
            checked += 1
    assert checked > 20 and gate.counts.rejected["privacy"] == 0


def test_the_ngram_length_is_the_boundary() -> None:
    text = EXAMPLES["KGS:note/ex-1"]
    eleven, twelve = passage(text, 5, 11), passage(text, 5, 12)
    gate = make_gate().start()
    assert gate.screen(f"Unrelated opening words. {eleven}. Closing remark here.", None) is None
    caught = gate.screen(f"Unrelated opening words. {twelve}. Closing remark here.", None)
    assert caught is not None and caught.source == "KGS:note/ex-1"
    short = make_gate(ngram=8).start()
    assert short.screen(f"Unrelated opening words. {passage(text, 40, 8)}. Done.", None)


def test_an_example_note_first_seen_in_a_spec_is_protected() -> None:
    gate = Gate(GateConfig()).start()  # nothing indexed up front
    text = EXAMPLES["KGS:note/ex-2"]
    note = note_with(passage(text, 10, 14), random.Random(1))
    assert gate.screen(note, None) is None
    spec = make_spec(examples=[{"id": "KGS:note/ex-2", "origin": "synthetic", "text": text}])
    caught = gate.screen(note, spec)
    assert caught is not None and caught.source == "KGS:note/ex-2"


def make_spec(diagnosed: bool | None = None, **extra: object) -> GenerationSpec:
    window = (
        None
        if diagnosed is None
        else WindowRef(
            id="KGS:win/w",
            name="year before diagnosis" if not diagnosed else "at diagnosis",
            order=1,
            start_months=-12 if not diagnosed else 0,
            end_months=0 if not diagnosed else 6,
            phrase="within the year before the diagnosis",
            diagnosed=diagnosed,
        )
    )
    return GenerationSpec.model_validate(
        {
            "recipe": "dualalign",
            "run_seed": 1,
            "record_index": 0,
            "record_id": "dualalign-1-00000000",
            "record_seed": 42,
            "icd_code": "G30.9",
            "icd_title": "Alzheimer's disease, unspecified",
            "disease_id": "KGS:disease/ad",
            "disease": "Alzheimer's disease",
            "window": window,
            "template_id": "dualalign",
            "template_hash": "0" * 64,
            "kg_hash": "1" * 64,
            **extra,
        }
    )


LEAKY = [
    ("Working diagnosis: Alzheimer's disease.", "Alzheimer's disease"),
    ("Findings in keeping with alzheimers disease per family.", "Alzheimer's disease"),
    ("Consider Alzheimer’s-disease as the cause.", "Alzheimer's disease"),
    ("Coded G30.9 in the problem list.", "G30.9"),
    ("billing code g309 entered", "G30.9"),
    ("Impression: probable AD, moderate.", "AD"),
    ("Family history of Alzheimer disease in her mother.", "Alzheimer disease"),
    (
        "Meets criteria for SENILE DEMENTIA OF THE ALZHEIMER TYPE.",
        "senile dementia of the Alzheimer type",
    ),
    ("Problem: Alzheimer's disease, unspecified.", "Alzheimer's disease, unspecified"),
]
CLEAN = [
    "Diet ad lib; fluids encouraged.",  # "ad" in lower case is not the acronym
    "AD8 questionnaire score 3 from the daughter.",  # a screening tool, not the diagnosis
    "Memory complaints for two years; dementia screen arranged.",
    "Code G30.91 does not exist; G31.1 considered elsewhere.",
    "Reading glasses adjusted; headache resolved.",
]


def test_planted_diagnosis_mentions_are_caught_only_before_diagnosis() -> None:
    gate = Gate(
        GateConfig(),
        leakage={
            "KGS:disease/ad": ["Alzheimer disease", "AD", "senile dementia of the Alzheimer type"]
        },
    )
    run = gate.start()
    before, after, none = make_spec(False), make_spec(True), make_spec(None)
    for sentence, term in LEAKY:
        note = f"Subjective: forgetful for a year. {sentence} Plan: review."
        caught = run.screen(note, before)
        assert caught is not None and caught.check == "leakage" and caught.term == term, sentence
        assert caught.found is not None and caught.found in sentence
        assert run.screen(note, after) is None and run.screen(note, none) is None
    for sentence in CLEAN:
        assert run.screen(f"Subjective: forgetful. {sentence}", before) is None, sentence
    assert run.counts.rejected["leakage"] == len(LEAKY)
    assert run.counts.checked == 3 * len(LEAKY) + len(CLEAN)


def shingles(text: str, k: int = 3) -> set[tuple[str, ...]]:
    words = toks(text)
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_near_duplicates_of_accepted_notes_are_rejected_others_pass() -> None:
    base = " ".join(FILLER) + " " + EXAMPLES["KGS:note/ex-2"]
    words = base.split()
    light = " ".join("today" if i == 40 else w for i, w in enumerate(words))  # one word changed
    heavy = " ".join(w if i % 3 else "x" + w for i, w in enumerate(words))  # a third changed
    other = EXAMPLES["KGS:note/ex-1"]
    assert jaccard(base, light) > 0.9 and jaccard(base, heavy) < 0.2 and jaccard(base, other) < 0.1
    gate = Gate(GateConfig(checks=("near-duplicate",))).start()
    for key, text in [("r0", base), ("r1", light), ("r2", heavy), ("r3", other)]:
        assert gate.screen(text, None) is None  # no order-free check enabled
        sketch = gate.sketch(text)
        rejection = gate.near_duplicate(sketch)
        if key == "r1":
            assert rejection is not None and rejection.similar_to == "r0"
            assert (
                rejection.jaccard is not None
                and abs(rejection.jaccard - jaccard(base, light)) < 0.1
            )
        else:
            assert rejection is None, key
            gate.accept(key, sketch, regenerated=False)
    assert gate.counts.model_dump() == {
        "checked": 4,
        "accepted": 3,
        "rejected": {"privacy": 0, "leakage": 0, "near-duplicate": 1},
        "regenerated": 0,
        "accepted_after_regeneration": 0,
        "records_rejected": 0,
    }


def test_estimated_jaccard_tracks_exact_jaccard_across_edit_rates() -> None:
    rng = random.Random(3)
    base = (" ".join(FILLER) + " " + " ".join(EXAMPLES.values())).split()
    gate = Gate(GateConfig(checks=("near-duplicate",), near_duplicate=0.5)).start()
    gate.accept("base", gate.sketch(" ".join(base)), regenerated=False)
    for rate in (0.0, 0.02, 0.05, 0.1, 0.3):
        edited = " ".join(f"z{rng.randrange(10**6)}" if rng.random() < rate else w for w in base)
        exact = jaccard(" ".join(base), edited)
        found = gate.near_duplicate(gate.sketch(edited))
        if exact >= 0.6:
            assert found is not None and abs((found.jaccard or 0) - exact) < 0.12, rate
        if exact < 0.4:
            assert found is None, rate


def test_reference_corpus_errors_name_file_line_and_field(tmp_path: Path) -> None:
    good = tmp_path / "corpus.jsonl"
    good.write_text('{"id": "a", "text": "one note"}\n\n{"body": "two", "text": "x"}\n')
    docs = load_reference(good)
    assert [d.id for d in docs] == ["a", "corpus.jsonl:3"]
    assert [d.text for d in load_reference(good, "text")] == ["one note", "x"]
    cases = {
        '{"text": "fine"}\n{"text": "oops"\n': "line 2: not JSON",
        '{"text": "fine"}\n["a list"]\n': "line 2: expected a JSON object",
        '{"text": "fine"}\n{"text": 3}\n': "line 2: field 'text' is a int",
        '{"note": "fine"}\n': "line 1: field 'text' is missing",
        "\n\n": "holds no documents",
    }
    for body, message in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(body)
        with pytest.raises(EngineError, match=re.escape(message)) as err:
            load_reference(bad)
        assert str(bad) in str(err.value)
    binary = tmp_path / "latin1.jsonl"
    binary.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(EngineError, match="line 2: not UTF-8"):
        load_reference(binary)
    with pytest.raises(EngineError, match="No such file"):
        load_reference(tmp_path / "missing.jsonl")


def test_sketches_are_the_values_datasketch_minhash_computes() -> None:
    index, hasher = NearDuplicateIndex(0.8), TokenHasher()
    for text in [*EXAMPLES.values(), *FILLER, "two words"]:
        token_hashes = hasher.hashes(tokens(text))
        shingles = index.shingles(token_hashes)
        reference = MinHash(num_perm=128, seed=1, hashfunc=int)
        reference.update_batch(shingles.tolist())
        assert np.array_equal(index.sketch(token_hashes).hashvalues, reference.hashvalues)


def test_ngram_hashes_are_the_polynomial_of_the_token_hashes() -> None:
    hasher = TokenHasher()
    values = hasher.hashes(tokens(EXAMPLES["KGS:note/ex-1"]))
    prime, mask = 0x100000001B3, (1 << 64) - 1
    for n in (1, 3, 12):
        expected = [
            sum(int(values[i + j]) * pow(prime, n - 1 - j, 1 << 64) for j in range(n)) & mask
            for i in range(len(values) - n + 1)
        ]
        assert ngram_hashes(values, n).tolist() == expected
    assert len(ngram_hashes(values[:5], 12)) == 0
