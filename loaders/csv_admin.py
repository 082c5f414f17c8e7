"""CSV in the neo4j-admin import header convention, read and written.

Node files: ``id:ID(Label)`` (or ``id:ID`` plus a ``:LABEL`` column, or a file named
``Label.csv``). Relationship files: ``:START_ID(Label)``, ``:END_ID(Label)`` and a
``:TYPE`` column (or a file named ``TYPE.csv``). Other columns are properties, typed by
a suffix: ``weight:float``, ``year:int``, ``billable:boolean``, ``synonyms:string[]``
(array elements separated by ``;``; a literal ``;`` or ``\\`` inside an element is
written ``\\;`` / ``\\\\``). Empty cells are absent values. A file may mix labels
(``:LABEL``), types (``:TYPE``), and even nodes and relationships (a row with an id is a
node, a row with start and end ids a relationship). Problems name the CSV line.
"""

from __future__ import annotations

import csv
import io
import re
import types
import typing
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from kg.batch import GraphBatch, Location, Problem, RawItem
from kg.model import LABELS, NODE_MODELS, REL_MODELS, REL_TYPES, node_props, rel_props
from kg.store.writer import resolve_endpoints
from loaders.textfile import display_name, read_text

ARRAY_DELIMITER = ";"
_SPECIAL = {
    "ID": "id",
    "START_ID": "start",
    "END_ID": "end",
    "LABEL": "label",
    "TYPE": "type",
    "IGNORE": "ignore",
}
_TYPES = {
    "string": "string",
    "int": "int",
    "long": "int",
    "short": "int",
    "byte": "int",
    "float": "float",
    "double": "float",
    "boolean": "boolean",
}
_HEADER_RE = re.compile(
    r"^(?P<name>[^:]*)(?::(?P<kind>[A-Za-z_]+)(?P<array>\[\])?"
    r"(?:\((?P<group>[^)]*)\))?)?$"
)

ColumnRole = Literal["id", "start", "end", "label", "type", "ignore", "prop"]


@dataclass(frozen=True)
class Column:
    """One header cell: what it holds and, for properties, the value type."""

    role: ColumnRole
    name: str = ""
    vtype: str = "string"
    array: bool = False
    group: str | None = None


def parse_header(cells: list[str], name: str) -> tuple[list[Column], list[Problem]]:
    columns: list[Column] = []
    problems: list[Problem] = []
    where = Location(name, 1)
    for cell in cells:
        m = _HEADER_RE.match(cell.strip())
        if m is None:
            problems.append(Problem(where, cell, "not a neo4j-admin header cell (name:type)"))
            columns.append(Column("ignore"))
            continue
        prop, kind, group = m["name"].strip(), m["kind"] or "string", m["group"]
        role = _SPECIAL.get(kind.upper())
        if role is not None:
            if group is not None and group not in LABELS:
                problems.append(
                    Problem(
                        where,
                        cell,
                        f"unknown label {group!r} in the id group; "
                        f"allowed: {', '.join(sorted(LABELS))}",
                    )
                )
            columns.append(Column(role, prop or "id", group=group or None))  # type: ignore[arg-type]
            continue
        vtype = _TYPES.get(kind.lower())
        if vtype is None:
            problems.append(
                Problem(
                    where,
                    cell,
                    f"unsupported type {kind!r}; use one of "
                    f"{', '.join(sorted(_TYPES))} (with [] for arrays)",
                )
            )
            columns.append(Column("ignore"))
            continue
        if not prop:
            problems.append(Problem(where, cell, "a property column needs a name"))
            columns.append(Column("ignore"))
            continue
        columns.append(Column("prop", prop, vtype, bool(m["array"])))
    roles = [c.role for c in columns]
    for role in ("id", "start", "end", "label", "type"):
        if roles.count(role) > 1:  # type: ignore[arg-type]
            problems.append(Problem(where, f":{role.upper()}", "the column appears twice"))
    has_node = "id" in roles
    has_rel = "start" in roles or "end" in roles
    if not has_node and not has_rel:
        problems.append(
            Problem(
                where,
                ":ID",
                "missing column: a node file needs an ':ID' column, "
                "a relationship file ':START_ID' and ':END_ID'",
            )
        )
    if has_rel and ("start" not in roles or "end" not in roles):
        missing = ":START_ID" if "start" not in roles else ":END_ID"
        problems.append(Problem(where, missing, f"missing column {missing}"))
    return columns, problems


