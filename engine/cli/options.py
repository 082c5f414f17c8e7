"""Command-line options shared by ``plan`` and ``generate`` (what to plan for)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from engine.errors import EngineError
from engine.plan import PlanRequest
from engine.thin import ThinPolicy
from kg.coverage import DEFAULT_MIN_WEIGHTED, ENV_MIN_WEIGHTED
from kg.coverage import min_weighted_symptoms as min_weighted_setting


class Weighting(StrEnum):
    prevalence = "prevalence"
    log_frequency = "log-frequency"
    uniform = "uniform"


IcdOpt = Annotated[str | None, typer.Option(help="ICD-10-CM code(s), comma-separated.")]
DiseaseOpt = Annotated[list[str] | None, typer.Option(help="Disease id or name (repeatable).")]
ByPrevalenceOpt = Annotated[
    bool, typer.Option("--by-prevalence", help="Draw codes by the graph's prevalence.")
]
WeightingOpt = Annotated[Weighting, typer.Option(help="Code weighting for --by-prevalence.")]
PopulationOpt = Annotated[
    str | None,
    typer.Option(
        help="--by-prevalence: convert every prevalence figure into expected patients in this "
        "population (id, name or synonym of a Population node, e.g. 'US adults 18+')."
    ),
]
#: The most records one plan or run may hold (docs/reliability.md#limits): a spec is a few
#: KB of JSON, so this is already tens of GB; split bigger jobs into runs with other seeds.
MAX_RECORDS = 10_000_000
NOpt = Annotated[
    int | None,
    typer.Option(
        "-n",
        "--n",
        min=1,
        max=MAX_RECORDS,
        help=f"Records per code/disease (the total for --by-prevalence); at most {MAX_RECORDS:,}.",
    ),
]
PatientsOpt = Annotated[
    int | None,
    typer.Option(
        "--patients",
        min=1,
        max=MAX_RECORDS,
        help="Plan P patients per code/disease, each a history of visits with one persona "
        "(docs/recipes.md#longitudinal-patients); replaces -n.",
    ),
]
AllowThinOpt = Annotated[
    bool,
    typer.Option(
        "--allow-thin",
        help="Plan for profiles with too few weighted symptoms or no persona figures "
        "(refused by default; see `kgsynth kg coverage`).",
    ),
]
MinWeightedOpt = Annotated[
    int | None,
    typer.Option(
        "--min-weighted-symptoms",
        min=0,
        help=f"Frequency-weighted symptoms a profile needs (default {DEFAULT_MIN_WEIGHTED}; env "
        f"{ENV_MIN_WEIGHTED}, kgsynth.toml [profiles].min_weighted_symptoms).",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Overwrite -o even when it holds another kind of output."),
]


def parse_settings(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` recipe parameters; VALUE is read as JSON when it parses, else a string."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EngineError(f"--set {item!r} must look like KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def plan_request(
    command: str,
    *,
    recipe: str,
    icd: str | None,
    disease: list[str] | None,
    by_prevalence: bool,
    code_weighting: Weighting,
    n: int | None,
    seed: int,
    settings: list[str] | None,
    population: str | None = None,
    allow_thin: bool = False,
    min_weighted_symptoms: int | None = None,
    patients: int | None = None,
) -> PlanRequest:
    """The planner's request from the options; a bad combination is one clear error.

    Thin profiles are refused unless ``allow_thin`` (the threshold: ``min_weighted_symptoms``,
    else the environment or kgsynth.toml, else 5; kg.coverage). ``patients`` replaces ``n``.
    """
    if patients is not None and n is not None:
        raise EngineError(f"{command}: --patients P replaces -n N; give one of them")
    if patients is not None and by_prevalence:
        raise EngineError(
            f"{command}: --patients plans P patients per code or disease; use it with "
            "--icd CODE[,CODE] or --disease NAME, not --by-prevalence"
        )
    n = patients if patients is not None else n
    if n is None:
        raise EngineError(f"{command}: say how many: -n N records or --patients P")
    if n > MAX_RECORDS:
        raise EngineError(
            f"{command}: -n {n:,} is above the limit of {MAX_RECORDS:,} records per run "
            "(see docs/reliability.md#limits); split the job into runs with different --seed"
        )
    try:
        return PlanRequest(
            recipe=recipe,
            icd=tuple(c.strip() for c in icd.split(",") if c.strip()) if icd else (),
            disease=tuple(disease or ()),
            by_prevalence=by_prevalence,
            code_weighting=code_weighting.value,
            population=population,
            n=n,
            patients=patients is not None,
            seed=seed,
            params=parse_settings(settings),
            thin=ThinPolicy(
                min_weighted_symptoms=min_weighted_setting(min_weighted_symptoms),
                allow=allow_thin,
            ),
        )
    except ValidationError as err:
        detail = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        raise EngineError(
            f"{command}: {detail} (--icd CODE[,CODE], --disease NAME or --by-prevalence)"
        ) from None
