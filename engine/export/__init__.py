"""Exports of generated notes to other formats (FHIR R4)."""
