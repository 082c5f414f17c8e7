"""``kgsynth dataset build``: notes + annotations -> a dataset directory with its card.

The directory is built beside the target under a temporary name and renamed into place
when complete, so a failed or interrupted build leaves nothing half-written. Rebuilding
the same inputs with the same settings gives the same rows, splits and card.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.annotate.model import AnnotatedNote
from engine.dataset.card import render_card
from engine.dataset.inputs import read_annotations, read_notes
from engine.dataset.rows import BINARY_NAMES, sentence_rows
from engine.dataset.splits import SPLITS, SplitConfig, assign
from engine.dataset.summary import DatasetSummary, SplitCounts
from engine.dataset.writers import dataset_dict, features, write_all
from engine.errors import EngineError
from engine.runner.output import manifest_path, read_manifest

#: the file in a dataset directory that says kgsynth built it (and how)
SUMMARY = "dataset.json"
CARD = "README.md"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _counts(items: Any) -> dict[str, int]:
    return dict(sorted(Counter(items).items()))


def _split_counts(
    rows: list[dict[str, Any]], notes: int, patients: int | None, labels: list[str]
) -> SplitCounts:
    label_counts = Counter(labels[r["label"]] for r in rows)
    binary = Counter(BINARY_NAMES[r["binary_label"]] for r in rows)
    return SplitCounts(
        notes=notes,
        patients=patients,
        sentences=len(rows),
        labels={name: label_counts[name] for name in labels},
        binary={name: binary[name] for name in BINARY_NAMES},
    )


def _add(total: dict[str, Any], counts: dict[str, Any]) -> None:
    """Add numeric counts (nested dicts too) into ``total``."""
    for key, value in counts.items():
        if isinstance(value, dict):
            _add(total.setdefault(key, {}), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


def _gate(manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    """The gate's settings (manifest ``gate``) and its counts summed over the runs."""
    settings = (manifest or {}).get("gate")
    if not isinstance(settings, dict):
        return None
    counts: dict[str, Any] = {}
    for run in (manifest or {}).get("runs") or []:
        if isinstance(run, dict) and isinstance(run.get("gate"), dict):
            _add(counts, run["gate"])
    return {"settings": settings, "counts": counts}


def _constraints(annotated: list[AnnotatedNote]) -> Counter[str]:
    """The constraint check: requested keywords realised, and label agreement on them."""
    out: Counter[str] = Counter()
    for r in (r for a in annotated for r in a.realisations):
        out["requested keywords"] += 1
        out["realised"] += r.sentence is not None
        if r.label_agrees is not None:
            out["label agrees" if r.label_agrees else "label disagrees"] += 1
    return out


def _lexicon(annotated: list[AnnotatedNote]) -> Counter[str]:
    """The lexicon cross-check: sentences with an affirmed mention, and label agreement.

    A mention counts unless negated, hypothetical or about another person (the lexicon
    annotator's own rule; uncertain and historical mentions count).
    """
    out: Counter[str] = Counter()
    for s in (s for a in annotated for s in a.sentences):
        affirmed = {
            m.category_id for m in s.mentions if not (m.negated or m.family or m.hypothetical)
        }
        if affirmed:
            out["sentences with an affirmed mention"] += 1
            out["label matches a mention's category"] += s.label.category_id in affirmed
    return out


def check_target(output: Path, force: bool) -> None:
    """``output`` may be new, empty, or an earlier kgsynth dataset; anything else needs --force."""
    if not output.parent.is_dir():
        raise EngineError(f"-o {output}: the directory {output.parent} does not exist")
    if not output.exists():
        return
    if not output.is_dir():
        raise EngineError(f"-o {output} is a file; name a directory for the dataset")
    if any(output.iterdir()) and not (output / SUMMARY).is_file() and not force:
        raise EngineError(
            f"-o {output} holds files that are not a kgsynth dataset; name a new directory, "
            "or pass --force to replace it"
        )


