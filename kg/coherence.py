"""Clinical-coherence rules for the fields that make sampled records coherent (issue 9).

Pure functions over a ``GraphBatch`` taken as the whole graph, each returning ``Problem``s:
frequency classes, stages, keyword densities, surface-form slots, persona restrictions,
core criteria, solvable risk tables and the ``status`` of curated numbers. The helpers
(slot names, frequency classes, age ranges, persona cells, the solved risk rate) are the
definitions the engine samples by, so the two cannot drift apart. docs/graph-model.md
describes the representation.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from kg.batch import GraphBatch, Problem
from kg.model import (
    Bounded,
    Disease,
    Entity,
    Presents,
    Relationship,
    Symptom,
    TrajectoryWindow,
)

ERROR = "error"
WARNING = "warning"

# ---------------------------------------------------------------------------- frequencies

#: Frequency classes: half-open ranges of the frequency (share of patients) and the value
#: used when a PRESENTS row gives the class only (the range's midpoint; 1.0 for obligate).
FREQUENCY_CLASSES: dict[str, tuple[float, float, float]] = {
    "obligate": (1.0, 1.0, 1.0),
    "very_frequent": (0.80, 1.0, 0.895),
    "frequent": (0.30, 0.80, 0.545),
    "occasional": (0.05, 0.30, 0.17),
    "very_rare": (0.0, 0.05, 0.025),
}
#: The frequency of an association with neither weight nor class (imported, unweighted):
#: the lower edge of ``frequent``, so measured frequent symptoms stay ahead of it.
UNWEIGHTED_FREQUENCY = 0.3


def frequency_class_of(weight: float) -> str | None:
    """The class a frequency falls in (None for 0)."""
    if weight >= 1.0:
        return "obligate"
    for name, (lo, hi, _) in FREQUENCY_CLASSES.items():
        if lo <= weight < hi and weight > 0:
            return name
    return None


def class_frequency(name: str) -> float:
    return FREQUENCY_CLASSES[name][2]


def presents_frequency(weight: float | None, frequency_class: str | None) -> float | None:
    """The frequency a PRESENTS row stands for; None when it is unweighted."""
    if weight is not None:
        return weight
    if frequency_class is not None:
        return class_frequency(frequency_class)
    return None


# ---------------------------------------------------------------------------- stages, ages


def stage_allows(symptom_stage: int | None, window_stage: int | None) -> bool:
    """A symptom first seen at ``symptom_stage`` can be drawn in a window reaching
    ``window_stage`` (an absent stage allows everything)."""
    return symptom_stage is None or window_stage is None or symptom_stage <= window_stage


def age_allows(min_age: int | None, max_age: int | None, age: int | None) -> bool:
    if age is None:
        return True
    return (min_age is None or age >= min_age) and (max_age is None or age <= max_age)


_NUM = re.compile(r"\d+")
_LOWER_OPEN = re.compile(r"(\+|>=|≥|>|and over|and older|or older|or over|plus)", re.IGNORECASE)
_UPPER_OPEN = re.compile(r"(<=|≤|<|under|younger than|below)", re.IGNORECASE)
#: Years an open age group (``85+``, ``<65``) spans.
OPEN_AGE_SPAN = 10


def age_range(group: str, open_span: int = OPEN_AGE_SPAN) -> tuple[int, int] | None:
    """Inclusive integer ages of an age-group label: ``65-74``, ``85+``, ``≥85``, ``<65``."""
    nums = [int(x) for x in _NUM.findall(group)]
    if len(nums) == 2 and nums[0] <= nums[1]:
        return nums[0], nums[1]
    if len(nums) != 1:
        return None
    (a,) = nums
    if _UPPER_OPEN.search(group):
        hi = a if ("=" in group or "≤" in group) else a - 1
        return max(0, hi - open_span + 1), hi
    if _LOWER_OPEN.search(group):
        lo = a + 1 if (">" in group and "=" not in group) else a
        return lo, lo + open_span - 1
    return a, a


class HasBounds(Protocol):
    """Anything with inclusive age bounds and a sex (graph rows, engine profiles)."""

    @property
    def min_age(self) -> int | None: ...
    @property
    def max_age(self) -> int | None: ...
    @property
    def sex(self) -> str | None: ...


def intersect_bounds(*bounds: HasBounds | None) -> tuple[int | None, int | None, str | None]:
    """The intersection of age bounds and sexes (a sex conflict gives ``"none"``)."""
    lo: int | None = None
    hi: int | None = None
    sex: str | None = None
    for b in bounds:
        if b is None:
            continue
        if b.min_age is not None:
            lo = b.min_age if lo is None else max(lo, b.min_age)
        if b.max_age is not None:
            hi = b.max_age if hi is None else min(hi, b.max_age)
        if b.sex is not None:
            sex = b.sex if sex in (None, b.sex) else "none"
    return lo, hi, sex


# ---------------------------------------------------------------------------- slots

#: Surface-form slots and their text for a female, a male and an unknown-sex patient.
SLOTS: dict[str, tuple[str, str, str]] = {
    "subject": ("she", "he", "the patient"),
    "object": ("her", "him", "the patient"),
    "possessive": ("her", "his", "the patient's"),
    "reflexive": ("herself", "himself", "themselves"),
    "spouse": ("husband", "wife", "spouse"),
}
#: ``{relative}``: the spouse word from age 18 at the visit, else ``parent``.
RELATIVE_SLOT = "relative"
ADULT_AGE = 18
SLOT_NAMES = frozenset(SLOTS) | {RELATIVE_SLOT}
_SLOT = re.compile(r"\{([^{}]*)\}")
_GENDERED = frozenset(
    {"he", "him", "his", "himself", "she", "her", "hers", "herself", "wife", "husband"}
)
_WORD = re.compile(r"[A-Za-z]+")


def slot_names(text: str) -> list[str]:
    """The slot names of ``text`` as written (``{Subject}`` gives ``Subject``)."""
    return _SLOT.findall(text)


def _slot_error(name: str) -> str | None:
    if name.lower() in SLOT_NAMES and name in (name.lower(), name.lower().capitalize()):
        return None
    return f"unknown slot {{{name}}}; allowed: " + ", ".join(f"{{{s}}}" for s in sorted(SLOT_NAMES))


def gendered_words(text: str) -> list[str]:
    """Words of ``text`` outside slots that imply the patient's sex."""
    bare = _SLOT.sub(" ", text)
    return [w for w in (m.group().lower() for m in _WORD.finditer(bare)) if w in _GENDERED]


