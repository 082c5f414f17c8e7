"""FHIR R4 export: one ``DocumentReference`` per ``ok`` note, in a ``collection`` Bundle.

Validated with ``fhir.resources.R4B`` (FHIR 4.3.0): fhir.resources 8 has no R4 (4.0.1)
package, and ``DocumentReference``, ``Attachment``, ``Bundle`` and the data types used here
have the same shape in R4 and R4B, so the output is valid R4 as well. Each resource carries:

- ``meta.tag`` HTEST (``http://terminology.hl7.org/CodeSystem/v3-ActReason``, "test health
  data"): the note is synthetic, never real patient data;
- ``identifier`` with system ``urn:kgsynth:record-id`` and the record id as value;
- ``status`` current, ``docStatus`` final, ``date`` when the note was generated;
- ``type`` LOINC 34109-9 (Note);
- ``content[0].attachment``: the note text (a structured report's sections as ``Title:``
  blocks, as ``kgsynth annotate`` reads it), base64, ``text/plain; charset=utf-8``, with
  its size and SHA-1 hash as FHIR defines them;
- ``context.event``: the ICD-10-CM code the note was written for
  (``http://hl7.org/fhir/sid/icd-10-cm``).

A note of a longitudinal patient (``spec.patient``) also has ``subject``, a reference to its
patient's ``Patient`` (one per patient id, in the same Bundle), and ``context.period``, the
visit's date: ``VISIT_ANCHOR`` (every patient's first visit) plus the visit's ``day``. The
``Patient`` (tagged HTEST, ``identifier`` ``urn:kgsynth:patient-id``) takes ``gender`` from
the persona's ``sex`` and ``birthDate`` from the ages at the visits: the latest date at which
the patient has every exported visit's age on that visit's date. Notes without a patient
have no subject (the persona is sampled and the note stands alone).

The output is deterministic: resource ids are UUIDv5 of the record id (of the patient id for
a Patient), Patients come first by patient id, then DocumentReferences by record id, and the
Bundle's timestamp is the latest note's.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import date, timedelta
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from engine.annotate.notes import note_text
from engine.runner.records import NoteRecord
from engine.spec import PatientVisit, Persona

FHIR_VERSION = "4.0.1"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
RECORD_ID_SYSTEM = "urn:kgsynth:record-id"
SYNTHETIC_TAG = {"system": ACT_REASON, "code": "HTEST", "display": "test health data"}
NOTE_TYPE = {"system": LOINC, "code": "34109-9", "display": "Note"}
PATIENT_ID_SYSTEM = "urn:kgsynth:patient-id"
#: namespace of the resources' UUIDv5 ids (uuid5(NAMESPACE_URL, "urn:kgsynth:record-id"))
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, RECORD_ID_SYSTEM)
#: namespace of the Patients' UUIDv5 ids (uuid5(NAMESPACE_URL, "urn:kgsynth:patient-id"))
PATIENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, PATIENT_ID_SYSTEM)
#: the date of every longitudinal patient's first visit (a visit's date: this + its ``day``)
VISIT_ANCHOR = date(2000, 1, 1)
#: persona ``sex`` -> FHIR administrative gender (anything else: ``unknown``)
GENDERS = {"female": "female", "male": "male"}


def resource_id(record_id: str) -> str:
    """The DocumentReference id of a record: UUIDv5 (a valid FHIR id whatever the record id)."""
    return str(uuid.uuid5(NAMESPACE, record_id))


def patient_resource_id(patient_id: str) -> str:
    """The Patient id of a longitudinal patient: UUIDv5 of its patient id."""
    return str(uuid.uuid5(PATIENT_NAMESPACE, patient_id))


def visit_date(visit: PatientVisit) -> date:
    """The visit's date: ``VISIT_ANCHOR`` plus its ``day`` offset."""
    return VISIT_ANCHOR + timedelta(days=visit.day)


def _years_before(when: date, years: int) -> date:
    try:
        return when.replace(year=when.year - years)
    except ValueError:  # 29 February in a year without one
        return when.replace(year=when.year - years, day=28)


