"""The accept step of generation: privacy n-grams, near-duplicates, diagnosis leakage.

Pure functions of text and corpora: no model, no graph driver. ``Gate`` holds the three
checks; the runner calls it on every answer before a record is written.
"""

from engine.gate.gate import Gate, GateConfig, regeneration_seed
from engine.gate.leakage import LeakageTerms
from engine.gate.reference import ReferenceDoc, load_reference
from engine.gate.verdict import CHECKS, Check, GateCounts, Rejection

__all__ = [
    "CHECKS",
    "Check",
    "Gate",
    "GateConfig",
    "GateCounts",
    "LeakageTerms",
    "ReferenceDoc",
    "Rejection",
    "load_reference",
    "regeneration_seed",
]
