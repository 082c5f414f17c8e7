"""The Human Phenotype Ontology (``hp.obo``) as the HPO importer needs it.

The generic OBO reader (``loaders.obo``) drops synonym types; the importer needs them (HPO's
``layperson`` synonyms are the patient-voice surface forms), plus ``alt_id`` and
``replaced_by`` to follow annotations made with retired ids.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from functools import cached_property

from kg.batch import Location, Problem
from loaders.obo import OboSyntaxError, quoted, unescape

#: The root of HPO's phenotypic abnormality branch (the one that becomes symptoms).
PHENOTYPIC_ABNORMALITY = "HP:0000118"
#: The root of HPO's onset terms (``Congenital onset``, ``Adult onset``, ...).
ONSET = "HP:0003674"
#: The root of HPO's frequency terms.
FREQUENCY = "HP:0040279"
LAYPERSON = "layperson"


@dataclass
class HpTerm:
    """One ``[Term]`` stanza; ``synonyms`` are (text, scope, type) with type ``""`` if none."""

    id: str
    line: int
    name: str = ""
    definition: str | None = None
    synonyms: list[tuple[str, str, str]] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    alt_ids: list[str] = field(default_factory=list)
    xrefs: list[str] = field(default_factory=list)
    obsolete: bool = False
    replaced_by: str | None = None


@dataclass
class HpOntology:
    version: str | None
    terms: dict[str, HpTerm]
    #: alt_id and obsolete id -> the live id it stands for
    aliases: dict[str, str]

    def live(self, term_id: str) -> str | None:
        """The live term ``term_id`` names (itself, via alt_id or replaced_by), or None."""
        term_id = self.aliases.get(term_id, term_id)
        term = self.terms.get(term_id)
        return term_id if term is not None and not term.obsolete else None

    @cached_property
    def children(self) -> dict[str, list[str]]:
        """Each term's live direct subclasses."""
        out: dict[str, list[str]] = defaultdict(list)
        for term in self.terms.values():
            if not term.obsolete:
                for parent in term.parents:
                    out[parent].append(term.id)
        return out

    def descendants(self, root: str) -> set[str]:
        """``root`` and every live term under it (``is_a``)."""
        seen = {root}
        todo = deque([root])
        while todo:
            for child in self.children.get(todo.popleft(), []):
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen


#: the [Term] tags read (``id``, then those ``_field`` reads); others are skipped unparsed
_KEPT = frozenset(
    ("id", "name", "def", "synonym", "is_a", "alt_id", "xref", "is_obsolete", "replaced_by")
)


def _field(term: HpTerm, tag: str, value: str) -> None:
    if tag == "name":
        term.name = unescape(value)
    elif tag == "def":
        term.definition = quoted(value)[0]
    elif tag == "synonym":
        text, rest = quoted(value)
        words = [w for w in rest.split() if not w.startswith("[")]
        term.synonyms.append((text, words[0] if words else "", words[1] if len(words) > 1 else ""))
    elif tag == "is_a":
        term.parents.append(value.split()[0])
    elif tag == "alt_id":
        term.alt_ids.append(value.split()[0])
    elif tag == "xref":
        term.xrefs.append(value.split()[0])
    elif tag == "is_obsolete":
        term.obsolete = value.strip().lower() == "true"
    elif tag == "replaced_by":
        term.replaced_by = value.split()[0]


def parse_hp_obo(text: str, name: str) -> tuple[HpOntology, list[Problem]]:
    """The terms of ``hp.obo`` (other stanzas ignored) and a problem per unreadable line."""
    terms: dict[str, HpTerm] = {}
    problems: list[Problem] = []
    version: str | None = None
    current: HpTerm | None = None
    in_term = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("!"):
            continue
        if line.startswith("["):
            in_term, current = line == "[Term]", None
            continue
        tag, sep, value = line.partition(":")
        if not sep:
            problems.append(
                Problem(Location(name, lineno), "", f"expected 'tag: value', got {line[:40]!r}")
            )
            continue
        if current is not None and tag not in _KEPT:  # comments, dates, property values
            continue
        value = value.strip()
        if tag not in ("name", "def", "synonym"):
            value = value.split(" ! ", 1)[0].strip()
        if not in_term:
            if tag == "data-version":
                version = value.rsplit("/", 1)[-1]
            continue
        if tag == "id":
            current = terms.setdefault(value, HpTerm(value, lineno))
            continue
        if current is None:
            problems.append(Problem(Location(name, lineno), tag, "a [Term] line before its id"))
            continue
        try:
            _field(current, tag, value)
        except OboSyntaxError as err:
            problems.append(Problem(Location(name, lineno), tag, str(err)))
    aliases = {alt: t.id for t in terms.values() for alt in t.alt_ids}
    for term in terms.values():
        if term.obsolete and term.replaced_by:
            aliases[term.id] = term.replaced_by
    return HpOntology(version, terms, aliases), problems