# ---------------------------------------------------------------------------- persona cells

StratumRow = tuple[str, str, float]  # (attribute, value, share); joint: "a&b", "x&y"
JOINT = "&"


def persona_cells(rows: Iterable[StratumRow]) -> list[tuple[dict[str, str], float]]:
    """Every combination of attribute values with its probability under the sampler's chain.

    Tables are taken joint-first (most attributes first, then by name); a table whose
    attributes are already covered is skipped; a later table is conditioned on the values
    already drawn (its rows that match, renormalised; the whole table when none match).
    """
    by_attr: dict[str, list[tuple[tuple[str, ...], float]]] = defaultdict(list)
    for attribute, value, share in rows:
        by_attr[attribute].append((tuple(value.split(JOINT)), share))
    order = sorted(by_attr, key=lambda a: (-len(a.split(JOINT)), a))
    tables: list[tuple[list[str], list[tuple[tuple[str, ...], float]]]] = []
    covered: set[str] = set()
    for attr in order:
        names = attr.split(JOINT)
        if len(names) == 1 and names[0] in covered:
            continue
        total = sum(s for _, s in by_attr[attr])
        if total <= 0:
            continue
        tables.append((names, [(v, s / total) for v, s in by_attr[attr]]))
        covered.update(names)
    cells: list[tuple[dict[str, str], float]] = [({}, 1.0)]
    for names, table in tables:
        nxt = []
        for known, p in cells:
            match = [
                (v, s)
                for v, s in table
                if all(known.get(n, piece) == piece for n, piece in zip(names, v, strict=True))
            ]
            if not match or sum(s for _, s in match) <= 0:
                match = table
            z = sum(s for _, s in match)
            for v, s in match:
                nxt.append(({**known, **dict(zip(names, v, strict=True))}, p * s / z))
        merged: dict[tuple[tuple[str, str], ...], float] = defaultdict(float)
        for cell, p in nxt:
            merged[tuple(sorted(cell.items()))] += p
        cells = [(dict(k), p) for k, p in merged.items()]
    return cells


