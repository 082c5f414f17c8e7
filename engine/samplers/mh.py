"""Mental-health reports: the sections of a psychiatric evaluation report, from the graph."""

from __future__ import annotations

from engine.errors import EngineError
from engine.profile import DiseaseProfile
from engine.spec import Section


def report_sections(profile: DiseaseProfile) -> tuple[Section, ...]:
    """The ``report_section`` guidelines of the disease (else the shared ones), in order."""
    sections = tuple(
        Section(id=g.id, title=g.title, guidance=g.text)
        for g in sorted(profile.report_sections(), key=lambda g: (g.order, g.id))
    )
    if not sections:
        raise EngineError(
            f"{profile.disease} has no report_section guidelines (GUIDED_BY from the disease, or "
            "shared ones not tied to any disease); add them to the seed to use mh_report"
        )
    return sections
