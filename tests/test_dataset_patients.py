"""Longitudinal patients in ``kgsynth dataset build``: every visit of a patient in one split.

Inputs are real: ``kgsynth generate --patients`` (template backend) on the engine fixture
graph, whose Alzheimer-like disease has three windows, so three visits per patient, and
``kgsynth plan --patients`` for hundreds of patients. Expected splits are computed here: the
hash method's bucket from sha256 of the patient id directly, the stratified quotas by hand.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.dataset.build import build_dataset
from engine.dataset.splits import SplitConfig, SplitMethod, assign
from engine.dataset.summary import DatasetSummary
from engine.runner.records import NoteRecord
from engine.spec import GenerationSpec
from tests.test_dataset_inputs import annotate, failed, generate, kgsynth, write_jsonl

pytestmark = pytest.mark.timeout(600)
SPLITS = ("train", "validation", "test")
#: visits per patient: the fixture disease's three windows, one visit each
VISITS = 3


def patient_notes(graph: Path, out: Path, patients: int, *args: str) -> list[NoteRecord]:
    """Template notes of ``patients`` patients per code from the real ``generate --patients``."""
    generate(graph, out, "--recipe", "dualalign", "--patients", str(patients), *args)
    return [NoteRecord.model_validate_json(line) for line in out.read_text().splitlines()]


def pid(note: NoteRecord) -> str:
    assert note.spec is not None and note.spec.patient is not None
    return note.spec.patient.patient_id


def point(seed: int, unit_id: str) -> float:
    return int(hashlib.sha256(f"{seed}:{unit_id}".encode()).hexdigest()[:16], 16) / 16**16


def bucket(seed: int, unit_id: str, ratios: tuple[float, float, float]) -> str:
    p = point(seed, unit_id)
    if p < ratios[0]:
        return "train"
    return "validation" if p < ratios[0] + ratios[1] else "test"


@dataclass(frozen=True)
class Cohort:
    notes: Path
    annotations: Path
    patient_notes: list[NoteRecord]  # ok, used
    plain_notes: list[NoteRecord]  # ok, used, no patient
    failed_id: str  # a patient's visit that failed (a later line)


@pytest.fixture(scope="module")
def cohort(graph: Path, tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """20 patients of G30.9 (60 visits; one visit failed later), 8 plain G30.0 notes."""
    root = tmp_path_factory.mktemp("patients")
    visits = patient_notes(graph, root / "p.jsonl", 20, "--icd", "G30.9", "--seed", "3")
    assert len(visits) == 20 * VISITS
    assert {pid(n) for n in visits} == {f"dualalign-3-p{i:07d}" for i in range(20)}
    plain_file = generate(
        graph, root / "plain.jsonl", "--recipe", "dualalign", "--icd", "G30.0", "-n", "8"
    )
    plain = [NoteRecord.model_validate_json(line) for line in plain_file.read_text().splitlines()]
    assert all(n.spec is not None and n.spec.patient is None for n in plain)
    gone = visits[4]
    lines = [n.model_dump_json() for n in [*visits, *plain]] + [failed(gone)]
    kept = [n for n in visits if n.record_id != gone.record_id]
    annotations = [annotate(n).model_dump_json() for n in [*kept, *plain]]
    return Cohort(
        notes=write_jsonl(root / "notes.jsonl", lines),
        annotations=write_jsonl(root / "annotations.jsonl", annotations),
        patient_notes=kept,
        plain_notes=plain,
        failed_id=gone.record_id,
    )


def splits_of(out: Path) -> dict[str, tuple[str, str | None]]:
    """record id -> (split, patient_id column) from the JSONL rows."""
    where: dict[str, tuple[str, str | None]] = {}
    for split in SPLITS:
        path = out / "jsonl" / f"{split}.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            row = json.loads(line)
            assert where.setdefault(row["record_id"], (split, row["patient_id"]))[0] == split
    return where


@pytest.mark.parametrize(("seed", "ratios"), [(0, (0.8, 0.1, 0.1)), (7, (0.5, 0.25, 0.25))])
def test_hash_splits_put_a_patients_visits_where_its_patient_id_hashes(
    cohort: Cohort, tmp_path: Path, seed: int, ratios: tuple[float, float, float]
) -> None:
    out = tmp_path / "ds"
    if seed == 7:  # through the real command
        done = kgsynth(
            "dataset",
            "build",
            "--notes",
            str(cohort.notes),
            "--annotations",
            str(cohort.annotations),
            "-o",
            str(out),
            "--split-seed",
            "7",
            "--ratios",
            "50/25/25",
        )
        assert done.returncode == 0, done.stderr
        summary = DatasetSummary.model_validate_json((out / "dataset.json").read_text())
    else:
        config = SplitConfig(ratios=ratios, seed=seed)
        summary = build_dataset(cohort.notes, cohort.annotations, out, config, force=False)
    where = splits_of(out)
    assert cohort.failed_id not in where
    for note in cohort.patient_notes:
        assert note.spec is not None and note.spec.patient is not None
        assert where[note.record_id] == (bucket(seed, pid(note), ratios), pid(note))
    # a note without a patient keeps its own record-id bucket, as before patients
    for note in cohort.plain_notes:
        assert where[note.record_id] == (bucket(seed, note.record_id, ratios), None)
    patients = Counter({pid(n): where[n.record_id][0] for n in cohort.patient_notes}.values())
    notes = Counter(split for split, _ in where.values())
    assert summary.split_unit == "patient"
    for split in SPLITS:
        assert summary.splits[split].patients == patients[split]
        assert summary.splits[split].notes == notes[split]
    card = (out / "README.md").read_text()
    assert "By patient (all visits of a longitudinal patient" in card
    per = ", ".join(f"{s} {patients[s]}" for s in SPLITS)
    assert f"Patients per split: {per}." in card
    assert "| split | patients | notes | sentences | symptom | no symptom |" in card
    assert f"| total | 20 | {len(where)} |" in card
    data = json.loads((out / "dataset.json").read_text())
    assert data["split_unit"] == "patient"
    assert {s: data["splits"][s]["patients"] for s in SPLITS} == dict(patients)


def test_stratified_splits_fill_patient_quotas_per_code(cohort: Cohort, tmp_path: Path) -> None:
    """G30.9: 20 patients at 50/25/25 -> 10/5/5 patients (whatever their visit counts);
    G30.0: 8 plain notes -> 4/2/2 notes; each ordered by its unit's hash."""
    out = tmp_path / "ds"
    split = SplitConfig(ratios=(50, 25, 25), seed=2, method=SplitMethod.stratified)
    build_dataset(cohort.notes, cohort.annotations, out, split, force=False)
    where = splits_of(out)
    ranked = sorted({pid(n) for n in cohort.patient_notes}, key=lambda p: point(2, p))
    expected = dict(zip(ranked, ["train"] * 10 + ["validation"] * 5 + ["test"] * 5, strict=True))
    for note in cohort.patient_notes:
        assert where[note.record_id][0] == expected[pid(note)]
    plain = sorted((n.record_id for n in cohort.plain_notes), key=lambda r: point(2, r))
    assert [where[r][0] for r in plain] == ["train"] * 4 + ["validation"] * 2 + ["test"] * 2


