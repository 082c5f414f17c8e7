"""``kgsynth kg audit`` (the graph) and ``kgsynth audit SPECS.jsonl`` (planned records).

Both print findings as plain lines (``RULE  SUBJECT  message``) and a summary, or one JSON
document with ``--json``; both exit 1 when there is a violation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.audit.findings import AuditReport
from kg.cli import store_from_context

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
LimitOpt = Annotated[
    int, typer.Option("--limit", min=0, help="Print at most this many findings (plain output).")
]


#: a table of more rows than this prints as its column totals (every row: --json)
MAX_ROWS = 30


def _totals(rows: dict[str, dict[str, int]]) -> str:
    sums: dict[str, int] = {}
    for row in rows.values():
        for k, v in row.items():
            sums[k] = sums.get(k, 0) + v
    return ", ".join(f"{k} {v:,}" for k, v in sums.items())


def _print_figures(figures: dict[str, object], indent: str = "") -> None:
    """Nested figures as indented lines; a table of plain values on one line."""
    for key, value in figures.items():
        rows = value if isinstance(value, dict) else {}
        if len(rows) > MAX_ROWS and all(
            isinstance(r, dict) and all(isinstance(v, int) for v in r.values())
            for r in rows.values()
        ):
            typer.echo(f"{indent}{key}: {len(rows):,} rows, in all {_totals(rows)} (rows: --json)")
        elif isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
            typer.echo(f"{indent}{key}:")
            _print_figures(value, indent + "  ")
        elif isinstance(value, dict):
            typer.echo(f"{indent}{key}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
        else:
            typer.echo(f"{indent}{key}: {value}")


def report(result: AuditReport, as_json: bool, limit: int) -> None:
    """Print ``result``; exit 1 when it holds a violation."""
    violations = result.violations
    if as_json:
        typer.echo(result.to_json())
    else:
        shown = result.findings[:limit]
        for f in shown:
            tag = "" if f.severity == "violation" else " (note)"
            typer.echo(f"{f.rule}{tag}  {f.subject}  {f.message}")
        if len(result.findings) > len(shown):
            typer.echo(f"... {len(result.findings) - len(shown)} more findings (--limit, --json)")
        if result.figures:
            _print_figures(result.figures)
        what = "nodes" if result.kind == "graph" else "records"
        by_rule = ", ".join(f"{rule} {n}" for rule, n in result.counts().items())
        typer.echo(
            f"{result.kind} audit: {result.checked} {what} checked, "
            f"{len(violations)} violations" + (f" ({by_rule})" if by_rule else "")
        )
    if violations:
        raise typer.Exit(1)


def kg_audit(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    limit: LimitOpt = 200,
) -> None:
    """Check the graph's coherence; exit 1 on a violation (docs/audit.md).

    Cycles, orphans, empty categories, share sums, gendered forms, unsourced numbers.
    """
    with store_from_context(ctx) as store:
        from engine.audit.graph import audit_graph  # networkx: only for this command

        result = audit_graph(store)
    report(result, as_json, limit)


def spec_audit(
    ctx: typer.Context,
    specs: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="Specs JSONL (kgsynth plan)."
        ),
    ],
    as_json: JsonOpt = False,
    limit: LimitOpt = 200,
) -> None:
    """Check planned records against the graph; exit 1 on a violation (docs/audit.md).

    Pronoun, stage, age, strata, attribute and core conflicts; alignment figures (TVD).
    """
    with store_from_context(ctx) as store:
        from engine.audit.specs import audit_specs_file

        result = audit_specs_file(store, specs)
    report(result, as_json, limit)


def register(app: typer.Typer, kg_app: typer.Typer) -> None:
    """Add ``audit`` to the root app and ``audit`` to ``kg``."""
    app.command("audit")(spec_audit)
    kg_app.command("audit")(kg_audit)
