"""``kgsynth kg audit``: coherence rules over the whole graph, read once into ``networkx``.

Each rule is a function of a ``GraphView`` and returns findings naming the node (or the
relationship, as ``TYPE start -> end``) and the rule. The view is built from one
``read_graph`` of the store: every allow-listed label and relationship type.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import networkx as nx

from engine.audit.findings import AuditReport, Finding
from engine.audit.gender import gendered_words
from kg.batch import GraphBatch
from kg.coherence import NUMBER_FIELDS, stage_allows
from kg.coverage import DEFAULT_MIN_WEIGHTED, persona_figures
from kg.model import Entity, Presents, Relationship
from kg.resolution import CURATED_PREFIX
from kg.store import GraphStore
from kg.store.writer import read_graph

#: How far a distribution (shares, category frequencies) may sum from 1.
SUM_TOLERANCE = 0.01
HIERARCHIES = ("IS_A", "PARENT_OF")
#: The owner of the numbers of symptoms (their age and sex requirements), for the counts.
SYMPTOMS = "(symptom requirements)"
NO_DISEASE = "(no disease)"
#: Labels whose nodes are referred to by property (``source``), not by relationships.
UNLINKED_LABELS = frozenset({"Source"})
#: Curated numbers of the prevalence and medication model (issue 17), besides NUMBER_FIELDS.
EXTRA_NUMBER_FIELDS: dict[str, tuple[str, ...]] = {
    "OCCURS_IN": ("prevalence",),
    "TREATED_WITH": ("share",),
    "Population": ("size",),
}
POPULATIONS = "(populations)"


def rel_name(rel: Relationship) -> str:
    return f"{rel.type} {rel.start} -> {rel.end}"


class GraphView:
    """The graph as a ``networkx.MultiDiGraph`` (nodes keyed by id, edges keyed by type) plus
    the parsed nodes and relationships it was built from."""

    def __init__(self, batch: GraphBatch) -> None:
        self.batch = batch
        self.numbered: list[tuple[str, str, Entity | Relationship]] | None = None
        self.g: nx.MultiDiGraph = nx.MultiDiGraph()
        for node in batch.iter_nodes():
            self.g.add_node(node.id, label=node.label, item=node)
        for rel in batch.iter_rels():
            self.g.add_edge(rel.start, rel.end, key=rel.type, item=rel)

    def nodes(self, label: str) -> list[Entity]:
        return list(self.batch.nodes.get(label, {}).values())

    def rels(self, rel_type: str) -> list[Relationship]:
        return list(self.batch.rels.get(rel_type, {}).values())

    def out(self, node_id: str, rel_type: str) -> list[Relationship]:
        """``node_id``'s outgoing relationships of ``rel_type``."""
        if node_id not in self.g:
            return []
        return [
            data["item"]
            for _, _, key, data in self.g.out_edges(node_id, keys=True, data=True)
            if key == rel_type
        ]

    def label_of(self, node_id: str) -> str | None:
        data = self.g.nodes.get(node_id)
        return None if data is None or "label" not in data else str(data["label"])

    def prop(self, node_id: str, name: str) -> Any:
        data = self.g.nodes.get(node_id)
        return None if data is None or "item" not in data else getattr(data["item"], name, None)

    def hierarchy(self, rel_type: str) -> nx.DiGraph:
        return nx.DiGraph((r.start, r.end) for r in self.rels(rel_type))


Rule = Callable[[GraphView], list[Finding]]


def cycles(view: GraphView) -> list[Finding]:
    """``IS_A`` and ``PARENT_OF`` are acyclic: one finding per strongly connected knot."""
    out = []
    for rel_type in HIERARCHIES:
        tree = view.hierarchy(rel_type)
        for scc in sorted(nx.strongly_connected_components(tree), key=min):
            if len(scc) == 1 and not tree.has_edge(next(iter(scc)), next(iter(scc))):
                continue
            first = min(scc)
            cycle = nx.find_cycle(tree.subgraph(scc), source=first)
            path = " -> ".join([cycle[0][0], *(e[1] for e in cycle)])
            out.append(Finding(rule="cycle", subject=first, message=f"{rel_type} cycle: {path}"))
    return out


def orphans(view: GraphView) -> list[Finding]:
    """Every node but a ``Source`` (and a sized ``Population``, a target of --population)
    has a relationship; every ``Source`` is cited."""
    items: list[Entity | Relationship] = [*view.batch.iter_nodes(), *view.batch.iter_rels()]
    cited = {i.source for i in items if i.source}
    out = []
    for node_id, data in sorted(view.g.nodes(data=True)):
        label = data.get("label")
        if label in UNLINKED_LABELS:
            if node_id not in cited:
                out.append(
                    Finding(rule="orphan", subject=node_id, message=f"{label} is cited by nothing")
                )
        elif view.g.degree(node_id) == 0 and not (
            label == "Population" and view.prop(node_id, "size") is not None
        ):  # a sized population is a conversion target, named by --population
            out.append(
                Finding(rule="orphan", subject=node_id, message=f"{label} has no relationship")
            )
    return out