@pytest.fixture(scope="module")
def planned(graph: Path, tmp_path_factory: pytest.TempPathFactory) -> list[GenerationSpec]:
    """300 patients per code over G30.9 and G30.0 from the real planner: 1,800 specs."""
    out = tmp_path_factory.mktemp("plan") / "specs.jsonl"
    done = kgsynth(
        "--uri",
        f"embedded:{graph}",
        "plan",
        "--recipe",
        "dualalign",
        "--icd",
        "G30.9,G30.0",
        "--patients",
        "300",
        "--seed",
        "11",
        "-o",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    specs = [GenerationSpec.model_validate_json(line) for line in out.read_text().splitlines()]
    assert len(specs) == 600 * VISITS
    return specs


@pytest.mark.parametrize("method", [SplitMethod.hash, SplitMethod.stratified])
def test_hundreds_of_patients_never_straddle_splits_and_meet_the_ratios(
    planned: list[GenerationSpec], method: SplitMethod
) -> None:
    codes = {s.record_id: s.icd_code for s in planned}
    patients = {s.record_id: s.patient.patient_id for s in planned if s.patient is not None}
    assert len(patients) == len(planned) and len(set(patients.values())) == 600
    code_of = {patients[s.record_id]: s.icd_code for s in planned}
    ratios = (0.8, 0.1, 0.1)
    for seed in range(5):
        where = assign(codes, SplitConfig(ratios=ratios, seed=seed, method=method), patients)
        of_patient: dict[str, set[str]] = {}
        for rid, split in where.items():
            of_patient.setdefault(patients[rid], set()).add(split)
        assert all(len(s) == 1 for s in of_patient.values())
        per_split = Counter(next(iter(s)) for s in of_patient.values())
        notes = Counter(where.values())
        for split, ratio in zip(SPLITS, ratios, strict=True):
            assert notes[split] == VISITS * per_split[split]
            if method is SplitMethod.hash:
                # patients ~ Binomial(600, ratio): within 4 standard errors of 600 * ratio
                se = math.sqrt(600 * ratio * (1 - ratio))
                assert abs(per_split[split] - 600 * ratio) <= 4 * se
        if method is SplitMethod.stratified:
            # 300 patients per code at 80/10/10: 240/30/30, exactly, in each code
            per_code = Counter((code_of[p], next(iter(s))) for p, s in of_patient.items())
            assert per_code == {
                (code, split): n
                for code in ("G30.9", "G30.0")
                for split, n in zip(SPLITS, (240, 30, 30), strict=True)
            }
        else:
            assert all(next(iter(s)) == bucket(seed, p, ratios) for p, s in of_patient.items())
