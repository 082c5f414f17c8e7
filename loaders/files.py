"""Read input files of any supported kind into raw items, by suffix (and content for .ttl)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from kg.batch import GraphBatch, Location, Problem, RawItem, parse_items
from loaders.csv_admin import read_csv
from loaders.obo import read_obo
from loaders.owl import parse_rdf, rdf_format, read_owl_graph
from loaders.textfile import display_name, read_text
from loaders.turtle import is_kgsynth_rdf, rdf_items
from loaders.yaml_seed import read_seed

SEED_SUFFIXES = (".yaml", ".yml", ".json")
RDF_SUFFIXES = (".ttl", ".owl", ".rdf", ".xml", ".nt", ".n3", ".jsonld")
SUFFIXES = (*SEED_SUFFIXES, ".csv", ".obo", *RDF_SUFFIXES)


def read_rdf(path: Path) -> tuple[list[RawItem], list[Problem]]:
    """Our own Turtle export, or an OWL ontology in any RDF syntax rdflib reads."""
    name = display_name(path)
    text, problems = read_text(path)
    if text is None:
        return [], problems
    graph, problems = parse_rdf(text, name, rdf_format(path))
    if graph is None:
        return [], problems
    if is_kgsynth_rdf(graph):
        return rdf_items(graph, text, name)
    return read_owl_graph(graph, text, name)


def read_path(path: Path) -> tuple[list[RawItem], list[Problem]]:
    """Raw items from one file, or from every supported file in a directory (sorted).

    Each item names its module: a seed file's ``module:``, else the file's stem.
    """
    if path.is_dir():
        items: list[RawItem] = []
        problems: list[Problem] = []
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            problems.append(
                Problem(
                    Location(display_name(path)),
                    "",
                    f"no loadable files ({', '.join(SUFFIXES)}) in the directory",
                )
            )
        for file in files:
            more, found = read_path(file)
            items += more
            problems += found
        return items, problems
    if not path.exists():
        return [], [Problem(Location(display_name(path)), "", "no such file or directory")]
    items, problems = _read_file(path)
    return [i if i.module else replace(i, module=path.stem) for i in items], problems


def _read_file(path: Path) -> tuple[list[RawItem], list[Problem]]:
    suffix = path.suffix.lower()
    if suffix in SEED_SUFFIXES:
        return read_seed(path)
    if suffix == ".csv":
        return read_csv(path)
    if suffix == ".obo":
        return read_obo(path)
    if suffix in RDF_SUFFIXES:
        return read_rdf(path)
    return [], [
        Problem(
            Location(display_name(path)),
            "",
            f"unsupported file type {suffix!r}; "
            f"use one of {', '.join(SUFFIXES)} or a directory of them",
        )
    ]


def read_paths(paths: Iterable[Path]) -> tuple[GraphBatch, list[Problem]]:
    """Every file read and validated together: one batch, every problem found."""
    items: list[RawItem] = []
    problems: list[Problem] = []
    for path in paths:
        more, found = read_path(path)
        items += more
        problems += found
    batch, found = parse_items(items)
    return batch, problems + found
