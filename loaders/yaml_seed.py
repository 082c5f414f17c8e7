"""The seed file format, in YAML (curated content) and JSON (the export format).

```yaml
kgsynth_seed: 1
module: alzheimers
nodes:
  <Label>: [ {<model fields>}, ... ]
relationships:
  <TYPE>: [ {start: <id>, end: <id>, <model fields>}, ... ]
```

Every row becomes a ``RawItem`` located at the line the row starts on.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import yaml

from kg.batch import GraphBatch, Location, Problem, RawItem
from kg.model import LABELS, REL_TYPES
from loaders.textfile import display_name, read_text

SEED_VERSION = 1
#: Nodes any YAML text may expand to on top of its length (see ``node_budget``).
YAML_MIN_BUDGET = 10_000
TOP_KEYS = ("kgsynth_seed", "module", "nodes", "relationships")


class Located(dict[str, Any]):
    """A mapping read from a file that remembers its line and the lines of its keys."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


# ---------------------------------------------------------------------------- YAML


class _TooBig(Exception):
    """The document expands (through aliases) to more nodes than its budget."""

    def __init__(self, line: int) -> None:
        self.line = line


def _from_yaml(
    node: yaml.Node,
    ctor: yaml.constructor.SafeConstructor,
    name: str,
    problems: list[Problem],
    budget: list[int],
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooBig(node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out = Located(node.start_mark.line + 1)
        for key_node, value_node in node.value:
            key = _from_yaml(key_node, ctor, name, problems, budget)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                problems.append(Problem(Location(name, line), str(key), "keys must be text"))
                continue
            if key in out:
                problems.append(
                    Problem(
                        Location(name, line),
                        key,
                        f"duplicate key (also on line {out.key_lines[key]})",
                    )
                )
                continue
            out[key] = _from_yaml(value_node, ctor, name, problems, budget)
            out.key_lines[key] = line
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_from_yaml(v, ctor, name, problems, budget) for v in node.value]
    return ctor.construct_object(node)


class _Constructor(yaml.constructor.SafeConstructor):
    """YAML 1.1's safe scalars, whatever other libraries did to PyYAML's shared tables
    (lm-format-enforcer, imported by the transformers backend, makes every SafeLoader read
    timestamps as text: a date would then pass as a string where the model wants one)."""

    yaml_constructors: ClassVar[dict[Any, Any]] = {
        **yaml.constructor.SafeConstructor.yaml_constructors,
        "tag:yaml.org,2002:timestamp": yaml.constructor.SafeConstructor.construct_yaml_timestamp,
        "tag:yaml.org,2002:str": yaml.constructor.SafeConstructor.construct_yaml_str,
    }


def node_budget(text: str) -> int:
    """How many nodes a YAML text may expand to: every node takes at least two characters
    of text, so aliases may at most double a file's nodes (bombs stop within the budget)."""
    return len(text) + YAML_MIN_BUDGET


def parse_yaml(text: str, name: str) -> tuple[Any, list[Problem]]:
    """The document with every mapping ``Located``; YAML errors become problems.

    Aliases are expanded within ``node_budget``: an alias bomb ("billion laughs") is one
    problem, found after at most that many nodes.
    """
    problems: list[Problem] = []
    budget = [node_budget(text)]
    try:
        node = yaml.compose(
            text, Loader=yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
        )
        if node is None:
            return None, [Problem(Location(name, 1), "", "the file is empty")]
        ctor = _Constructor()
        return _from_yaml(node, ctor, name, problems, budget), problems
    except _TooBig as err:
        return None, [
            Problem(
                Location(name, err.line),
                "",
                f"YAML aliases expand to more than {node_budget(text):,} values (an alias "
                "bomb?); write the repeated values out or use fewer aliases",
            )
        ]
    except RecursionError:
        return None, [Problem(Location(name, 1), "", "not valid YAML: nested too deeply")]
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 1
        return None, [Problem(Location(name, line), "", f"not valid YAML: {err.problem}")]
    except yaml.YAMLError as err:
        return None, [Problem(Location(name, 1), "", f"not valid YAML: {err}")]


# ---------------------------------------------------------------------------- JSON


# the pure-Python pieces of the json module (not in its type stubs): the C scanner cannot
# report where an object starts
_JSON_OBJECT: Any = getattr(json.decoder, "JSONObject")  # noqa: B009
_PY_SCANNER: Any = getattr(json.scanner, "py_make_scanner")  # noqa: B009


class _LocatedDecoder(json.JSONDecoder):
    """A JSON decoder whose objects are ``Located`` (pure-Python scanner, objects in order)."""

    def __init__(self) -> None:
        super().__init__()
        self._pos = 0
        self._line = 1

        def parse_object(
            s_and_end: tuple[str, int],
            strict: bool,
            scan_once: Any,
            object_hook: Any,
            object_pairs_hook: Any,
            memo: Any = None,
        ) -> Any:
            s, end = s_and_end
            self._line += s.count("\n", self._pos, end)
            self._pos = end
            out = Located(self._line)
            pairs, new_end = _JSON_OBJECT(s_and_end, strict, scan_once, None, list, memo)
            for key, value in pairs:
                out[key] = value
            return out, new_end

        self.parse_object = parse_object
        self.scan_once = _PY_SCANNER(self)


def parse_json(text: str, name: str) -> tuple[Any, list[Problem]]:
    try:
        return _LocatedDecoder().decode(text), []
    except json.JSONDecodeError as err:
        return None, [
            Problem(
                Location(name, err.lineno), "", f"not valid JSON: {err.msg} (column {err.colno})"
            )
        ]
    except RecursionError:
        return None, [Problem(Location(name, 1), "", "not valid JSON: nested too deeply")]


# ---------------------------------------------------------------------------- rows


def _line(value: Any, default: int) -> int:
    return value.line if isinstance(value, Located) else default


def _section(doc: Located, key: str, kind: str, name: str) -> tuple[list[RawItem], list[Problem]]:
    items: list[RawItem] = []
    problems: list[Problem] = []
    section = doc.get(key)
    if section is None:
        return items, problems
    if not isinstance(section, dict):
        problems.append(
            Problem(
                Location(name, doc.line_of(key)),
                key,
                f"must map each {'label' if kind == 'node' else 'type'} to a list of rows",
            )
        )
        return items, problems
    allowed = LABELS if kind == "node" else REL_TYPES
    for group, rows in section.items():
        line = section.line_of(group) if isinstance(section, Located) else doc.line_of(key)
        if group not in allowed:
            what = "label" if kind == "node" else "relationship type"
            problems.append(
                Problem(
                    Location(name, line),
                    f"{key}.{group}",
                    f"unknown {what} {group!r}; allowed: {', '.join(sorted(allowed))}",
                )
            )
            continue
        if not isinstance(rows, list):
            problems.append(
                Problem(Location(name, line), f"{key}.{group}", "must be a list of rows")
            )
            continue
        for row in rows:
            if not isinstance(row, dict):
                problems.append(
                    Problem(
                        Location(name, line),
                        f"{key}.{group}",
                        f"each row must be a mapping of fields, got {row!r:.60}",
                    )
                )
                continue
            items.append(RawItem(kind, group, dict(row), Location(name, _line(row, line))))
    return items, problems


def seed_items(doc: Any, name: str) -> tuple[list[RawItem], list[Problem]]:
    """The rows of a parsed seed document as raw items, plus problems with its shape."""
    if not isinstance(doc, Located):
        return [], [
            Problem(
                Location(name, _line(doc, 1)),
                "",
                f"a seed file is a mapping with the keys {', '.join(TOP_KEYS)}",
            )
        ]
    problems: list[Problem] = []
    if doc.get("kgsynth_seed") != SEED_VERSION:
        problems.append(
            Problem(
                Location(name, doc.line_of("kgsynth_seed")),
                "kgsynth_seed",
                f"must be {SEED_VERSION} (the seed format version), got "
                f"{doc.get('kgsynth_seed')!r}",
            )
        )
    module = doc.get("module")
    if not isinstance(module, str) or not module.strip():
        problems.append(
            Problem(
                Location(name, doc.line_of("module")),
                "module",
                "a module name is required (e.g. module: alzheimers)",
            )
        )
    for key in doc:
        if key not in TOP_KEYS:
            problems.append(
                Problem(
                    Location(name, doc.line_of(key)),
                    key,
                    f"unknown top-level key; allowed: {', '.join(TOP_KEYS)}",
                )
            )
    items: list[RawItem] = []
    for key, kind in (("nodes", "node"), ("relationships", "rel")):
        more, found = _section(doc, key, kind, name)
        items += more
        problems += found
    if isinstance(module, str) and module.strip():
        items = [replace(item, module=module.strip()) for item in items]
    return items, problems


def read_seed(path: Path) -> tuple[list[RawItem], list[Problem]]:
    """Raw items from a seed file, YAML or (by its ``.json`` suffix) JSON."""
    name = display_name(path)
    text, problems = read_text(path)
    if text is None:
        return [], problems
    parse = parse_json if path.suffix.lower() == ".json" else parse_yaml
    doc, problems = parse(text, name)
    if doc is None:
        return [], problems
    items, more = seed_items(doc, name)
    return items, problems + more


# ---------------------------------------------------------------------------- export


def seed_json(batch: GraphBatch, module: str = "export") -> str:
    """``batch`` in the seed shape as JSON, one row per line, in canonical order."""
    canon = batch.canonical()
    lines = ["{", f'  "kgsynth_seed": {SEED_VERSION},', f'  "module": {json.dumps(module)},']
    for key in ("nodes", "relationships"):
        groups = canon[key]
        lines.append(f'  "{key}": {{' + ("" if groups else "},"))
        for g, (group, rows) in enumerate(groups.items()):
            lines.append(f"    {json.dumps(group)}: [")
            for r, row in enumerate(rows):
                sep = "," if r < len(rows) - 1 else ""
                lines.append("      " + json.dumps(row, ensure_ascii=False) + sep)
            lines.append("    ]" + ("," if g < len(groups) - 1 else ""))
        if groups:
            lines.append("  }" + ("," if key == "nodes" else ""))
    if lines[-1].endswith(","):
        lines[-1] = lines[-1][:-1]
    lines.append("}")
    return "\n".join(lines) + "\n"
