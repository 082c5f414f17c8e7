"""Ontology terms (from OBO or OWL) mapped onto the graph.

Classes become ``Symptom`` nodes (``Disease`` for disease ontologies) with name,
synonyms (every scope), definition and xrefs; ``is_a``/``subClassOf`` becomes ``IS_A``.
For symptoms, each class directly under the root becomes a ``SymptomCategory`` (scheme =
the ontology id) and every symptom gets ``IN_CATEGORY`` to its top-level ancestor(s),
itself included for a top-level class; the root itself is not loaded. Obsolete terms are
skipped. One ``Source`` node cites the release; every node and edge points to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from kg.batch import Location, Problem, RawItem

#: Ontologies whose classes are diseases rather than symptoms.
DISEASE_ONTOLOGIES = frozenset({"doid", "mondo"})
LICENSES = {
    "https://creativecommons.org/publicdomain/zero/1.0/": "CC0-1.0",
    "http://creativecommons.org/publicdomain/zero/1.0/": "CC0-1.0",
    "https://creativecommons.org/licenses/by/4.0/": "CC-BY-4.0",
    "http://creativecommons.org/licenses/by/4.0/": "CC-BY-4.0",
}
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


class OntologyTerm(BaseModel):
    """One class as read from the file, before mapping."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str | None = None
    definition: str | None = None
    synonyms: tuple[str, ...] = ()
    xrefs: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    obsolete: bool = False
    line: int | None = None


class OntologyInfo(BaseModel):
    """The ontology's header: id, title, release, license and root term."""

    model_config = ConfigDict(frozen=True)

    ontology: str
    title: str | None = None
    version: str | None = None
    license: str | None = None
    root: str | None = None

    @property
    def source_id(self) -> str:
        return f"KGS:source/{self.ontology}" + (f"-{self.version}" if self.version else "")


def release_version(text: str | None) -> str | None:
    """``releases/2026-07-30/symp.obo`` or an IRI with a date -> ``2026-07-30``."""
    if not text:
        return None
    m = _DATE.search(text)
    return m.group(1) if m else text.strip() or None


def license_name(text: str | None) -> str | None:
    return LICENSES.get(text.strip(), text.strip()) if text else None


def _source_row(info: OntologyInfo) -> dict[str, object]:
    citation = info.title or info.ontology.upper()
    row: dict[str, object] = {
        "id": info.source_id,
        "citation": f"{citation} ({info.ontology.upper()})"
        + (f", release {info.version}" if info.version else ""),
        "url": f"http://purl.obolibrary.org/obo/{info.ontology}.owl",
    }
    if info.license:
        row["license"] = info.license
    if info.version and info.version[:4].isdigit() and 1800 <= int(info.version[:4]) <= 2100:
        row["year"] = int(info.version[:4])
    return row


def category_id(ontology: str, term_id: str) -> str:
    return f"KGS:category/{ontology}/{term_id.replace(':', '_')}"


def _top_level(terms: dict[str, OntologyTerm], root: str | None) -> dict[str, tuple[str, ...]]:
    """Each term's top-level ancestors (itself when it is one), without recursion."""

    def is_top(t: OntologyTerm) -> bool:
        return root in t.parents if root else not t.parents

    memo: dict[str, tuple[str, ...]] = {}
    for start in terms:
        stack = [start]
        while stack:
            tid = stack[-1]
            if tid in memo:
                stack.pop()
                continue
            term = terms[tid]
            if is_top(term):
                memo[tid] = (tid,)
                stack.pop()
                continue
            pending = [p for p in term.parents if p in terms and p not in memo and p not in stack]
            if pending:
                stack.extend(pending)
                continue
            found = sorted({a for p in term.parents for a in memo.get(p, ())})
            memo[tid] = tuple(found)
            stack.pop()
    return memo


def ontology_items(
    info: OntologyInfo, terms: Iterable[OntologyTerm], name: str, label: str | None = None
) -> tuple[list[RawItem], list[Problem]]:
    """Raw items for the terms of one ontology file (see the module docstring)."""
    label = label or ("Disease" if info.ontology in DISEASE_ONTOLOGIES else "Symptom")
    src = info.source_id
    live = {t.id: t for t in terms if not t.obsolete}
    root = info.root
    if root is None:
        parentless = [t for t in live.values() if not t.parents]
        root = parentless[0].id if len(parentless) == 1 else None
    items = [RawItem("node", "Source", _source_row(info), Location(name, 1))]
    problems: list[Problem] = []
    if root is not None and root not in live:
        problems.append(
            Problem(Location(name, 1), "root", f"the root term {root} is not defined (or obsolete)")
        )
    tops = _top_level(live, root) if label == "Symptom" else {}
    categories = {a for ancestors in tops.values() for a in ancestors}
    for term in live.values():
        loc = Location(name, term.line)
        if term.id == root:
            continue
        row: dict[str, object] = {"id": term.id, "source": src}
        if term.name is not None:
            row["name"] = term.name
        if term.synonyms:
            row["synonyms"] = sorted(set(term.synonyms) - {term.name})
        if term.definition:
            row["description" if label == "Disease" else "definition"] = term.definition
        if term.xrefs:
            row["xrefs"] = sorted(set(term.xrefs))
        items.append(RawItem("node", label, row, loc))
        for parent in sorted(set(term.parents) - {root}):
            items.append(
                RawItem("rel", "IS_A", {"start": term.id, "end": parent, "source": src}, loc)
            )
        if term.id in categories and term.name:
            row = {
                "id": category_id(info.ontology, term.id),
                "name": term.name,
                "scheme": info.ontology,
                "source": src,
            }
            if term.definition:
                row["description"] = term.definition
            items.append(RawItem("node", "SymptomCategory", row, loc))
        for top in tops.get(term.id, ()):
            items.append(
                RawItem(
                    "rel",
                    "IN_CATEGORY",
                    {"start": term.id, "end": category_id(info.ontology, top), "source": src},
                    loc,
                )
            )
    return items, problems