def stratum_matches(cell: dict[str, str], attribute: str, value: str) -> bool:
    names, pieces = attribute.split(JOINT), value.split(JOINT)
    return all(cell.get(n) == v for n, v in zip(names, pieces, strict=False))


def solved_rest_rate(
    cells: Sequence[tuple[dict[str, str], float]],
    overall: float,
    cited: Sequence[tuple[str, str, float]],
) -> tuple[float | None, float]:
    """The rate of the persona cells no cited stratum covers, so the marginal is ``overall``.

    ``cited`` are (attribute, value, rate) of the stratum rows; a cell takes the rate of its
    most specific matching row. Returns (the solved rate, or None when the cited strata
    cover every cell; the population share of the uncovered cells).
    """
    covered_mass = 0.0
    covered_sum = 0.0
    for cell, p in cells:
        best: tuple[int, float] | None = None
        for attribute, value, rate in cited:
            level = len(attribute.split(JOINT))
            if stratum_matches(cell, attribute, value) and (best is None or level > best[0]):
                best = (level, rate)
        if best is not None:
            covered_mass += p
            covered_sum += p * best[1]
    rest = 1.0 - covered_mass
    if rest <= 1e-12:
        return None, 0.0
    return (overall - covered_sum) / rest, rest


# ---------------------------------------------------------------------------- rules

Item = Entity | Relationship


def _disease_windows(batch: GraphBatch) -> dict[str, list[TrajectoryWindow]]:
    windows = batch.nodes.get("TrajectoryWindow", {})
    out: dict[str, list[TrajectoryWindow]] = defaultdict(list)
    for rel in batch.rels.get("HAS_WINDOW", {}).values():
        w = windows.get(rel.end)
        if isinstance(w, TrajectoryWindow):
            out[rel.start].append(w)
    for ws in out.values():
        ws.sort(key=lambda w: (w.order, w.id))
    return out


def _presents(batch: GraphBatch) -> dict[str, dict[str, Presents]]:
    out: dict[str, dict[str, Presents]] = defaultdict(dict)
    for rel in batch.rels.get("PRESENTS", {}).values():
        if isinstance(rel, Presents):
            out[rel.start][rel.end] = rel
    return out


def frequency_classes(batch: GraphBatch) -> list[Problem]:
    """A PRESENTS weight lies in its ``frequency_class``'s range."""
    problems = []
    for rel in batch.rels.get("PRESENTS", {}).values():
        if not isinstance(rel, Presents) or rel.weight is None or rel.frequency_class is None:
            continue
        lo, hi, _ = FREQUENCY_CLASSES[rel.frequency_class]
        ok = rel.weight == 1.0 if rel.frequency_class == "obligate" else lo <= rel.weight < hi
        if not ok or rel.weight <= 0:
            span = "exactly 1" if rel.frequency_class == "obligate" else f"in [{lo}, {hi})"
            problems.append(
                Problem(
                    batch.location_of(rel),
                    "frequency_class",
                    f"PRESENTS {rel.start} -> {rel.end}: weight {rel.weight} is not "
                    f"{rel.frequency_class} (needs a weight {span})",
                )
            )
    return problems


