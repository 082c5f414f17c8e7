"""docs/api-reference.md from the service's OpenAPI document (``scripts/api-reference``)."""

from __future__ import annotations

import json
from typing import Any

HEADER = """# API reference

Generated from the service's OpenAPI document by `scripts/api-reference`; do not edit by
hand (`tests/test_docs_site.py` fails when it is out of date). A running server serves the
same document at `/openapi.json` and an interactive page at `/docs`. See
[service.md](service.md) for authentication, jobs and resume.
"""


def _ref(schema: dict[str, Any]) -> str:
    """A schema in a few words: a named model, an array of one, or a JSON type."""
    if "$ref" in schema:
        return (
            f"[{schema['$ref'].rsplit('/', 1)[-1]}](#{schema['$ref'].rsplit('/', 1)[-1].lower()})"
        )
    if "anyOf" in schema:
        return " or ".join(_ref(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_ref(schema.get('items', {}))}"
    return str(schema.get("type", "any"))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _constraints(schema: dict[str, Any]) -> str:
    keys = ("minimum", "maximum", "minLength", "maxLength", "default", "examples")
    return ", ".join(f"{k} {json.dumps(schema[k])}" for k in keys if k in schema)


def render(openapi: dict[str, Any]) -> str:
    """The reference page: every operation, then every schema with its fields."""
    out = [HEADER, f"API version {openapi['info']['version']}.\n", "## Operations\n"]
    for path, methods in openapi["paths"].items():
        for method, op in methods.items():
            out.append(f"### `{method.upper()} {path}`\n")
            summary = op.get("description") or op.get("summary") or ""
            if summary:
                out.append(summary.strip() + "\n")
            if op.get("security"):
                out.append("Needs `Authorization: Bearer <token>` (when tokens are configured).\n")
            params = op.get("parameters", [])
            if params:
                out.append("| parameter | in | type | required | constraints |")
                out.append("|---|---|---|---|---|")
                for p in params:
                    schema = p.get("schema", {})
                    out.append(
                        f"| `{p['name']}` | {p['in']} | {_cell(_ref(schema))} | "
                        f"{'yes' if p.get('required') else 'no'} | {_cell(_constraints(schema))} |"
                    )
                out.append("")
            body = op.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                out.append(f"Request body ({media}): {_ref(content.get('schema', {}))}\n")
            out.append("| status | meaning | body |")
            out.append("|---|---|---|")
            for status, answer in op.get("responses", {}).items():
                kinds = answer.get("content", {})
                shown = ", ".join(
                    f"{m}: {_ref(c.get('schema', {}))}" if c.get("schema") else m
                    for m, c in kinds.items()
                )
                out.append(
                    f"| {status} | {_cell(answer.get('description', ''))} | {_cell(shown)} |"
                )
            out.append("")
    out.append("## Schemas\n")
    for name, schema in sorted(openapi.get("components", {}).get("schemas", {}).items()):
        out.append(f"### {name}\n")
        if schema.get("description"):
            out.append(schema["description"].strip() + "\n")
        props = schema.get("properties", {})
        if props:
            required = set(schema.get("required", []))
            out.append("| field | type | required | constraints | description |")
            out.append("|---|---|---|---|---|")
            for field, spec in props.items():
                out.append(
                    f"| `{field}` | {_cell(_ref(spec))} | {'yes' if field in required else 'no'}"
                    f" | {_cell(_constraints(spec))} | {_cell(spec.get('description', ''))} |"
                )
            out.append("")
    return "\n".join(out).rstrip() + "\n"
