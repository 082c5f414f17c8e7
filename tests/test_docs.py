"""The docs stay true to the tree: every named query documented, every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
QUERIES = sorted((REPO / "cypher" / "queries").glob("*.cypher"))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")
MD_MENTION = re.compile(r"(?<![\w/.-])([\w./-]*\w\.md)\b")


def prose(path: Path) -> str:
    """The Markdown text without fenced code blocks (links inside them are examples)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path).splitlines():
        if match := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line):
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def cookbook_rows() -> dict[str, str]:
    """``query name -> parameters cell`` from the cookbook's tables."""
    text = (REPO / "docs" / "cypher-cookbook.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\|\s*`(\w+)`\s*\|([^|]*)\|", text, re.M))


def test_the_docs_and_queries_exist() -> None:
    assert len(DOCS) >= 8 and len(QUERIES) >= 20


@pytest.mark.parametrize("query", QUERIES, ids=lambda p: p.stem)
def test_every_named_query_is_in_the_cookbook_with_its_parameters(query: Path) -> None:
    rows = cookbook_rows()
    assert query.stem in rows, f"docs/cypher-cookbook.md does not list {query.stem}"
    body = "\n".join(
        line for line in query.read_text(encoding="utf-8").splitlines() if not line.startswith("//")
    )
    used = set(re.findall(r"\$(\w+)", body))
    documented = set(re.findall(r"`(\w+)`", rows[query.stem]))
    assert documented == used, f"{query.stem}: cookbook says {documented}, query uses {used}"
    if not used:
        assert rows[query.stem].strip() == "none"


def test_the_cookbook_lists_no_query_that_does_not_exist() -> None:
    assert set(cookbook_rows()) <= {q.stem for q in QUERIES}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in LINK.findall(prose(doc)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target} (no such file: {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{doc.relative_to(REPO)}: broken links: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_markdown_file_named_in_the_text_exists(doc: Path) -> None:
    """``see DESIGN.md`` counts too: a reader looks for the file whether or not it is a link."""
    text = LINK.sub("", prose(doc))
    missing = []
    for name in sorted(set(MD_MENTION.findall(text))):
        candidates = [doc.parent / name, REPO / name, REPO / "docs" / name]
        if not any(c.exists() for c in candidates):
            missing.append(name)
    assert not missing, f"{doc.relative_to(REPO)} names missing files: {missing}"


def test_every_test_the_reliability_doc_cites_exists() -> None:
    """docs/reliability.md names the test holding each guarantee: each must be defined."""
    text = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", text))
    assert len(cited) >= 40
    missing = [
        f"{file}::{name}"
        for file, name in sorted(cited)
        if not (REPO / file).is_file()
        or not re.search(rf"^\s*(?:async )?def {name}\(", (REPO / file).read_text(), re.M)
    ]
    assert not missing, f"docs/reliability.md cites tests that do not exist: {missing}"
