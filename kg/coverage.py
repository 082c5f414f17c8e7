"""How much of ICD-10-CM the graph can generate for, and how rich each profile is.

``kgsynth kg coverage`` resolves every catalogue code (chapters and blocks aside) the way
``plan --icd`` does (kg.resolution: exact, then ancestor, then descendant) with four reads
(codes with parents, chapter and block titles, diseases with codes, per-disease counts) and
Python over them, and counts per chapter and block how many codes resolve and how rich
their profiles are.

A profile is *thin* when it has fewer frequency-weighted symptoms than the threshold
(``min_weighted_symptoms``: ``--min-weighted-symptoms``, else ``KGSYNTH_MIN_WEIGHTED_SYMPTOMS``,
else ``[profiles].min_weighted_symptoms`` in kgsynth.toml, else 5) or no persona figures
(PREVALENCE shares over an age or sex attribute); plan and generate refuse thin profiles
unless ``--allow-thin``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from kg.errors import KgError
from kg.queries import get_query
from kg.resolution import MAX_LEVELS, Candidate, How, pick
from kg.settings import config_table
from kg.store import GraphStore

ENV_MIN_WEIGHTED = "KGSYNTH_MIN_WEIGHTED_SYMPTOMS"
DEFAULT_MIN_WEIGHTED = 5
AGE_ATTRIBUTES = frozenset({"age_group", "age"})
JOINT = "&"


def min_weighted_symptoms(flag: int | None = None) -> int:
    """The thin-profile threshold: flag, then environment, then config file, then 5."""
    for value, source in (
        (flag, "--min-weighted-symptoms"),
        (os.environ.get(ENV_MIN_WEIGHTED), ENV_MIN_WEIGHTED),
        *_file_value(),
    ):
        if value is None or value == "":
            continue
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit():
            raise KgError(f"{source}: expected a whole number >= 0, not {value!r}")
        return int(text)
    return DEFAULT_MIN_WEIGHTED


def _file_value() -> list[tuple[Any, str]]:
    found = config_table("profiles")
    if found is None:
        return []
    path, table = found
    unknown = set(table) - {"min_weighted_symptoms"}
    if unknown:
        raise KgError(
            f"{path}: unknown [profiles] keys {sorted(unknown)}; allowed ['min_weighted_symptoms']"
        )
    value = table.get("min_weighted_symptoms")
    return [(value, f"{path}: [profiles].min_weighted_symptoms")]


def persona_figures(attributes: Iterable[str]) -> tuple[bool, bool]:
    """(age figures, sex figures) among stratum attributes (joint ones count for each part)."""
    parts = {p for a in attributes for p in a.split(JOINT)}
    return bool(parts & AGE_ATTRIBUTES), "sex" in parts


class Richness(BaseModel):
    """What a disease's profile holds for generation."""

    model_config = ConfigDict(frozen=True)

    disease_id: str
    disease: str
    symptoms: int = 0
    weighted: int = 0
    age: bool = False
    sex: bool = False
    windows: int = 0

    @property
    def persona(self) -> bool:
        return self.age or self.sex

    def shortfall(self, min_weighted: int, *, symptoms: bool = True, persona: bool = True) -> str:
        """Why the profile is thin (``has 1 weighted symptom (need 5) and no persona
        figures``), or "" when it is not; ``symptoms``/``persona`` say which parts count."""
        few = symptoms and self.weighted < min_weighted
        bare = persona and not self.persona
        if not few and not bare:
            return ""
        noun = "symptom" if self.weighted == 1 else "symptoms"
        counted = f"has {self.weighted} weighted {noun}"
        no_persona = "no persona figures (age or sex shares)"
        if few and bare:
            return f"{counted} (need {min_weighted}) and {no_persona}"
        if few:
            return f"{counted} (need {min_weighted})"
        return f"has {no_persona}"


@dataclass(slots=True)
class Group:
    """Counts over the codes of one chapter or block (or all of them)."""

    key: str
    title: str = ""
    codes: int = 0
    resolved: int = 0
    exact: int = 0
    ancestor: int = 0
    descendant: int = 0
    weighted: int = 0  # resolve to >= min_weighted frequency-weighted symptoms
    persona: int = 0
    windows: int = 0
    rich: int = 0  # weighted and persona: not thin

    def add(self, how: How | None, profile: Richness | None, min_weighted: int) -> None:
        self.codes += 1
        if how is None or profile is None:
            return
        self.resolved += 1
        if how == "exact":
            self.exact += 1
        elif how == "ancestor":
            self.ancestor += 1
        else:
            self.descendant += 1
        heavy = profile.weighted >= min_weighted
        self.weighted += heavy
        self.persona += profile.persona
        self.windows += profile.windows > 0
        self.rich += heavy and profile.persona


class ProfileRow(Richness):
    """A disease with the number of catalogue codes resolving to it."""

    codes_resolving: int = 0
    thin: str = ""


class Coverage(BaseModel):
    """The ``kg coverage`` report (its ``--json`` form)."""

    min_weighted_symptoms: int
    total: Group
    chapters: list[Group]
    blocks: list[Group]
    profiles: list[ProfileRow]

    def headline(self) -> str:
        t = self.total
        return (
            f"{t.weighted:,} of {t.codes:,} ICD-10-CM codes resolve to a profile with >= "
            f"{self.min_weighted_symptoms} frequency-weighted symptoms ({t.rich:,} of them with "
            f"persona figures too); {t.resolved:,} resolve to a disease ({t.exact:,} exact, "
            f"{t.ancestor:,} through an ancestor, {t.descendant:,} through descendants)"
        )


