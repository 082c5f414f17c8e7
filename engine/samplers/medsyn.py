"""MedSyn's symptom sampling and the weighting of ICD codes within a batch.

Symptoms: ``k ~ Uniform{min_symptoms .. max_symptoms}`` (capped by the symptoms the disease
has), then ``k`` distinct symptoms drawn from ``p_i = softmax(log f_i / T)`` over the PRESENTS
frequencies ``f_i`` (``UNWEIGHTED_FREQUENCY`` for an association without one) without
replacement, by Gumbel-top-k: keep the ``k`` largest ``log f_i / T + G_i`` with ``G_i``
standard Gumbel noise (the same law as drawing one symptom at a time from the softmax and
renormalising). At ``T = 1`` one draw picks symptom ``i`` with probability
``f_i / sum_j f_j``; ``T -> 0`` picks the most frequent, large ``T`` tends to uniform.
Symptoms whose requirements (age, sex) the persona does not meet are left out before the
draw. Core criteria: each group with no drawn member gets its highest-keyed member (a draw
from the softmax restricted to the group) in place of the lowest-keyed drawn symptom no
group relies on (``engine.samplers.trajectory.meet_core``).

``draw = "frequency"`` (kgsynth's, not MedSyn's): each symptom the persona may have is
included independently with probability ``f_i``, so its inclusion rate is its frequency;
``min_symptoms``, ``max_symptoms`` and ``T`` do not apply and a record may have no symptom.
A core-criterion group with no member included gets its highest-keyed member added (nothing
is replaced), so a member's rate is ``f_i + prod_j (1 - f_j) x softmax_i`` over the group.

Codes: weights from a frequency ``f_c`` per code (the graph's Disease.prevalence):
``prevalence`` ``p_c ∝ f_c``; ``log-frequency`` ``p_c ∝ log(1 + f_c / f_min)`` (flattens the
long tail, as MedSyn does for rare codes; scale-free through ``f_min``, the smallest positive
frequency); ``uniform`` ``p_c = 1 / C``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np

from engine.errors import EngineError
from engine.profile import DiseaseProfile
from engine.samplers.persona import PersonaBatch
from engine.samplers.rng import Stage, stage_uniforms
from engine.samplers.tables import FloatArray, IntArray, gumbel, normalised
from engine.samplers.trajectory import (
    core_groups,
    meet_core,
    requirement_mask,
    symptom_requirements,
)
from engine.spec import ExampleRef, SymptomRef
from kg.coherence import UNWEIGHTED_FREQUENCY

CodeWeighting = Literal["prevalence", "log-frequency", "uniform"]
SymptomDraw = Literal["softmax", "frequency"]


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
    """Softmax-with-temperature sampling over log-frequency of a disease's PRESENTS
    symptoms, vectorised."""

    def __init__(
        self,
        profile: DiseaseProfile,
        temperature: float = 1.0,
        min_symptoms: int = 3,
        max_symptoms: int = 6,
        draw: SymptomDraw = "softmax",
    ) -> None:
        if temperature <= 0:
            raise EngineError(f"symptom temperature must be > 0, got {temperature}")
        if not 1 <= min_symptoms <= max_symptoms:
            raise EngineError("symptoms: need 1 <= min_symptoms <= max_symptoms")
        present = [s for s in profile.symptoms if s.presented]
        if not present:
            raise EngineError(f"{profile.disease} has no PRESENTS symptoms")
        freqs = [s.frequency for s in present]
        self.frequencies = np.array(
            [f if f is not None else UNWEIGHTED_FREQUENCY for f in freqs], dtype=np.float64
        )
        if np.any(self.frequencies <= 0):
            zero = [s.id for s, f in zip(present, self.frequencies, strict=True) if f <= 0]
            raise EngineError(f"{profile.disease}: symptoms with frequency 0: {', '.join(zero)}")
        self.refs = [
            SymptomRef(
                id=s.id,
                name=s.name,
                weight=float(f),
                unweighted=given is None,
                categories=tuple(c.name for c in s.categories),
            )
            for s, f, given in zip(present, self.frequencies, freqs, strict=True)
        ]
        self.logits = np.log(self.frequencies) / temperature
        self._min_age, self._max_age, self._sex_req = symptom_requirements(present)
        self.core = core_groups(profile, [s.id for s in present])
        self.k_low = min(min_symptoms, len(present))
        self.k_high = min(max_symptoms, len(present))
        self.draw = draw
        # the frequency draw adds one inclusion uniform per symptom after the softmax's
        self.n_uniforms = 1 + len(present) * (2 if draw == "frequency" else 1)

    def sample(
        self, run_seed: int, indices: IntArray, persona: PersonaBatch | None = None
    ) -> SymptomBatch:
        n, p = len(indices), len(self.refs)
        u = stage_uniforms(run_seed, indices, Stage.SYMPTOMS, self.n_uniforms)
        keys = self.logits[None, :] + gumbel(u[:, 1 : 1 + p])
        if persona is not None:
            allowed = requirement_mask(
                self._min_age, self._max_age, self._sex_req, persona.ages, persona.sex
            )
            keys = np.where(allowed, keys, -np.inf)
        if self.draw == "frequency":
            included = (u[:, 1 + p :] < self.frequencies[None, :]) & np.isfinite(keys)
            add_core(included, keys, self.core)
            return self._by_key(included, keys)
        k = self.k_low + np.floor(u[:, 0] * (self.k_high - self.k_low + 1)).astype(np.int64)
        k = np.minimum(k, np.isfinite(keys).sum(axis=1))  # capped by what the persona may have
        top = self.k_high
        part = np.argpartition(-keys, top - 1, axis=1)[:, :top]
        rank = np.argsort(-np.take_along_axis(keys, part, axis=1), axis=1, kind="stable")
        order = np.take_along_axis(part, rank, axis=1)  # the top k_high, by key
        if not self.core:
            return SymptomBatch([[self.refs[j] for j in order[i, : k[i]]] for i in range(n)])
        chosen = np.zeros((n, p), dtype=bool)
        taken = np.arange(top)[None, :] < k[:, None]
        chosen[np.nonzero(taken)[0], order[taken]] = True
        meet_core(chosen, keys, self.core, np.ones(n, dtype=bool))
        return self._by_key(chosen, keys)

    def _by_key(self, chosen: np.ndarray, keys: FloatArray) -> SymptomBatch:
        """Each row's chosen symptoms, highest key first."""
        rows, cols = np.nonzero(chosen)
        by_key = np.lexsort((-keys[rows, cols], rows))
        flat = [self.refs[j] for j in cols[by_key].tolist()]
        ends = np.cumsum(np.bincount(rows, minlength=len(chosen))).tolist()
        return SymptomBatch([flat[a:b] for a, b in pairwise([0, *ends])])


def add_core(chosen: np.ndarray, keys: FloatArray, groups: list[IntArray]) -> None:
    """Give every row lacking a member of a group its highest-keyed drawable member
    (``chosen`` in place; added, nothing replaced)."""
    for cols in groups:
        sub = keys[:, cols]
        rows = np.nonzero(~chosen[:, cols].any(axis=1) & np.isfinite(sub).any(axis=1))[0]
        chosen[rows, cols[np.argmax(sub[rows], axis=1)]] = True


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