def stages(batch: GraphBatch) -> list[Problem]:
    """Staged diseases name their scale; window stages never fall as time runs on; a window
    observes no symptom beyond its stage."""
    problems = []
    diseases = batch.nodes.get("Disease", {})
    presents = _presents(batch)
    by_disease = _disease_windows(batch)
    staged = {d for d, rels in presents.items() if any(r.stage is not None for r in rels.values())}
    staged |= {d for d, ws in by_disease.items() if any(w.stage is not None for w in ws)}
    for d in sorted(staged):
        disease = diseases.get(d)
        if isinstance(disease, Disease) and disease.stage_scale is None:
            problems.append(
                Problem(
                    batch.location_of(disease),
                    "stage_scale",
                    f"Disease {d} has stages on its PRESENTS or windows but no stage_scale "
                    "naming the scale (e.g. 'FAST (Reisberg 1988)')",
                )
            )
    for d, ws in sorted(by_disease.items()):
        staged_ws = [w for w in ws if w.stage is not None]
        for a, b in itertools.pairwise(staged_ws):
            if b.stage is not None and a.stage is not None and b.stage < a.stage:
                problems.append(
                    Problem(
                        batch.location_of(b),
                        "stage",
                        f"window {b.id} of {d} reaches stage {b.stage}, below the stage "
                        f"{a.stage} of the earlier window {a.id}",
                    )
                )
        for w in ws:
            for rel in batch.rels.get("OBSERVES", {}).values():
                p = presents[d].get(rel.end) if rel.start == w.id else None
                if p is not None and not stage_allows(p.stage, w.stage):
                    problems.append(
                        Problem(
                            batch.location_of(rel),
                            "end",
                            f"window {w.id} (stage {w.stage}) observes {rel.end}, which "
                            f"{d} shows from stage {p.stage} only",
                        )
                    )
    return problems


def windows_drawable(batch: GraphBatch) -> list[Problem]:
    """Every category a window gives a share has a symptom drawable at the window's stage."""
    problems = []
    categories = batch.nodes.get("SymptomCategory", {})
    in_cat: dict[str, set[str]] = defaultdict(set)
    in_cat_of: dict[str, set[str]] = defaultdict(set)
    for rel in batch.rels.get("IN_CATEGORY", {}).values():
        in_cat[rel.end].add(rel.start)
        in_cat_of[rel.start].add(rel.end)
    presents = _presents(batch)
    observes: dict[str, list[Relationship]] = defaultdict(list)
    for rel in batch.rels.get("OBSERVES", {}).values():
        observes[rel.start].append(rel)
    for d, ws in sorted(_disease_windows(batch).items()):
        if not any(in_cat_of.get(s) for s in presents[d]):
            continue  # the symptoms' categories are not in view (a partial load)
        observed = {
            r.end
            for w in ws
            for r in observes[w.id]
            if r.end not in categories and r.end not in presents[d]
        }
        for w in ws:
            for rel in observes[w.id]:
                if rel.end not in categories or getattr(rel, "frequency", 0.0) <= 0:
                    continue
                members = in_cat[rel.end]
                drawable = [
                    s
                    for s in members
                    if s in observed
                    or (s in presents[d] and stage_allows(presents[d][s].stage, w.stage))
                ]
                if not drawable:
                    why = " at its stage" if w.stage is not None else ""
                    problems.append(
                        Problem(
                            batch.location_of(rel),
                            "frequency",
                            f"window {w.id} gives category {rel.end} a share of "
                            f"{getattr(rel, 'frequency', 0.0):.4g} but {d} has no symptom of "
                            f"that category to draw{why}",
                        )
                    )
    return problems


def keyword_densities(batch: GraphBatch) -> list[Problem]:
    """A disease's windows carry ``keyword_density`` all or none."""
    problems = []
    for d, ws in sorted(_disease_windows(batch).items()):
        have = [w for w in ws if w.keyword_density is not None]
        if have and len(have) < len(ws):
            missing = [w for w in ws if w.keyword_density is None]
            problems.append(
                Problem(
                    batch.location_of(missing[0]),
                    "keyword_density",
                    f"windows of {d} without keyword_density: "
                    + ", ".join(w.id for w in missing)
                    + " (give it to every window of the disease or to none)",
                )
            )
    return problems


