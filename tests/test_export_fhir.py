"""``kgsynth export fhir``: a FHIR R4 Bundle of DocumentReferences, validated, ok notes only."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from engine.runner.records import NoteRecord
from tests.test_dataset_inputs import failed, generate, kgsynth, rejected, write_jsonl
from tests.test_dataset_patients import patient_notes

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def notes(graph: Path, tmp_path_factory: pytest.TempPathFactory) -> list[NoteRecord]:
    out = tmp_path_factory.mktemp("fhir") / "gen.jsonl"
    generate(graph, out, "--recipe", "dualalign", "--icd", "G30.9,G30.0", "-n", "3")
    generate(graph, out.with_name("mh.jsonl"), "--recipe", "mh_report", "--icd", "F32.9", "-n", "2")
    lines = [*out.read_text().splitlines(), *out.with_name("mh.jsonl").read_text().splitlines()]
    return [NoteRecord.model_validate_json(line) for line in lines]


def export(notes_file: Path, out: Path, *args: str) -> Bundle:
    done = kgsynth("export", "fhir", str(notes_file), "-o", str(out), *args)
    assert done.returncode == 0, done.stderr
    return Bundle.model_validate_json(out.read_bytes())


def test_bundle_validates_and_carries_text_codes_tag_and_ids(
    notes: list[NoteRecord], tmp_path: Path
) -> None:
    rejected_note, failed_note, kept = notes[0], notes[4], notes[1:4] + notes[5:]
    lines = [n.model_dump_json() for n in notes] + [rejected(rejected_note), failed(failed_note)]
    bundle = export(write_jsonl(tmp_path / "notes.jsonl", lines), tmp_path / "bundle.json")
    assert bundle.type == "collection"
    assert bundle.__resource_type__ == "Bundle"
    entries = bundle.entry or []
    by_id: dict[str, DocumentReference] = {}
    for entry in entries:
        doc = entry.resource
        assert isinstance(doc, DocumentReference)
        assert entry.fullUrl == f"urn:uuid:{doc.id}"
        assert doc.identifier is not None and doc.identifier[0].system == "urn:kgsynth:record-id"
        by_id[str(doc.identifier[0].value)] = doc
    assert sorted(by_id) == sorted(n.record_id for n in kept)
    json_data = {
        e["resource"]["identifier"][0]["value"]: e["resource"]["content"][0]["attachment"]
        for e in json.loads((tmp_path / "bundle.json").read_text())["entry"]
    }
    codes: set[str] = set()
    for note in kept:
        doc = by_id[note.record_id]
        assert (doc.status, doc.docStatus) == ("current", "final")
        assert doc.meta is not None and doc.meta.tag is not None
        tag = doc.meta.tag[0]
        assert (tag.system, tag.code) == (
            "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "HTEST",
        )
        attachment = doc.content[0].attachment
        assert attachment.contentType == "text/plain; charset=utf-8"
        assert note.text is not None and attachment.data is not None
        sections = (note.parsed or {}).get("sections")
        text = (
            "\n\n".join(f"{s['title']}:\n{s['text']}" for s in sections) if sections else note.text
        )
        raw = text.encode("utf-8")
        assert attachment.data == raw  # fhir.resources decodes base64Binary to bytes
        assert json_data[note.record_id]["data"] == base64.b64encode(raw).decode("ascii")
        assert attachment.size == len(raw)
        assert attachment.hash == hashlib.sha1(raw).digest()
        assert doc.context is not None and doc.context.event is not None
        coding = (doc.context.event[0].coding or [])[0]
        assert note.spec is not None
        assert (coding.system, coding.code, coding.display) == (
            "http://hl7.org/fhir/sid/icd-10-cm",
            note.spec.icd_code,
            note.spec.icd_title,
        )
        assert doc.date is not None
        codes.add(str(coding.code))
    assert codes == {"G30.9", "G30.0", "F32.9"}
    # the failed and rejected notes' text is nowhere in the file, in base64 or plain
    data = (tmp_path / "bundle.json").read_text()
    for note in (rejected_note, failed_note):
        assert note.record_id not in data
        assert note.text is not None
        assert base64.b64encode(note.text.encode()).decode() not in data


def test_the_bundle_is_the_same_whatever_the_input_order(
    notes: list[NoteRecord], tmp_path: Path
) -> None:
    lines = [n.model_dump_json() for n in notes]
    export(write_jsonl(tmp_path / "a.jsonl", lines), tmp_path / "a.json")
    random.Random(3).shuffle(lines)
    export(write_jsonl(tmp_path / "b.jsonl", lines), tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_the_validator_checks_structure_and_formats_and_our_codes_are_r4s(
    notes: list[NoteRecord], tmp_path: Path
) -> None:
    """fhir.resources checks cardinality, unknown fields and primitive formats (not
    terminology bindings), so a bundle it accepts is structurally valid; the codes with a
    required binding are checked here against the R4 value sets."""
    export(write_jsonl(tmp_path / "n.jsonl", [notes[1].model_dump_json()]), tmp_path / "b.json")
    data = json.loads((tmp_path / "b.json").read_text())
    resource = data["entry"][0]["resource"]
    # required value sets (R4): bundle-type, document-reference-status, composition-status
    assert data["type"] in {
        "document",
        "message",
        "transaction",
        "transaction-response",
        "batch",
        "batch-response",
        "history",
        "searchset",
        "collection",
    }
    assert resource["status"] in {"current", "superseded", "entered-in-error"}
    assert resource["docStatus"] in {"preliminary", "final", "amended", "entered-in-error"}
    for field, value in (
        ("status", None),
        ("content", None),
        ("date", "yesterday"),
        ("note", "an unknown field"),
    ):
        broken = json.loads(json.dumps(data))
        if value is None:
            del broken["entry"][0]["resource"][field]
        else:
            broken["entry"][0]["resource"][field] = value
        with pytest.raises(ValidationError, match=f"entry.0.resource.{field}"):
            Bundle.model_validate(broken)


def test_an_output_that_is_not_a_bundle_is_kept_unless_forced(
    notes: list[NoteRecord], tmp_path: Path
) -> None:
    src = write_jsonl(tmp_path / "n.jsonl", [n.model_dump_json() for n in notes])
    done = kgsynth("export", "fhir", str(src), "-o", str(src))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: -o {src} exists and is not a FHIR Bundle; name another file, or pass --force"
    )
    assert len(src.read_text().splitlines()) == len(notes)
    missing = tmp_path / "none.jsonl"
    done = kgsynth("export", "fhir", str(missing), "-o", str(tmp_path / "b.json"))
    assert (done.returncode, done.stderr.strip()) == (2, f"error: {missing}: no such notes file")
    assert not (tmp_path / "b.json").exists()


def test_no_ok_note_gives_a_valid_bundle_without_entries(
    notes: list[NoteRecord], tmp_path: Path
) -> None:
    lines = [n.model_dump_json() for n in notes[:2]] + [rejected(n) for n in notes[:2]]
    out = tmp_path / "b.json"
    done = kgsynth("export", "fhir", str(write_jsonl(tmp_path / "n.jsonl", lines)), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "Bundle of 0 DocumentReference(s); left out 2 rejected" in done.stderr
    data = json.loads(out.read_text())
    assert "entry" not in data and data["type"] == "collection"
    Bundle.model_validate(data)


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def test_a_patients_visits_share_one_patient_and_are_dated_in_visit_order(
    graph: Path, notes: list[NoteRecord], tmp_path: Path
) -> None:
    """6 patients per code (G30.9, G30.0), 3 visits each, one visit failed later, plus the
    plain notes: one Patient per patient, each visit's subject its own Patient, each visit
    dated 2000-01-01 + its day; plain notes keep no subject and no Patient."""
    visits = patient_notes(graph, tmp_path / "p.jsonl", 6, "--icd", "G30.9,G30.0", "--seed", "4")
    gone = visits[1]
    lines = [n.model_dump_json() for n in [*visits, *notes]] + [failed(gone)]
    bundle = export(write_jsonl(tmp_path / "n.jsonl", lines), tmp_path / "b.json")
    entries = bundle.entry or []
    patients = {e.fullUrl: e.resource for e in entries if isinstance(e.resource, Patient)}
    docs = {
        str((e.resource.identifier or [])[0].value): e.resource
        for e in entries
        if isinstance(e.resource, DocumentReference)
    }
    assert len(entries) == len(patients) + len(docs)
    kept = [n for n in visits if n.record_id != gone.record_id]
    assert sorted(docs) == sorted(n.record_id for n in [*kept, *notes])
    by_patient: dict[str, list[NoteRecord]] = {}
    for note in kept:
        assert note.spec is not None and note.spec.patient is not None
        by_patient.setdefault(note.spec.patient.patient_id, []).append(note)
    assert len(by_patient) == 12
    again = kgsynth("export", "fhir", str(tmp_path / "n.jsonl"), "-o", str(tmp_path / "c.json"))
    assert f"{len(docs)} DocumentReference(s) and 12 Patient(s)" in again.stderr
    # exactly one Patient per patient id, its fullUrl its own id, tagged synthetic
    pid_of = {}
    for url, patient in patients.items():
        assert url == f"urn:uuid:{patient.id}"
        assert patient.identifier is not None and len(patient.identifier) == 1
        assert patient.identifier[0].system == "urn:kgsynth:patient-id"
        assert patient.meta is not None and patient.meta.tag is not None
        assert patient.meta.tag[0].code == "HTEST"
        pid_of[url] = str(patient.identifier[0].value)
    assert sorted(pid_of.values()) == sorted(by_patient)
    url_of = {p: url for url, p in pid_of.items()}
    raw = {
        e["resource"]["id"]: e["resource"]
        for e in json.loads((tmp_path / "b.json").read_text())["entry"]
    }
    for patient_id, own in by_patient.items():
        patient = patients[url_of[patient_id]]
        days = []
        for note in sorted(
            own, key=lambda n: n.spec.patient.visit_index if n.spec and n.spec.patient else 0
        ):
            assert note.spec is not None and note.spec.patient is not None
            assert note.spec.persona is not None and note.spec.persona.age is not None
            doc = docs[note.record_id]
            assert doc.subject is not None and doc.subject.reference == url_of[patient_id]
            when = date(2000, 1, 1) + timedelta(days=note.spec.patient.day)
            period = raw[doc.id]["context"]["period"]
            assert period == {"start": when.isoformat(), "end": when.isoformat()}
            assert patient.gender == note.spec.persona.attributes["sex"]
            # required binding (R4 administrative-gender)
            assert patient.gender in {"male", "female", "other", "unknown"}
            # the birth date gives the persona's age at every visit
            born = date.fromisoformat(raw[patient.id]["birthDate"])
            assert age_on(born, when) == note.spec.persona.age
            days.append(when)
        assert days == sorted(days) and days[0] >= date(2000, 1, 1)
    for note in notes:
        doc = docs[note.record_id]
        assert doc.subject is None
        assert doc.context is not None and doc.context.period is None
    # the same file whatever the input order (Patients too; the failed line stays last)
    shuffled = lines[:-1]
    random.Random(8).shuffle(shuffled)
    export(write_jsonl(tmp_path / "s.jsonl", [*shuffled, lines[-1]]), tmp_path / "s.json")
    assert (tmp_path / "s.json").read_bytes() == (tmp_path / "b.json").read_bytes()
