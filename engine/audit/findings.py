"""What an audit reports: findings (rule + subject + message) and alignment figures."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["violation", "note"]


class Finding(BaseModel):
    """One thing an audit rule found, naming the node or record it is about."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    subject: str
    message: str
    severity: Severity = "violation"


class AuditReport(BaseModel):
    """Findings, how many items were checked, and figures (alignment, evidence counts)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["graph", "specs"]
    checked: int = 0
    findings: list[Finding] = Field(default_factory=list)
    figures: dict[str, Any] = Field(default_factory=dict)

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "violation"]

    def counts(self) -> dict[str, int]:
        """Violations per rule, sorted by rule name."""
        return dict(sorted(Counter(f.rule for f in self.violations).items()))

    def to_json(self) -> str:
        data = self.model_dump(mode="json")
        data["violations"] = len(self.violations)
        data["violations_by_rule"] = self.counts()
        return json.dumps(data, ensure_ascii=False, indent=2)