def _install(output: Path, fill: Callable[[Path], None]) -> None:
    """Build in a temporary sibling with ``fill(tmp)``, then swap it in for ``output``
    (an earlier ``output`` is put back if the swap fails)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    old = tmp.with_name(f"{tmp.name}.old")
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        if output.exists():
            os.rename(output, old)
        try:
            os.rename(tmp, output)
        except BaseException:
            if old.exists():
                os.rename(old, output)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def build_dataset(
    notes_path: Path, annotations_path: Path, output: Path, split: SplitConfig, force: bool
) -> DatasetSummary:
    """Read, check, split and write the dataset at ``output``; returns its summary."""
    check_target(output, force)
    notes = read_notes(notes_path)
    annotations = read_annotations(annotations_path, notes)
    built = sentence_rows(notes, annotations)
    if not built.rows:
        left_out = ", ".join(f"{v} {k}" for k, v in sorted(built.excluded.items())) or "none"
        raise EngineError(
            f"no annotated sentence of an ok note in {notes_path} and {annotations_path} "
            f"(notes left out: {left_out}); nothing written"
        )
    note_list = [n for n, _ in built.used.values()]
    annotated = [a for _, a in built.used.values()]
    specs = [n.spec for n in note_list if n.spec is not None]
    patients = {
        n.record_id: n.spec.patient.patient_id
        for n in note_list
        if n.spec is not None and n.spec.patient is not None
    }
    where = assign(
        {n.record_id: n.spec.icd_code if n.spec else None for n in note_list}, split, patients
    )
    by_split: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for row in sorted(built.rows, key=lambda r: (r["record_id"], r["sentence_index"])):
        by_split[where[row["record_id"]]].append(row)
    labels = list(built.scheme.names)
    notes_per_split = Counter(where.values())
    patients_per_split = Counter({pid: where[rid] for rid, pid in patients.items()}.values())
    manifest_file = manifest_path(notes_path)
    manifest = read_manifest(manifest_file)
    summary = DatasetSummary(
        notes_file=notes_path.name,
        notes_sha256=_sha256(notes_path),
        annotations_file=annotations_path.name,
        annotations_sha256=_sha256(annotations_path),
        split=split,
        split_unit="patient" if patients else "record",
        scheme=built.scheme.name,
        labels=labels,
        category_ids=list(built.scheme.category_ids),
        note_statuses=_counts(notes.statuses.elements()),
        notes_used=len(built.used),
        excluded=_counts(built.excluded.elements()),
        splits={
            name: _split_counts(
                by_split[name],
                notes_per_split[name],
                patients_per_split[name] if patients else None,
                labels,
            )
            for name in SPLITS
        },
        kg_hashes=sorted({s.kg_hash for s in specs}),
        run_kg_hash=((manifest or {}).get("source") or {}).get("kg_hash"),
        diseases=dict(sorted({s.disease_id: s.disease for s in specs}.items())),
        icd_codes=_counts(s.icd_code or "(none)" for s in specs),
        recipes=_counts(s.recipe for s in specs),
        generators=_counts(f"{n.backend}/{n.model}" for n in note_list),
        annotators=_counts(f"{a.annotator} ({a.backend}/{a.model})" for a in annotated),
        review=_counts("flagged for review" if a.review else "not flagged" for a in annotated),
        review_reasons=_counts(reason for a in annotated for reason in a.review_reasons),
        constraints=dict(sorted(_constraints(annotated).items())),
        lexicon=dict(sorted(_lexicon(annotated).items())),
        gate=_gate(manifest),
        manifest=manifest_file.name if manifest is not None else None,
    )
    data = dataset_dict(by_split, features(built.scheme, built.persona_keys))

    def fill(tmp: Path) -> None:
        write_all(data, tmp)
        (tmp / SUMMARY).write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
        (tmp / CARD).write_text(render_card(summary), encoding="utf-8")

    _install(output, fill)
    return summary