def split_array(text: str) -> list[str]:
    """Split on ``;``, honouring ``\\;`` and ``\\\\`` escapes."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == ARRAY_DELIMITER:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _scalar(text: str, vtype: str) -> Any:
    if vtype == "int":
        return int(text)
    if vtype == "float":
        return float(text)
    if vtype == "boolean":
        low = text.strip().lower()
        if low not in ("true", "false"):
            raise ValueError
        return low == "true"
    return text


def _value(text: str, col: Column) -> Any:
    if col.array:
        return [_scalar(part, col.vtype) for part in split_array(text)]
    return _scalar(text, col.vtype)


def _file_group(path: Path) -> str | None:
    stem = path.stem
    return stem if stem in LABELS or stem in REL_TYPES else None


def _row_item(
    row: list[str], columns: list[Column], loc: Location, default: str | None
) -> tuple[RawItem | None, list[Problem]]:
    data: dict[str, Any] = {}
    problems: list[Problem] = []
    label = rtype = None
    node_id = start = end = None
    start_group = end_group = id_group = None
    for cell, col in zip(row, columns, strict=True):
        if col.role == "ignore" or cell == "":
            continue
        if col.role == "label":
            labels = [x.strip() for x in cell.split(ARRAY_DELIMITER) if x.strip()]
            if len(labels) > 1:
                problems.append(Problem(loc, ":LABEL", f"one label per node, got {cell!r}"))
            label = labels[0] if labels else None
        elif col.role == "type":
            rtype = cell.strip()
        elif col.role == "id":
            node_id, id_group = cell, col.group
        elif col.role == "start":
            start, start_group = cell, col.group
        elif col.role == "end":
            end, end_group = cell, col.group
        else:
            try:
                data[col.name] = _value(cell, col)
            except ValueError:
                problems.append(Problem(loc, col.name, f"{cell!r} is not a valid {col.vtype}"))
    if node_id is not None:
        label = label or id_group or (default if default in LABELS else None)
        if label is None:
            return None, [
                Problem(
                    loc,
                    ":LABEL",
                    "no label: add a ':LABEL' column, an "
                    "'id:ID(Label)' group, or name the file Label.csv",
                )
            ]
        data["id"] = node_id
        return RawItem("node", label, data, loc), problems
    if start is None and end is None:
        return None, [
            Problem(
                loc,
                ":ID",
                "empty cell: a node row needs an id, a relationship row a start and an end id",
            )
        ]
    if start is None or end is None:
        missing = ":START_ID" if start is None else ":END_ID"
        return None, [
            Problem(loc, missing, "empty cell: a relationship row needs a start and an end id")
        ]
    rtype = rtype or (default if default in REL_TYPES else None)
    if rtype is None:
        return None, [
            Problem(
                loc, ":TYPE", "no relationship type: add a ':TYPE' column or name the file TYPE.csv"
            )
        ]
    model = REL_MODELS.get(rtype)
    if model is not None:
        for field, group, pos in (("start", start_group, 0), ("end", end_group, 1)):
            if group is not None and group not in {pair[pos] for pair in model.ends}:
                problems.append(
                    Problem(
                        loc,
                        field,
                        f"{rtype} cannot {field} at a {group}; allowed: {list(model.ends)}",
                    )
                )
    data.update(start=start, end=end)
    return RawItem("rel", rtype, data, loc), problems


def read_csv(path: Path) -> tuple[list[RawItem], list[Problem]]:
    """Raw items from one neo4j-admin style CSV file."""
    name = display_name(path)
    text, problems = read_text(path)
    if text is None:
        return [], problems
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    items: list[RawItem] = []
    try:
        header = next(reader, None)
        if header is None:
            return [], [Problem(Location(name, 1), "", "the file is empty")]
        columns, problems = parse_header(header, name)
        if problems:
            return [], problems
        default = _file_group(path)
        line = reader.line_num + 1
        for row in reader:
            loc = Location(name, line)
            line = reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                problems.append(
                    Problem(loc, "", f"the row has {len(row)} fields, the header {len(columns)}")
                )
                continue
            item, found = _row_item(row, columns, loc, default)
            problems += found
            if item is not None:
                items.append(item)
    except csv.Error as err:
        problems.append(Problem(Location(name, reader.line_num), "", f"not valid CSV: {err}"))
    return items, problems


# ---------------------------------------------------------------------------- export


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is typing.Annotated:
        return _unwrap(get_args(annotation)[0])
    return annotation


def _typed_header(field: str, annotation: Any) -> str:
    ann = _unwrap(annotation)
    if get_origin(ann) is list:
        return f"{field}:{_typed_header('', get_args(ann)[0]).lstrip(':') or 'string'}[]"
    suffix = {bool: "boolean", int: "int", float: "float"}.get(ann)
    return f"{field}:{suffix}" if suffix else field


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return ARRAY_DELIMITER.join(
            _cell(v).replace("\\", "\\\\").replace(ARRAY_DELIMITER, "\\" + ARRAY_DELIMITER)
            for v in value
        )
    return str(value)


def write_csv_dir(batch: GraphBatch, out: Path) -> list[Path]:
    """One file per label and per (type, start label, end label); returns the files written.

    The files import with ``neo4j-admin database import full --nodes=... --relationships=...``
    as they are, and with ``kgsynth kg load DIR``.
    """
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def emit(path: Path, header: list[str], rows: list[list[str]]) -> None:
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
        written.append(path)

    for label, bucket in sorted(batch.nodes.items()):
        if not bucket:
            continue
        model = NODE_MODELS[label]
        fields = [f for f in model.model_fields if f != "id"]
        header = [f"id:ID({label})", ":LABEL"] + [
            _typed_header(f, model.model_fields[f].annotation) for f in fields
        ]
        rows = []
        for node in sorted(bucket.values(), key=lambda n: n.id):
            props = node_props(node)
            rows.append([node.id, label] + [_cell(props.get(f)) for f in fields])
        emit(out / f"{label}.csv", header, rows)

    endpoints, _ = resolve_endpoints(batch, None)
    groups: dict[tuple[str, str, str], list[list[str]]] = defaultdict(list)
    for rel in batch.iter_rels():
        start_label, end_label = endpoints.get((rel.type, rel.start, rel.end), ("", ""))
        props = rel_props(rel)
        fields = [f for f in type(rel).model_fields if f not in ("start", "end")]
        groups[(rel.type, start_label, end_label)].append(
            [rel.start, rel.end, rel.type] + [_cell(props.get(f)) for f in fields]
        )
    for (rtype, start_label, end_label), rows in sorted(groups.items()):
        rmodel = REL_MODELS[rtype]
        fields = [f for f in rmodel.model_fields if f not in ("start", "end")]
        start_col = f":START_ID({start_label})" if start_label else ":START_ID"
        end_col = f":END_ID({end_label})" if end_label else ":END_ID"
        header = [start_col, end_col, ":TYPE"] + [
            _typed_header(f, rmodel.model_fields[f].annotation) for f in fields
        ]
        rows.sort(key=lambda r: (r[0], r[1], r[3:]))
        suffix = f".{start_label}-{end_label}" if len(rmodel.ends) > 1 else ""
        emit(out / f"{rtype}{suffix}.csv", header, rows)
    return written