def _rows(store: GraphStore, name: str) -> list[dict[str, Any]]:
    return store.read(get_query(name).text)


def profile_richness(store: GraphStore) -> dict[str, Richness]:
    """Every disease's counts, by disease id (one read)."""
    out = {}
    for r in _rows(store, "coverage_profiles"):
        age, sex = persona_figures(a for a in r["attributes"] or () if a)
        out[r["disease_id"]] = Richness(
            disease_id=r["disease_id"],
            disease=r["disease"],
            symptoms=int(r["symptoms"]),
            weighted=int(r["weighted"]),
            age=age,
            sex=sex,
            windows=int(r["windows"]),
        )
    return out


class _Tree:
    """The catalogue's hierarchy and codings, for resolving every code in memory."""

    def __init__(
        self,
        codes: dict[str, Any],
        headings: Sequence[dict[str, Any]],
        diseases: Sequence[dict[str, Any]],
        weighted: dict[str, int],
    ) -> None:
        self.parent: dict[str, str] = {}
        self.children: dict[str, list[str]] = defaultdict(list)
        for code, parent in zip(codes["codes"], codes["parents"], strict=True):
            self.children.setdefault(code, [])
            if parent:
                self.parent[code] = parent
                self.children[parent].append(code)
        self.heading = {r["code"]: r for r in headings}
        self.coded: dict[str, list[Candidate]] = defaultdict(list)
        for d in diseases:
            for c in d["codes"]:
                self.coded[c["code"]].append(
                    Candidate(
                        disease_id=d["disease_id"],
                        disease=d["disease"],
                        coded_as=c["code"],
                        distance=0,
                        primary=bool(c["primary"]),
                        weighted=weighted.get(d["disease_id"], 0),
                    )
                )
        #: the disease each coded code stands for (the same at any distance)
        self.best = {code: pick(found)[0].disease_id for code, found in self.coded.items()}
        self.chapter: dict[str, str] = {}
        self.block: dict[str, str] = {}
        #: the disease of the nearest coded ancestor and how many levels up it is
        self.up: dict[str, tuple[str, int]] = {}
        self._walk_down()

    def _walk_down(self) -> None:
        """Chapter, block and nearest coded ancestor of every code, parents before children."""
        stack = [c for c in self.children if c not in self.parent]
        while stack:
            parent = stack.pop()
            kind = self.heading[parent]["kind"] if parent in self.heading else None
            for child in self.children[parent]:
                self.chapter[child] = parent if kind == "chapter" else self.chapter.get(parent, "")
                self.block[child] = parent if kind == "block" else self.block.get(parent, "")
                if parent in self.best:
                    self.up[child] = (self.best[parent], 1)
                elif parent in self.up:
                    disease, level = self.up[parent]
                    self.up[child] = (disease, level + 1)
                stack.append(child)

    def codes(self) -> list[str]:
        """Every code that is neither a chapter nor a block."""
        return [c for c in self.children if c not in self.heading]

    def resolve(self, code: str) -> tuple[str, How] | None:
        """The disease id ``code`` resolves to and the step that found it (kg.resolution)."""
        if code in self.best:
            return self.best[code], "exact"
        up = self.up.get(code)
        if up is not None and up[1] <= MAX_LEVELS:
            return up[0], "ancestor"
        frontier, level = self.children[code], 1
        while frontier and level <= MAX_LEVELS:
            found = [
                c.model_copy(update={"distance": level})
                for x in frontier
                for c in self.coded.get(x, ())
            ]
            if found:
                return pick(found)[0].disease_id, "descendant"
            frontier = [y for x in frontier for y in self.children[x]]
            level += 1
        return None

    def title(self, code: str) -> str:
        h = self.heading.get(code)
        return str(h["title"] or "") if h else ""


def coverage(store: GraphStore, min_weighted: int = DEFAULT_MIN_WEIGHTED) -> Coverage:
    """Resolve every catalogue code and count per chapter and block (four reads)."""
    richness = profile_richness(store)
    tree = _Tree(
        _rows(store, "coverage_codes")[0],
        _rows(store, "coverage_headings"),
        _rows(store, "disease_catalogue"),
        {d: r.weighted for d, r in richness.items()},
    )
    total = Group(key="all")
    chapters: dict[str, Group] = {}
    blocks: dict[str, Group] = {}
    resolving: dict[str, int] = defaultdict(int)
    for code in tree.codes():
        found = tree.resolve(code)
        how = found[1] if found else None
        profile = richness.get(found[0]) if found else None
        if profile is not None:
            resolving[profile.disease_id] += 1
        chapter = tree.chapter.get(code) or "(none)"
        block = tree.block.get(code) or "(none)"
        for groups, key in ((chapters, chapter), (blocks, block)):
            if key not in groups:
                groups[key] = Group(key=key, title=tree.title(key))
            groups[key].add(how, profile, min_weighted)
        total.add(how, profile, min_weighted)
    profiles = [
        ProfileRow(
            **r.model_dump(),
            codes_resolving=resolving.get(r.disease_id, 0),
            thin=r.shortfall(min_weighted),
        )
        for r in richness.values()
    ]
    return Coverage(
        min_weighted_symptoms=min_weighted,
        total=total,
        chapters=sorted(chapters.values(), key=lambda g: _chapter_key(g.key)),
        blocks=sorted(blocks.values(), key=lambda g: g.key),
        profiles=sorted(profiles, key=lambda p: (-p.codes_resolving, p.disease_id)),
    )


def _chapter_key(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (10**6, key)
