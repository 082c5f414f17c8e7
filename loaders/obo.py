"""A small, forgiving OBO 1.2/1.4 reader: header, ``[Term]`` stanzas, problems by line.

A broken stanza (bad header, a line that is not ``tag: value``, no id, an unterminated
quote, a repeated single-valued tag) is reported with its line and skipped as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kg.batch import Location, Problem, RawItem
from loaders.ontology import (
    OntologyInfo,
    OntologyTerm,
    license_name,
    ontology_items,
    release_version,
)
from loaders.textfile import display_name, read_text

_TAG = re.compile(r"^([A-Za-z][A-Za-z0-9_\-]*):(?:\s+(.*)|\s*)$")
_STANZA = re.compile(r"^\[([A-Za-z]+)\]$")
_ID = re.compile(r"^[^\s:]+:\S+$")
_ESCAPES = {"n": "\n", "t": "\t", "W": " "}
_SCOPES = ("EXACT", "RELATED", "BROAD", "NARROW")
_SINGLE = ("id", "name", "def", "is_obsolete")


class OboSyntaxError(ValueError):
    """A value that cannot be read; the message says what is wrong."""


def _strip(value: str) -> str:
    """``value`` without a trailing ``! comment`` or ``{modifiers}`` (outside quotes)."""
    in_quote = escaped = False
    brace = -1
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_quote = not in_quote
        elif not in_quote and ch == "!":
            value = value[:i]
            break
        elif not in_quote and ch == "{" and brace < 0:
            brace = i
    value = value.rstrip()
    if brace >= 0 and value.endswith("}"):
        value = value[:brace].rstrip()
    return value


def unescape(text: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_ESCAPES.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


def quoted(value: str) -> tuple[str, str]:
    """Split ``"text" rest`` into (unescaped text, rest)."""
    if not value.startswith('"'):
        raise OboSyntaxError('expected a quoted "text"')
    i, escaped = 1, False
    while i < len(value):
        ch = value[i]
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return unescape(value[1:i]), value[i + 1 :].strip()
        i += 1
    raise OboSyntaxError('unterminated quoted text (no closing ")')


@dataclass
class _Stanza:
    kind: str
    line: int
    tags: list[tuple[str, str, int]] = field(default_factory=list)
    broken: bool = False


def _term(stanza: _Stanza, name: str) -> tuple[OntologyTerm | None, list[Problem]]:
    values: dict[str, str] = {}
    synonyms: list[str] = []
    xrefs: list[str] = []
    parents: list[str] = []
    problems: list[Problem] = []
    for tag, value, line in stanza.tags:
        loc = Location(name, line)
        try:
            if tag in _SINGLE:
                if tag in values:
                    raise OboSyntaxError(f"{tag} is given twice in one stanza")
                values[tag] = quoted(value)[0] if tag == "def" else unescape(value)
            elif tag == "synonym":
                text, rest = quoted(value)
                scope = rest.split(" ", 1)[0] if rest else ""
                if scope and not scope.startswith("[") and scope not in _SCOPES:
                    raise OboSyntaxError(
                        f"unknown synonym scope {scope!r}; use one of {', '.join(_SCOPES)}"
                    )
                synonyms.append(text)
            elif tag == "xref":
                xrefs.append(unescape(value.split(" ", 1)[0]))
            elif tag == "is_a":
                parents.append(value.split(" ", 1)[0])
        except OboSyntaxError as err:
            problems.append(Problem(loc, tag, str(err)))
    term_id = values.get("id")
    if term_id is None:
        problems.append(Problem(Location(name, stanza.line), "id", "a [Term] stanza without id"))
    elif not _ID.match(term_id):
        problems.append(
            Problem(
                Location(name, stanza.line), "id", f"{term_id!r} is not an OBO id (PREFIX:LOCAL)"
            )
        )
    for parent in parents:
        if not _ID.match(parent):
            problems.append(
                Problem(
                    Location(name, stanza.line),
                    "is_a",
                    f"{parent!r} is not an OBO id (PREFIX:LOCAL)",
                )
            )
    if problems or term_id is None:
        return None, problems
    return OntologyTerm(
        id=term_id,
        name=values.get("name"),
        definition=values.get("def"),
        synonyms=tuple(synonyms),
        xrefs=tuple(xrefs),
        parents=tuple(parents),
        obsolete=values.get("is_obsolete", "false").strip().lower() == "true",
        line=stanza.line,
    ), problems


def _header_info(header: list[tuple[str, str, int]], fallback: str) -> OntologyInfo:
    tags: dict[str, str] = {}
    props: dict[str, str] = {}
    for tag, value, _ in header:
        if tag == "property_value":
            key, _, rest = value.partition(" ")
            rest = rest.strip()
            props[key] = quoted(rest)[0] if rest.startswith('"') else rest.split(" ", 1)[0]
        else:
            tags.setdefault(tag, value)
    return OntologyInfo(
        ontology=tags.get("ontology", fallback).lower(),
        title=props.get("dc:title") or props.get("http://purl.org/dc/elements/1.1/title"),
        version=release_version(props.get("owl:versionInfo") or tags.get("data-version")),
        license=license_name(
            props.get("terms:license")
            or props.get("dcterms:license")
            or props.get("http://purl.org/dc/terms/license")
        ),
        root=props.get("IAO:0000700"),
    )


def parse_obo(text: str, name: str) -> tuple[OntologyInfo, list[OntologyTerm], list[Problem]]:
    """The header info, the terms of every well-formed ``[Term]`` stanza, and the problems."""
    header: list[tuple[str, str, int]] = []
    stanzas: list[_Stanza] = []
    problems: list[Problem] = []
    current: _Stanza | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("!"):
            continue
        if line.startswith("["):
            m = _STANZA.match(line)
            current = _Stanza(m.group(1) if m else "", lineno, broken=m is None)
            stanzas.append(current)
            if m is None:
                problems.append(
                    Problem(
                        Location(name, lineno),
                        "",
                        f"broken stanza header "
                        f"{line[:40]!r} (expected e.g. [Term]); stanza skipped",
                    )
                )
            continue
        m = _TAG.match(line)
        if m is None:
            problems.append(
                Problem(
                    Location(name, lineno),
                    "",
                    f"expected 'tag: value', got "
                    f"{line[:40]!r}" + ("; stanza skipped" if current else ""),
                )
            )
            if current is not None:
                current.broken = True
            continue
        entry = (m.group(1), _strip(m.group(2) or ""), lineno)
        (current.tags if current is not None else header).append(entry)
    try:
        info = _header_info(header, Path(name).stem)
    except OboSyntaxError as err:
        problems.append(Problem(Location(name, 1), "property_value", str(err)))
        info = OntologyInfo(ontology=Path(name).stem.lower())
    terms: list[OntologyTerm] = []
    seen: dict[str, int] = {}
    for stanza in stanzas:
        if stanza.kind != "Term" or stanza.broken:
            continue
        term, found = _term(stanza, name)
        problems += found
        if term is None:
            continue
        if term.id in seen:
            problems.append(
                Problem(
                    Location(name, stanza.line),
                    "id",
                    f"{term.id} is defined again (first on line {seen[term.id]})",
                )
            )
            continue
        seen[term.id] = stanza.line
        terms.append(term)
    return info, terms, problems


def read_obo(path: Path, label: str | None = None) -> tuple[list[RawItem], list[Problem]]:
    """Raw items (see ``loaders.ontology``) from an OBO file."""
    name = display_name(path)
    text, problems = read_text(path)
    if text is None:
        return [], problems
    info, terms, problems = parse_obo(text, name)
    if not terms and not problems:
        problems.append(Problem(Location(name, 1), "", "no [Term] stanzas: not an OBO ontology"))
    items, more = ontology_items(info, terms, name, label)
    return items, problems + more