def patient(patient_id: str, visits: list[tuple[PatientVisit, Persona | None]]) -> dict[str, Any]:
    """The Patient of one longitudinal patient, from its visits' personas, as FHIR JSON:
    ``gender`` from its first visit's persona (drawn once per patient, so every visit's
    agrees), ``birthDate`` the latest date by which it has every visit's age on that visit."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_resource_id(patient_id),
        "meta": {"tag": [SYNTHETIC_TAG]},
        "identifier": [{"system": PATIENT_ID_SYSTEM, "value": patient_id}],
    }
    persona = min(visits, key=lambda v: v[0].visit_index)[1]
    if persona is not None:
        resource["gender"] = GENDERS.get(persona.attributes.get("sex", ""), "unknown")
    births = [
        _years_before(visit_date(visit), p.age)
        for visit, p in visits
        if p is not None and p.age is not None
    ]
    if births:
        resource["birthDate"] = min(births).isoformat()
    return resource


def _description(note: NoteRecord) -> str:
    spec = note.spec
    what = f"Synthetic {spec.recipe} note" if spec else "Synthetic note"
    by = f"generated by kgsynth ({note.backend}/{note.model})"
    if spec is not None and spec.patient is not None:
        v = spec.patient
        what += f", visit {v.visit_index + 1} of {v.visits} of patient {v.patient_id},"
    return f"{what} for {spec.disease}, {by}" if spec else f"{what}, {by}"


def document_reference(note: NoteRecord) -> dict[str, Any]:
    """The DocumentReference of one ok note, as FHIR JSON."""
    data = note_text(note.text, note.parsed).encode("utf-8")
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": resource_id(note.record_id),
        "meta": {"tag": [SYNTHETIC_TAG]},
        "identifier": [{"system": RECORD_ID_SYSTEM, "value": note.record_id}],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [NOTE_TYPE], "text": "Synthetic clinical note"},
        "date": note.timings.finished_at,
        "description": _description(note),
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "language": "en",
                    "data": base64.b64encode(data).decode("ascii"),
                    "size": len(data),
                    "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
                    "title": note.record_id,
                }
            }
        ],
    }
    spec = note.spec
    context: dict[str, Any] = {}
    if spec is not None and spec.icd_code:
        coding = {"system": ICD10CM, "code": spec.icd_code}
        if spec.icd_title:
            coding["display"] = spec.icd_title
        context["event"] = [{"coding": [coding]}]
    if spec is not None and spec.patient is not None:
        resource["subject"] = {
            "reference": f"urn:uuid:{patient_resource_id(spec.patient.patient_id)}"
        }
        day = visit_date(spec.patient).isoformat()
        context["period"] = {"start": day, "end": day}
    if context:
        resource["context"] = context
    return resource


def bundle(notes: list[NoteRecord]) -> dict[str, Any]:
    """The ``collection`` Bundle of the notes' Patients (by patient id) and DocumentReferences
    (by record id), as FHIR JSON, once ``fhir.resources`` has validated it (its own
    serialiser would double the time and write the same content)."""
    ordered = sorted(notes, key=lambda n: n.record_id)
    by_patient: dict[str, list[tuple[PatientVisit, Persona | None]]] = {}
    for n in ordered:
        if n.spec is not None and n.spec.patient is not None:
            visit = n.spec.patient
            by_patient.setdefault(visit.patient_id, []).append((visit, n.spec.persona))
    ids = "\n".join(n.record_id for n in ordered).encode("utf-8")
    data: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": hashlib.sha256(ids).hexdigest()[:32],
        "meta": {"tag": [SYNTHETIC_TAG]},
        "type": "collection",
    }
    if ordered:  # FHIR JSON has no empty arrays: a bundle of no notes has no entry
        data["timestamp"] = max(n.timings.finished_at for n in ordered)
        data["entry"] = [
            {"fullUrl": f"urn:uuid:{patient_resource_id(pid)}", "resource": patient(pid, visits)}
            for pid, visits in sorted(by_patient.items())
        ] + [
            {"fullUrl": f"urn:uuid:{resource_id(n.record_id)}", "resource": document_reference(n)}
            for n in ordered
        ]
    Bundle.model_validate(data)
    return data