def _drawable(view: GraphView, disease: str, window: str) -> dict[str, set[str]]:
    """Category id -> the disease's symptoms drawable in ``window``: PRESENTS symptoms whose
    ``stage`` the window's ``stage`` allows, and symptoms the window itself OBSERVES."""
    window_stage = view.prop(window, "stage")
    symptoms = {
        r.end
        for r in view.out(disease, "PRESENTS")
        if stage_allows(getattr(r, "stage", None), window_stage)
    }
    symptoms |= {o.end for o in view.out(window, "OBSERVES") if view.label_of(o.end) == "Symptom"}
    pool: dict[str, set[str]] = defaultdict(set)
    for s in symptoms:
        for c in view.out(s, "IN_CATEGORY"):
            pool[c.end].add(s)
    return pool


def empty_categories(view: GraphView) -> list[Finding]:
    """A window category with a positive share has a symptom to draw at the window's stage."""
    out = []
    for disease in sorted({r.start for r in view.rels("HAS_WINDOW")}):
        for w in sorted(view.out(disease, "HAS_WINDOW"), key=lambda r: r.end):
            pool = _drawable(view, disease, w.end)
            stage = view.prop(w.end, "stage")
            for o in sorted(view.out(w.end, "OBSERVES"), key=lambda r: r.end):
                share = float(getattr(o, "frequency", 0.0))
                if view.label_of(o.end) == "SymptomCategory" and share > 0 and not pool[o.end]:
                    at = f" at stage {stage}" if stage is not None else ""
                    out.append(
                        Finding(
                            rule="empty-category",
                            subject=w.end,
                            message=f"window of {disease} gives category {o.end} a share of "
                            f"{share:.4g} but no symptom of {disease} in it is drawable{at}",
                        )
                    )
    return out


def _sum_finding(subject: str, what: str, rels: list[Relationship], field: str) -> list[Finding]:
    total = sum(float(getattr(r, field, 0.0)) for r in rels)
    if abs(total - 1.0) <= SUM_TOLERANCE:
        return []
    return [
        Finding(
            rule="share-sum",
            subject=subject,
            message=f"{what} sum to {total:.4g}, not 1 (±{SUM_TOLERANCE}) over {len(rels)} rows",
        )
    ]


def share_sums(view: GraphView) -> list[Finding]:
    """``PREVALENCE`` shares per disease and attribute, ``OBSERVES`` category frequencies per
    window and scheme, each sum to 1."""
    prevalence: dict[tuple[str, str], list[Relationship]] = defaultdict(list)
    for rel in view.rels("PREVALENCE"):
        prevalence[(rel.start, str(view.prop(rel.end, "attribute")))].append(rel)
    observed: dict[tuple[str, str], list[Relationship]] = defaultdict(list)
    for rel in view.rels("OBSERVES"):
        if view.label_of(rel.end) == "SymptomCategory":
            observed[(rel.start, str(view.prop(rel.end, "scheme")))].append(rel)
    out = []
    for (disease, attribute), rels in sorted(prevalence.items()):
        out += _sum_finding(disease, f"PREVALENCE shares over {attribute!r}", rels, "share")
    for (window, scheme), rels in sorted(observed.items()):
        out += _sum_finding(window, f"OBSERVES frequencies over {scheme!r}", rels, "frequency")
    return out


def gendered_forms(view: GraphView) -> list[Finding]:
    """No symptom surface form (name or synonym) is gendered outside a persona slot."""
    out = []
    for s in sorted(view.nodes("Symptom"), key=lambda n: n.id):
        for form in [getattr(s, "name", ""), *getattr(s, "synonyms", [])]:
            words = gendered_words(form)
            if words:
                out.append(
                    Finding(
                        rule="gendered-form",
                        subject=s.id,
                        message=f"surface form {form!r} says {', '.join(words)} without a slot",
                    )
                )
    return out


def _numbered(view: GraphView) -> list[tuple[str, str, Entity | Relationship]]:
    """(owner, subject, row) of every row carrying a curated number (``NUMBER_FIELDS``).

    The owner is the disease the number describes (a window's and its OBSERVES' owner is the
    disease that HAS it), or ``SYMPTOMS`` for a symptom's own requirements. Computed once per
    view."""
    if view.numbered is not None:
        return view.numbered
    owner = {r.end: r.start for r in view.rels("HAS_WINDOW")}
    out: list[tuple[str, str, Entity | Relationship]] = []
    for kind, fields in {**NUMBER_FIELDS, **EXTRA_NUMBER_FIELDS}.items():
        for node in view.nodes(kind):
            if any(getattr(node, f, None) is not None for f in fields):
                owners = {"Disease": node.id, "Symptom": SYMPTOMS, "Population": POPULATIONS}
                disease = owners.get(kind, owner.get(node.id))
                out.append((disease or NO_DISEASE, node.id, node))
        for rel in view.rels(kind):
            if any(getattr(rel, f, None) is not None for f in fields):
                disease = owner.get(rel.start) if kind == "OBSERVES" else rel.start
                out.append((disease or NO_DISEASE, rel_name(rel), rel))
    view.numbered = out
    return out


