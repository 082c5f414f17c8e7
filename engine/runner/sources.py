"""Where jobs come from: the planner, or a JSONL file of specs or ready-made jobs.

This module is the runner's only contact with the constraint engine (``engine.plan``,
``engine.recipes``, ``engine.spec``): a spec becomes a job through ``job_from_spec``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.errors import EngineError
from engine.plan import Planner
from engine.recipes import Generation, recipes, render_messages
from engine.runner.records import GenerationJob
from engine.spec import GenerationSpec


@dataclass
class JobSource:
    """Jobs to run, how many, the recipe defaults, output model and provenance with them.

    ``identity`` is what decides the jobs (part of the run identity): the plan request and
    KG hash, or the specs file's sha256 (not its path: a moved file is the same input).
    """

    jobs: Iterator[GenerationJob]
    total: int
    generation: Generation | None
    output: type[BaseModel] | None
    identity: dict[str, Any]
    provenance: dict[str, Any]


def job_from_spec(spec: GenerationSpec) -> GenerationJob:
    """The prompt for ``spec`` rendered by its recipe; the spec travels as provenance."""
    return GenerationJob(
        record_id=spec.record_id,
        record_index=spec.record_index,
        messages=render_messages(spec),
        seed=spec.record_seed,
        spec=spec,
    )


def from_planner(planner: Planner) -> JobSource:
    """Every record the planner plans, in index order."""
    plan = {"plan": planner.request.model_dump(mode="json"), "kg_hash": planner.kg_hash}
    return JobSource(
        jobs=(job_from_spec(spec) for spec in planner.iter_specs()),
        total=planner.total,
        generation=planner.recipe.generation,
        output=planner.recipe.output_model,
        identity=plan,
        provenance=plan,
    )


def _parse_line(path: Path, number: int, line: str) -> GenerationJob:
    try:
        data = json.loads(line)
        if isinstance(data, dict) and "messages" in data:
            return GenerationJob.model_validate(data)
        return job_from_spec(GenerationSpec.model_validate(data))
    except ValueError as err:  # JSONDecodeError and ValidationError are ValueErrors
        if isinstance(err, ValidationError):
            first = err.errors()[0]
            detail = f"{'.'.join(map(str, first['loc'])) or 'line'}: {first['msg']}"
        else:
            detail = str(err)
        raise EngineError(
            f"{path}, line {number}: not a GenerationSpec or job ({detail}); "
            "write specs with `kgsynth plan`"
        ) from None
    except EngineError as err:
        raise EngineError(f"{path}, line {number}: {err}") from None


def _numbered(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as fh:
        yield from ((n, line) for n, line in enumerate(fh, 1) if line.strip())


def from_specs_file(path: Path) -> JobSource:
    """Jobs from JSONL: ``GenerationSpec`` lines (``kgsynth plan``) or job lines with
    ``record_id``, ``record_index``, ``messages`` and optional ``seed`` / ``spec``."""
    try:
        total = sum(1 for _ in _numbered(path))
        first = next(_numbered(path), None)
        with path.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as err:
        raise EngineError(f"--specs {path}: {err.strerror or err}") from None
    if first is None:
        raise EngineError(f"--specs {path} is empty")
    spec = _parse_line(path, *first).spec
    known = recipes().get(spec.recipe) if spec else None
    return JobSource(
        jobs=(_parse_line(path, n, line) for n, line in _numbered(path)),
        total=total,
        generation=known.generation if known else None,
        output=known.output_model if known else None,
        identity={"specs_sha256": digest},
        provenance={"specs": str(path), "specs_sha256": digest},
    )
