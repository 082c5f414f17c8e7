"""OMIM / Orphanet disease ids -> ICD-10-CM codes: the bridge the HPO importer codes by.

Built once from openly licensed mappings and vendored as ``kg/seed/vendor/hpo-icd10cm-bridge.tsv``
(columns ``disease_id``, ``code``, ``source``, ``via``); kg/seed/vendor/PROVENANCE.md says how.
For each ``OMIM:n`` / ``ORPHA:n`` id, the exact links are tried first:

- ``do``: a Disease Ontology class with an ``MIM:n`` / ``ORDO:n`` xref and an ``ICD10CM:`` xref;
- ``orphanet``: the Orphanet class (``Orphanet:n``, or one that lists ``OMIM:n`` among its xrefs)
  with a WHO ``ICD-10:`` xref that is also an ICD-10-CM code (dagger/asterisk marks dropped);

and only when both give nothing, ``do-ancestor``: the nearest DO superclass (at most
``MAX_DEPTH`` levels up) of such a DO class that has an ``ICD10CM:`` xref.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import defaultdict, deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kg.icd import normalise_code
from loaders.obo import parse_obo

#: How far up the DO hierarchy ``do-ancestor`` looks for a coded superclass.
MAX_DEPTH = 2
COLUMNS = ("disease_id", "code", "source", "via")
_DO_PREFIX = {"MIM": "OMIM", "ORDO": "ORPHA"}


@dataclass(frozen=True, order=True)
class Link:
    """One bridge row: ``disease_id`` is coded as ICD-10-CM ``code``, says ``source``, via ..."""

    disease_id: str
    code: str
    source: str
    via: str


def _tsv(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")
    return [{k: (v or "").strip().strip('"') for k, v in row.items() if k} for row in reader]


def do_links(
    xref_rows: Iterable[dict[str, str]],
    hierarchy_rows: Iterable[dict[str, str]],
    cm: Collection[str],
) -> tuple[list[Link], list[Link]]:
    """(exact, ancestor) links from DO's ``allXREFinDO.tsv`` and ``HumanDO.tsv`` rows."""
    codes: dict[str, set[str]] = defaultdict(set)
    ids: dict[str, set[str]] = defaultdict(set)  # OMIM:/ORPHA: id -> DOIDs
    for row in xref_rows:
        prefix, _, local = row.get("xref", "").partition(":")
        if prefix == "ICD10CM":
            code = normalise_code(local)
            if code in cm:
                codes[row["id"]].add(code)
        elif prefix in _DO_PREFIX and local.isdigit():
            ids[f"{_DO_PREFIX[prefix]}:{local}"].add(row["id"])
    by_label: dict[str, str] = {}
    parents_by_label: dict[str, list[str]] = defaultdict(list)
    for row in hierarchy_rows:
        by_label.setdefault(row["label"], row["id"])
        parents_by_label[row["id"]].append(row.get("subClassOf", ""))
    parents = {
        doid: [by_label[p] for p in labels if p in by_label]
        for doid, labels in parents_by_label.items()
    }

    def coded_ancestor(doid: str) -> tuple[str, set[str]] | None:
        seen, todo = {doid}, deque([(doid, 0)])
        while todo:
            node, depth = todo.popleft()
            if node != doid and codes.get(node):
                return node, codes[node]
            if depth < MAX_DEPTH:
                for parent in parents.get(node, []):
                    if parent not in seen:
                        seen.add(parent)
                        todo.append((parent, depth + 1))
        return None

    exact: list[Link] = []
    ancestor: list[Link] = []
    for did, doids in ids.items():
        for doid in sorted(doids):
            exact += [Link(did, c, "do", f"{doid} ICD10CM xref") for c in sorted(codes[doid])]
            found = coded_ancestor(doid)
            if found is not None:
                anc, anc_codes = found
                ancestor += [
                    Link(did, c, "do", f"{doid} is_a {anc} ICD10CM xref") for c in sorted(anc_codes)
                ]
    return exact, ancestor


def orphanet_links(obo_text: str, name: str, cm: Collection[str]) -> list[Link]:
    """Links from Orphanet classes' WHO ``ICD-10:`` xrefs that ICD-10-CM also has."""
    _, terms, _ = parse_obo(obo_text, name)
    links: list[Link] = []
    for term in terms:
        if not term.id.startswith("Orphanet:") or term.obsolete:
            continue
        codes = sorted(
            {
                normalise_code(x.removeprefix("ICD-10:").rstrip("+*"))
                for x in term.xrefs
                if x.startswith("ICD-10:")
            }
            & set(cm)
        )
        orpha = "ORPHA:" + term.id.removeprefix("Orphanet:")
        omims = sorted({x for x in term.xrefs if x.startswith("OMIM:")})
        for code in codes:
            links.append(Link(orpha, code, "orphanet", f"{term.id} ICD-10 xref"))
            links += [
                Link(omim, code, "orphanet", f"{omim} xref of {term.id}, its ICD-10 xref")
                for omim in omims
            ]
    return links


def bridge(exact: Iterable[Link], ancestor: Iterable[Link]) -> list[Link]:
    """Every exact link; ancestor links only for ids without an exact one. One row per
    (id, code): DO before Orphanet."""
    chosen: dict[tuple[str, str], Link] = {}
    for link in sorted(exact, key=lambda k: (k.source != "do", k)):
        chosen.setdefault((link.disease_id, link.code), link)
    have = {d for d, _ in chosen}
    for link in sorted(ancestor):
        if link.disease_id not in have:
            chosen.setdefault((link.disease_id, link.code), link)
    return sorted(chosen.values())


def build(do_xrefs: Path, do_hierarchy: Path, orphanet: Path) -> list[Link]:
    """The bridge from the three upstream files (the ICD-10-CM codes from simple-icd-10-cm)."""
    from loaders.icd10cm import catalogue_codes

    cm = catalogue_codes()
    exact, ancestor = do_links(
        _tsv(do_xrefs.read_text(encoding="utf-8")),
        _tsv(do_hierarchy.read_text(encoding="utf-8")),
        cm,
    )
    exact += orphanet_links(orphanet.read_text(encoding="utf-8"), orphanet.name, cm)
    return bridge(exact, ancestor)


def write_tsv(links: Iterable[Link], out: TextIO) -> None:
    out.write("\t".join(COLUMNS) + "\n")
    for link in links:
        out.write("\t".join((link.disease_id, link.code, link.source, link.via)) + "\n")


def main(argv: list[str]) -> int:
    """``python -m loaders.hpo_bridge ALLXREFINDO.tsv HUMANDO.tsv orphanet_import.obo OUT.tsv``"""
    if len(argv) != 4:
        print(main.__doc__, file=sys.stderr)
        return 2
    links = build(Path(argv[0]), Path(argv[1]), Path(argv[2]))
    with open(argv[3], "w", encoding="utf-8", newline="") as out:
        write_tsv(links, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