def surface_slots(batch: GraphBatch) -> list[Problem]:
    """Slots name known persona words and appear in synonyms only; gendered words outside
    slots are warnings (they contradict half of the personas)."""
    problems = []
    for node in batch.nodes.get("Symptom", {}).values():
        if not isinstance(node, Symptom):
            continue
        loc = batch.location_of(node)
        if slot_names(node.name) or "{" in node.name or "}" in node.name:
            problems.append(
                Problem(loc, "name", f"Symptom {node.id}: the name must be neutral text, no slots")
            )
        for i, form in enumerate(node.synonyms):
            if form.count("{") != form.count("}") or _SLOT.sub("", form).count("{"):
                problems.append(
                    Problem(
                        loc, f"synonyms.{i}", f"Symptom {node.id}: unbalanced braces in {form!r}"
                    )
                )
                continue
            for name in slot_names(form):
                if (err := _slot_error(name)) is not None:
                    problems.append(Problem(loc, f"synonyms.{i}", f"Symptom {node.id}: {err}"))
        for field, text in [("name", node.name)] + [
            (f"synonyms.{i}", f) for i, f in enumerate(node.synonyms)
        ]:
            if words := gendered_words(text):
                problems.append(
                    Problem(
                        loc,
                        field,
                        f"Symptom {node.id}: {text!r} implies the patient's sex "
                        f"({', '.join(words)}); write it neutrally or with slots such as "
                        "{subject}, {possessive}, {spouse}",
                        WARNING,
                    )
                )
    return problems


def _age_strata(batch: GraphBatch) -> dict[str, list[tuple[str, tuple[int, int] | None]]]:
    strata = batch.nodes.get("Stratum", {})
    out: dict[str, list[tuple[str, tuple[int, int] | None]]] = defaultdict(list)
    for rel in batch.rels.get("PREVALENCE", {}).values():
        s = strata.get(rel.end)
        if s is None:
            continue
        names = getattr(s, "attribute", "").split(JOINT)
        pieces = getattr(s, "value", "").split(JOINT)
        for n, v in zip(names, pieces, strict=False):
            if n in ("age_group", "age"):
                out[rel.start].append((v, age_range(v)))
    return out


def _sex_values(batch: GraphBatch) -> dict[str, set[str]]:
    strata = batch.nodes.get("Stratum", {})
    out: dict[str, set[str]] = defaultdict(set)
    for rel in batch.rels.get("PREVALENCE", {}).values():
        s = strata.get(rel.end)
        if s is None:
            continue
        for n, v in zip(
            getattr(s, "attribute", "").split(JOINT),
            getattr(s, "value", "").split(JOINT),
            strict=False,
        ):
            if n == "sex":
                out[rel.start].add(v)
    return out


def restrictions(batch: GraphBatch) -> list[Problem]:
    """Age and sex restrictions of a disease and its codes leave some persona to draw."""
    problems = []
    diseases = batch.nodes.get("Disease", {})
    ages = _age_strata(batch)
    sexes = _sex_values(batch)
    items: list[tuple[str, Item, Bounded | None, Bounded | None]] = []
    for node in diseases.values():
        if isinstance(node, Disease):
            items.append((node.id, node, node, None))
    for rel in batch.rels.get("CODED_AS", {}).values():
        disease = diseases.get(rel.start)
        if isinstance(rel, Bounded) and isinstance(disease, Disease):
            items.append((rel.start, rel, disease, rel))
    for d, item, a, b in items:
        lo, hi, sex = intersect_bounds(a, b)
        what = (
            f"{item.label} {item.id}"
            if isinstance(item, Entity)
            else (f"{item.type} {item.start} -> {item.end}")
        )
        if lo is None and hi is None and sex is None:
            continue
        if lo is not None and hi is not None and lo > hi:
            problems.append(
                Problem(batch.location_of(item), "min_age", f"{what}: ages {lo}-{hi} are empty")
            )
            continue
        groups = ages.get(d, [])
        if (
            (lo is not None or hi is not None)
            and groups
            and not any(
                r is not None and (lo is None or r[1] >= lo) and (hi is None or r[0] <= hi)
                for _, r in groups
            )
        ):
            shown = ", ".join(v for v, _ in groups)
            problems.append(
                Problem(
                    batch.location_of(item),
                    "max_age" if hi is not None else "min_age",
                    f"{what}: no age stratum of {d} ({shown}) overlaps ages "
                    f"{lo if lo is not None else 0}-{hi if hi is not None else 'any'}; "
                    "add one (PREVALENCE to an age_group Stratum)",
                )
            )
        if sex == "none" or (sex is not None and sexes.get(d) and sex not in sexes[d]):
            problems.append(
                Problem(
                    batch.location_of(item),
                    "sex",
                    f"{what}: sex restriction leaves no sex stratum of {d} to draw",
                )
            )
    return problems