def unsourced_numbers(view: GraphView) -> list[Finding]:
    """Every curated number says how it stands to its source (``status``); a ``measured``
    one cites a source; a cited source is a ``Source`` node."""
    sources = view.batch.nodes.get("Source", {})
    out = []
    for _, subject, item in _numbered(view):
        status = getattr(item, "status", None)
        problem = None
        if status is None:
            problem = "carries numbers without status (measured or estimate)"
        elif item.source is None and status == "measured":
            problem = "is measured but cites no source"
        elif item.source is not None and item.source not in sources:
            problem = f"cites {item.source!r}, which is not a Source node"
        if problem:
            out.append(Finding(rule="unsourced-number", subject=subject, message=problem))
    return out


def evidence_basis(view: GraphView) -> list[Finding]:
    """A measured number says where in the source it is, an estimate its basis (``remarks``)."""
    return [
        Finding(
            rule="evidence-basis",
            subject=subject,
            message=f"is {status} but has no remarks ("
            + ("table/page in the source" if status == "measured" else "the basis of the estimate")
            + ")",
        )
        for _, subject, item in _numbered(view)
        if (status := getattr(item, "status", None)) is not None
        and not (item.remarks or "").strip()
    ]


def prevalence_populations(view: GraphView) -> list[Finding]:
    """Notes every ``Disease.prevalence`` that is not a figure over a stated population (no
    ``OCCURS_IN`` of the disease with that prevalence): ``--by-prevalence`` can mix it with
    no other figure (docs/recipes.md#populations-and-prevalence)."""
    out = []
    for d in sorted(view.nodes("Disease"), key=lambda n: n.id):
        value = getattr(d, "prevalence", None)
        if value is None:
            continue
        figures = [float(getattr(r, "prevalence", -1.0)) for r in view.out(d.id, "OCCURS_IN")]
        if not any(abs(f - value) < 1e-12 for f in figures):
            out.append(
                Finding(
                    rule="prevalence-population",
                    subject=d.id,
                    message=f"prevalence {value:g} has no population: add an OCCURS_IN to the "
                    "Population it counts, with its measure (point, past_year, lifetime)",
                    severity="note",
                )
            )
    return out


def evidence_counts(view: GraphView) -> dict[str, dict[str, int]]:
    """Per disease: how many numbered rows are measured, estimate, or without status."""
    counts: dict[str, dict[str, int]] = {}
    for disease, _, item in _numbered(view):
        row = counts.setdefault(disease, {"measured": 0, "estimate": 0, "no status": 0})
        row[getattr(item, "status", None) or "no status"] += 1
    return dict(sorted(counts.items()))


def thin_profiles(view: GraphView) -> list[Finding]:
    """A curated disease with symptoms has at least ``DEFAULT_MIN_WEIGHTED`` weighted ones and
    age and sex shares; otherwise ``plan`` refuses it without ``--allow-thin`` (a note)."""
    out = []
    for d in sorted(view.nodes("Disease"), key=lambda n: n.id):
        presents = view.out(d.id, "PRESENTS")
        if not d.id.startswith(CURATED_PREFIX) or not presents:
            continue
        weighted = sum(
            isinstance(r, Presents) and (r.weight is not None or r.frequency_class is not None)
            for r in presents
        )
        attributes = [str(view.prop(r.end, "attribute")) for r in view.out(d.id, "PREVALENCE")]
        age, sex = persona_figures(attributes)
        missing = [
            *([f"{weighted} weighted symptom(s), fewer than {DEFAULT_MIN_WEIGHTED}"]
              if weighted < DEFAULT_MIN_WEIGHTED else []),
            *(["no age shares"] if not age else []),
            *(["no sex shares"] if not sex else []),
        ]  # fmt: skip
        if missing:
            out.append(
                Finding(
                    rule="thin-profile",
                    subject=d.id,
                    message=f"{'; '.join(missing)}: plan refuses it without --allow-thin",
                    severity="note",
                )
            )
    return out


RULES: tuple[Rule, ...] = (
    cycles,
    orphans,
    empty_categories,
    share_sums,
    gendered_forms,
    unsourced_numbers,
    evidence_basis,
    prevalence_populations,
    thin_profiles,
)


def audit_view(view: GraphView) -> AuditReport:
    """Every rule over ``view``."""
    findings = [f for rule in RULES for f in rule(view)]
    return AuditReport(
        kind="graph",
        checked=view.g.number_of_nodes(),
        findings=findings,
        figures={"numbers by status": evidence_counts(view)},
    )


def audit_graph(store: GraphStore) -> AuditReport:
    """Read the graph once and run every rule over it."""
    return audit_view(GraphView(read_graph(store)))
