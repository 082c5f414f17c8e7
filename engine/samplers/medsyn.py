"""MedSyn's symptom sampling and the weighting of ICD codes within a batch.

Symptoms: ``k ~ Uniform{min_symptoms .. max_symptoms}`` (capped by the symptoms the disease
has), then ``k`` distinct symptoms drawn from ``p_i = softmax(w_i / T)`` over the PRESENTS
weights ``w_i`` without replacement, by Gumbel-top-k: keep the ``k`` largest
``w_i / T + G_i`` with ``G_i`` standard Gumbel noise (the same law as drawing one symptom at a
time from the softmax and renormalising). ``T -> 0`` picks the top weights, large ``T`` tends
to uniform.

Codes: weights from a frequency ``f_c`` per code (the graph's Disease.prevalence):
``prevalence`` ``p_c ∝ f_c``; ``log-frequency`` ``p_c ∝ log(1 + f_c / f_min)`` (flattens the
long tail, as MedSyn does for rare codes; scale-free through ``f_min``, the smallest positive
frequency); ``uniform`` ``p_c = 1 / C``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.errors import EngineError
from engine.profile import DiseaseProfile
from engine.samplers.rng import Stage, stage_uniforms
from engine.samplers.tables import FloatArray, IntArray, gumbel, normalised
from engine.spec import ExampleRef, SymptomRef

CodeWeighting = Literal["prevalence", "log-frequency", "uniform"]


def code_probabilities(freqs: list[float], mode: CodeWeighting) -> FloatArray:
    """Probabilities of drawing each code from its frequency under ``mode``."""
    f = np.asarray(freqs, dtype=np.float64)
    if mode == "uniform":
        return np.full(len(f), 1.0 / len(f))
    if mode == "log-frequency":
        positive = f[f > 0]
        if positive.size == 0:
            raise EngineError("log-frequency weighting needs at least one positive frequency")
        return normalised(np.log1p(np.clip(f, 0.0, None) / positive.min()), "code weights")
    return normalised(f, "code prevalences")


def softmax(weights: FloatArray, temperature: float) -> FloatArray:
    z = weights / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


@dataclass(frozen=True)
class SymptomBatch:
    chosen: list[list[SymptomRef]]


class SymptomSampler:
    """Softmax-with-temperature sampling of a disease's PRESENTS symptoms, vectorised."""

    def __init__(
        self,
        profile: DiseaseProfile,
        temperature: float = 1.0,
        min_symptoms: int = 3,
        max_symptoms: int = 6,
    ) -> None:
        if temperature <= 0:
            raise EngineError(f"symptom temperature must be > 0, got {temperature}")
        if not 1 <= min_symptoms <= max_symptoms:
            raise EngineError("symptoms: need 1 <= min_symptoms <= max_symptoms")
        present = [s for s in profile.symptoms if s.weight is not None]
        if not present:
            raise EngineError(f"{profile.disease} has no symptoms with PRESENTS weights")
        self.refs = [
            SymptomRef(
                id=s.id,
                name=s.name,
                weight=s.weight,
                categories=tuple(c.name for c in s.categories),
            )
            for s in present
        ]
        self.logits = np.array([s.weight for s in present], dtype=np.float64) / temperature
        self.k_low = min(min_symptoms, len(present))
        self.k_high = min(max_symptoms, len(present))
        self.n_uniforms = 1 + len(present)

    def sample(self, run_seed: int, indices: IntArray) -> SymptomBatch:
        n, p = len(indices), len(self.refs)
        u = stage_uniforms(run_seed, indices, Stage.SYMPTOMS, self.n_uniforms)
        k = self.k_low + np.floor(u[:, 0] * (self.k_high - self.k_low + 1)).astype(np.int64)
        keys = self.logits[None, :] + gumbel(u[:, 1 : 1 + p])
        order = np.argsort(-keys, axis=1, kind="stable")[:, : self.k_high]
        return SymptomBatch([[self.refs[j] for j in order[i, : k[i]]] for i in range(n)])


class ExampleSampler:
    """MedSyn's optional example note: with probability ``probability``, one note uniformly."""

    def __init__(self, profile: DiseaseProfile, probability: float = 1.0) -> None:
        self.examples = [
            ExampleRef(id=e.id, origin=e.origin, text=e.text) for e in profile.examples
        ]
        self.probability = probability if self.examples else 0.0

    def sample(self, run_seed: int, indices: IntArray) -> list[tuple[ExampleRef, ...]]:
        u = stage_uniforms(run_seed, indices, Stage.EXAMPLE, 2)
        use = u[:, 0] < self.probability
        pick = np.floor(u[:, 1] * max(len(self.examples), 1)).astype(np.int64)
        return [(self.examples[pick[i]],) if use[i] else () for i in range(len(indices))]