def core_criteria(batch: GraphBatch) -> list[Problem]:
    """A core-criterion symptom is one the disease PRESENTS."""
    presents = _presents(batch)
    return [
        Problem(
            batch.location_of(rel),
            "end",
            f"CORE_CRITERION {rel.start} -> {rel.end} (group {getattr(rel, 'group', '')!r}): "
            f"{rel.end} is not a PRESENTS symptom of {rel.start}",
        )
        for rel in batch.rels.get("CORE_CRITERION", {}).values()
        if presents.get(rel.start) and rel.end not in presents[rel.start]
    ]


def risk_tables(batch: GraphBatch) -> list[Problem]:
    """Where an overall and stratum rates are cited, the solved rate of the remaining
    persona cells lies in [0, 1]."""
    strata = batch.nodes.get("Stratum", {})
    rows: dict[str, list[StratumRow]] = defaultdict(list)
    for rel in batch.rels.get("PREVALENCE", {}).values():
        s = strata.get(rel.end)
        if s is not None:
            rows[rel.start].append(
                (getattr(s, "attribute", ""), getattr(s, "value", ""), getattr(rel, "share", 0.0))
            )
    groups: dict[tuple[str, str], list[Relationship]] = defaultdict(list)
    for rel in batch.rels.get("RISK", {}).values():
        groups[(rel.start, rel.end)].append(rel)
    problems = []
    for (d, factor), rels in sorted(groups.items()):
        overall = [r for r in rels if getattr(r, "stratum", None) is None]
        cited = []
        for r in rels:
            sid = getattr(r, "stratum", None)
            s = strata.get(sid) if sid else None
            if s is not None:
                cited.append(
                    (
                        getattr(s, "attribute", ""),
                        getattr(s, "value", ""),
                        getattr(r, "prevalence", 0.0),
                    )
                )
        if not overall or not cited or not rows[d]:
            continue
        total = getattr(overall[0], "prevalence", 0.0)
        rate, mass = solved_rest_rate(persona_cells(rows[d]), total, cited)
        if rate is not None and not -1e-9 <= rate <= 1 + 1e-9:
            problems.append(
                Problem(
                    batch.location_of(overall[0]),
                    "prevalence",
                    f"RISK {d} -> {factor}: overall {total:.4g} cannot hold with the stratum "
                    f"rates given: the remaining {mass:.1%} of the population would need "
                    f"{rate:.4g}",
                )
            )
    return problems


#: The numbers of each row kind that ``status`` covers.
NUMBER_FIELDS: dict[str, tuple[str, ...]] = {
    "Disease": ("prevalence", "min_age", "max_age"),
    "Symptom": ("min_age", "max_age"),
    "TrajectoryWindow": ("start_months", "end_months", "weight", "keyword_density", "stage"),
    "CODED_AS": ("min_age", "max_age"),
    "PRESENTS": ("weight", "stage"),
    "OBSERVES": ("frequency",),
    "PREVALENCE": ("share",),
    "RISK": ("prevalence",),
}


Rule = Callable[[GraphBatch], list[Problem]]
RULES: tuple[Rule, ...] = (
    frequency_classes,
    stages,
    windows_drawable,
    keyword_densities,
    surface_slots,
    restrictions,
    core_criteria,
    risk_tables,
)


def check(batch: GraphBatch) -> list[Problem]:
    """Every coherence rule over ``batch`` taken as the whole graph."""
    return [p for rule in RULES for p in rule(batch)]
