"""Thin profiles are said, not hidden: plan and generate refuse a profile too thin for the recipe.

A profile is thin for a recipe when the recipe samples symptoms (``symptoms`` or
``trajectory``) and the disease has fewer frequency-weighted symptoms than the threshold,
or when it samples a persona and the disease has no age or sex shares (kg.coverage).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from engine.profile import DiseaseProfile, Target
from engine.recipes import Recipe
from kg.coverage import DEFAULT_MIN_WEIGHTED, Richness, persona_figures


class ThinPolicy(BaseModel):
    """The threshold and whether thin profiles are allowed (``--allow-thin``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_weighted_symptoms: int = Field(default=DEFAULT_MIN_WEIGHTED, ge=0)
    allow: bool = False


def richness(profile: DiseaseProfile) -> Richness:
    """The profile's counts, as ``kg coverage`` reports them."""
    presented = [s for s in profile.symptoms if s.presented]
    age, sex = persona_figures(s.attribute for s in profile.strata)
    return Richness(
        disease_id=profile.disease_id,
        disease=profile.disease,
        symptoms=len(presented),
        weighted=sum(s.frequency is not None for s in presented),
        age=age,
        sex=sex,
        windows=len(profile.windows),
    )


def thin_reason(profile: DiseaseProfile, recipe: Recipe, policy: ThinPolicy) -> str:
    """Why ``profile`` is too thin for ``recipe`` under ``policy`` ("" when it is not)."""
    if policy.allow:
        return ""
    parts = set(recipe.components)
    return richness(profile).shortfall(
        policy.min_weighted_symptoms,
        symptoms=bool(parts & {"symptoms", "trajectory"}),
        persona="persona" in parts,
    )


def target_label(target: Target) -> str:
    """``ICD-10-CM I10 -> Hypertension (DOID:10763)`` for a code request, else the disease."""
    named = f"{target.disease} ({target.disease_id})"
    code = target.resolution.requested if target.resolution else None
    return f"ICD-10-CM {code} -> {named}" if code else named
