"""Symptom-trajectory alignment (DualAlign): a window per record, then keywords by category.

For window ``w`` with keyword density ``d[w]`` (mean symptom mentions per note; 1 when the
graph gives none) and category frequencies ``f[w, c]`` (OBSERVES, one scheme):

* the visit falls ``v ~ Uniform[start_months, end_months)`` from the diagnosis;
* the number of keywords is ``k = sround(m * d[w])`` (stochastic rounding:
  ``floor(x) + Bernoulli(x - floor(x))``, so ``E[k] = m * d[w]``), clipped to
  ``[min_keywords, max_keywords]``, where ``m`` is the keyword multiplier (5 in the paper);
* each of the ``k`` slots takes category ``c`` with probability ``f[w, c] / sum_c f[w, c]``;
* within a category, symptoms are drawn without replacement by Gumbel-top-k on
  ``log weight`` among the symptoms *drawable* for the record: stage at most the window's
  stage, and the persona (visit age, sex) within the symptom's requirements. A symptom's
  weight is its OBSERVES frequency in ``w`` if the window observes it, else its PRESENTS
  frequency, else ``UNWEIGHTED_FREQUENCY``. No keyword repeats within a record: slots a
  category cannot fill move to categories that can, drawn by ``f[w, c]`` over those with
  room, so ``k`` keywords are drawn whenever the record has ``k`` drawable symptoms;
* in windows after the diagnosis (``start_months >= 0``) every core-criterion group is
  met: a group with no chosen member puts its highest-keyed drawable member (a draw from
  the softmax restricted to the group) in place of the lowest-keyed chosen keyword that no
  group needs;
* each chosen symptom is written as one of its surface forms (name or synonym), uniformly,
  with its slots rendered for the persona (``engine.samplers.surface``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np

from engine.errors import EngineError
from engine.profile import DiseaseProfile, SymptomInfo, WindowInfo
from engine.samplers.persona import UNKNOWN_SEX, PersonaBatch
from engine.samplers.rng import Stage, stage_uniforms
from engine.samplers.surface import voice_of, voices
from engine.samplers.tables import (
    FloatArray,
    IntArray,
    cumulative,
    draw,
    draw_rows,
    gumbel,
    normalised,
)
from engine.spec import Keyword, WindowRef
from kg.coherence import UNWEIGHTED_FREQUENCY, stage_allows

WindowWeighting = Literal["auto", "graph", "uniform"]
#: The keyword density of a window the graph gives none (so ``k = multiplier``).
DEFAULT_DENSITY = 1.0
_NO_AGE = 10_000
_SEX_CODE = {"female": 0, "male": 1}


def _span(months: float) -> str:
    m = abs(months)
    if m >= 12 and m % 12 == 0:
        years = int(m // 12)
        return f"{years} year{'s' if years != 1 else ''}"
    value = int(m) if float(m).is_integer() else m
    return f"{value} month{'s' if value != 1 else ''}"


def _period(months: float) -> str:
    """``year`` for one year, ``2 years``, ``6 months``: for "within the ..." phrases."""
    text = _span(months)
    return text.removeprefix("1 ") if text.startswith("1 ") else text


def _between(a: float, b: float) -> str:
    """``3 and 5 years`` when both ends share a unit, else ``6 months and 2 years``."""
    left, right = _span(a), _span(b)
    if left.split(" ")[1].rstrip("s") == right.split(" ")[1].rstrip("s"):
        left = left.split(" ")[0]
    return f"{left} and {right}"


def describe_window(start: float, end: float) -> str:
    """A window in words, relative to the diagnosis, e.g. ``between 3 and 5 years before``."""
    if end <= 0:
        if end == 0:
            return f"within the {_period(start)} before the diagnosis"
        return f"between {_between(-end, -start)} before the diagnosis"
    if start >= 0:
        if start == 0:
            return f"within the first {_period(end)} after the diagnosis"
        return f"between {_between(start, end)} after the diagnosis"
    return f"around the time of the diagnosis (from {_span(start)} before to {_span(end)} after)"


def window_ref(w: WindowInfo) -> WindowRef:
    return WindowRef(
        id=w.id,
        name=w.name,
        order=w.order,
        start_months=w.start_months,
        end_months=w.end_months,
        phrase=describe_window(w.start_months, w.end_months),
        diagnosed=w.start_months >= 0,
        stage=w.stage,
        keyword_density=w.keyword_density,
    )


@dataclass(frozen=True)
class TrajectoryBatch:
    windows: IntArray  # (n,) window index
    visit_months: FloatArray  # (n,) months from the diagnosis
    visit_ages: IntArray | None  # (n,) whole years at the visit, -1 unknown; None: no persona
    keywords: list[list[Keyword]]


def requirement_mask(
    min_age: IntArray, max_age: IntArray, sex_req: IntArray, ages: IntArray, sex: IntArray
) -> np.ndarray:
    """(n, p): whether each record's persona meets each symptom's age and sex requirement."""
    known = ages[:, None] >= 0
    ok = ~known | ((ages[:, None] >= min_age[None, :]) & (ages[:, None] <= max_age[None, :]))
    return ok & ((sex_req[None, :] < 0) | (sex_req[None, :] == sex[:, None]))


def symptom_requirements(symptoms: list[SymptomInfo]) -> tuple[IntArray, IntArray, IntArray]:
    """Per symptom: lowest and highest visit age, and the sex code it needs (-1: any)."""
    lo = np.array([s.min_age if s.min_age is not None else -1 for s in symptoms], dtype=np.int64)
    hi = np.array(
        [s.max_age if s.max_age is not None else _NO_AGE for s in symptoms], dtype=np.int64
    )
    sex = np.array([_SEX_CODE.get(s.sex or "", -1) for s in symptoms], dtype=np.int64)
    return lo, hi, sex


def core_groups(profile: DiseaseProfile, ids: list[str]) -> list[IntArray]:
    """The disease's core-criterion groups as column indices into ``ids``."""
    index = {s: j for j, s in enumerate(ids)}
    groups = []
    for group in profile.core:
        cols = [index[s] for s in group.symptom_ids if s in index]
        if cols:
            groups.append(np.array(cols, dtype=np.int64))
    return groups


def meet_core(
    chosen: np.ndarray, keys: FloatArray, groups: list[IntArray], rows: np.ndarray
) -> None:
    """Make every row in ``rows`` hold a member of every group (``chosen`` in place).

    Groups are met in order. A group with no chosen member gets its highest-keyed drawable
    member (finite key), which replaces the lowest-keyed chosen column that no earlier
    group relies on, or is added when every chosen column is relied on.
    """
    if not groups or not rows.any():
        return
    needed = np.zeros_like(chosen)
    for cols in groups:
        mine = np.where(chosen[:, cols], keys[:, cols], -np.inf)
        has = chosen[:, cols].any(axis=1)
        keep = np.flatnonzero(rows & has)
        needed[keep, cols[np.argmax(mine[keep], axis=1)]] = True
        sub = keys[:, cols]
        fix = np.flatnonzero(rows & ~has & np.isfinite(sub).any(axis=1))
        if fix.size == 0:
            continue
        best = cols[np.argmax(sub[fix], axis=1)]
        spare = np.where(chosen[fix] & ~needed[fix], keys[fix], np.inf)
        drop = np.argmin(spare, axis=1)
        can = np.isfinite(spare[np.arange(fix.size), drop])
        chosen[fix[can], drop[can]] = False
        chosen[fix, best] = True
        needed[fix, best] = True


class TrajectorySampler:
    """A profile's windows, category frequencies and keyword pool as numpy tables."""

    def __init__(
        self,
        profile: DiseaseProfile,
        scheme: str | None = None,
        window_weights: WindowWeighting = "auto",
        keyword_multiplier: float = 5.0,
        min_keywords: int = 0,
        max_keywords: int = 30,
    ) -> None:
        name = profile.disease
        schemes = profile.schemes()
        if not profile.windows or not schemes:
            raise EngineError(
                f"{name} has no trajectory windows with category frequencies "
                "(OBSERVES); it cannot drive the trajectory sampler"
            )
        if scheme is None:
            scheme = schemes[0]
        elif scheme not in schemes:
            raise EngineError(
                f"{name} has no window frequencies for category scheme {scheme!r}; "
                f"schemes with frequencies: {', '.join(schemes)}"
            )
        self.scheme = scheme
        self.windows = profile.windows
        self.window_refs = [window_ref(w) for w in profile.windows]
        self._window_cum = cumulative(self._window_probs(profile, window_weights))
        pool: list[tuple[SymptomInfo, str, str]] = []
        for s in profile.symptoms:
            cat = s.category_in(scheme)
            if cat is not None:
                pool.append((s, cat.id, cat.name))
        if not pool:
            raise EngineError(f"{name}: no symptom is in a category of scheme {scheme!r}")
        pool.sort(key=lambda p: (p[1], p[0].id))
        observed = {
            (o.target_id, o.name)
            for w in profile.windows
            for o in w.observations
            if o.kind == "SymptomCategory" and o.scheme == scheme
        }
        self.categories = sorted({(p[1], p[2]) for p in pool} | observed)
        cat_index = {c[0]: i for i, c in enumerate(self.categories)}
        n_w, n_c = len(self.windows), len(self.categories)
        freq = np.zeros((n_w, n_c))
        for i, w in enumerate(self.windows):
            for o in w.observations:
                if o.kind == "SymptomCategory" and o.scheme == scheme:
                    freq[i, cat_index[o.target_id]] = o.frequency
            if freq[i].sum() <= 0:
                raise EngineError(
                    f"{name}: window {w.name!r} has no frequencies for scheme {scheme!r}"
                )
        self.category_probs = freq / freq.sum(axis=1, keepdims=True)
        self._category_cum = cumulative(self.category_probs)
        self.densities = np.array(
            [
                w.keyword_density if w.keyword_density is not None else DEFAULT_DENSITY
                for w in self.windows
            ]
        )
        self.expected_keywords = keyword_multiplier * self.densities
        if min_keywords < 0 or max_keywords < max(min_keywords, 1):
            raise EngineError("keywords: need 0 <= min_keywords <= max_keywords and max >= 1")
        self.min_keywords = min_keywords
        most = max(min_keywords, int(np.ceil(self.expected_keywords.max())))
        self.k_max = min(max_keywords, most)
        self.pool_category = np.array([cat_index[p[1]] for p in pool], dtype=np.int64)
        self.members = [np.flatnonzero(self.pool_category == c) for c in range(n_c)]
        symptoms = [p[0] for p in pool]
        weights = np.ones((n_w, len(pool)))
        for j, s in enumerate(symptoms):
            f = s.frequency if s.presented else None
            weights[:, j] = f if f is not None else UNWEIGHTED_FREQUENCY
        index = {s.id: j for j, s in enumerate(symptoms)}
        for i, w in enumerate(self.windows):
            for o in w.observations:
                if o.kind == "Symptom" and o.target_id in index:
                    weights[i, index[o.target_id]] = o.frequency
        self.stage_ok = np.array(
            [[stage_allows(s.stage, w.stage) for s in symptoms] for w in self.windows]
        )
        with np.errstate(divide="ignore"):
            self._log_weights = np.where(self.stage_ok, np.log(weights), -np.inf)
        self._min_age, self._max_age, self._sex_req = symptom_requirements(symptoms)
        self._diagnosed = np.array([w.start_months >= 0 for w in self.windows])
        self._starts = np.array([w.start_months for w in self.windows])
        self._spans = np.array([w.end_months - w.start_months for w in self.windows])
        self.core = core_groups(profile, [s.id for s in symptoms])
        self.keywords = [
            [
                tuple(
                    Keyword(
                        text=text,
                        form=form,
                        symptom_id=s.id,
                        symptom=s.name,
                        category_id=cid,
                        category=cname,
                        stage=s.stage,
                    )
                    for text in voices(form)
                )
                for form in s.surface_forms
            ]
            for s, cid, cname in pool
        ]
        self._n_forms = np.array([len(k) for k in self.keywords], dtype=np.int64)
        self._top = min(self.k_max + len(self.core), len(pool))
        self.n_uniforms = 3 + self.k_max + len(pool) + self._top + self.k_max

    def _refill(self, counts: IntArray, keys: FloatArray, win: IntArray, u: FloatArray) -> None:
        """Move slots a category cannot fill (too few drawable symptoms for the record) to
        categories that can, drawn by the window's category frequencies over those with
        room (``counts`` in place; ``u``: one uniform per moved slot)."""
        room = np.stack([np.isfinite(keys[:, m]).sum(axis=1) for m in self.members], axis=1)
        over = np.maximum(counts - room, 0).sum(axis=1)
        np.minimum(counts, room, out=counts)
        for r in np.flatnonzero(over).tolist():
            probs = self.category_probs[win[r]]
            for j in range(int(over[r])):
                p = probs * (room[r] > counts[r])
                if p.sum() <= 0:
                    break
                cum = np.cumsum(p / p.sum())
                cum[-1] = 1.0
                counts[r, int(np.searchsorted(cum, u[r, j], side="right"))] += 1

    def _window_probs(self, profile: DiseaseProfile, mode: WindowWeighting) -> np.ndarray:
        weights = [w.weight for w in profile.windows]
        have = all(w is not None for w in weights)
        if mode == "graph" and not have:
            missing = [w.name for w in profile.windows if w.weight is None]
            raise EngineError(
                f"{profile.disease}: windows without a weight: {', '.join(missing)}; "
                "use window_weights=uniform"
            )
        if mode == "uniform" or not have:
            return np.full(len(weights), 1.0 / len(weights))
        return normalised([float(w or 0.0) for w in weights], f"{profile.disease}: window weights")

    def sample(
        self, run_seed: int, indices: IntArray, persona: PersonaBatch | None = None
    ) -> TrajectoryBatch:
        u = stage_uniforms(run_seed, indices, Stage.TRAJECTORY, self.n_uniforms)
        win = draw(self._window_cum, u[:, 0])
        visit = self._starts[win] + u[:, 2] * self._spans[win]
        ages, sex = persona_at(persona, visit, len(indices))
        chosen, keys = self.choose(u, win, ages, sex)
        base = 3 + self.k_max + len(self.keywords)
        out = self.keywords_of(chosen, keys, u[:, base : base + self._top], ages, sex)
        return TrajectoryBatch(win, visit, ages if persona is not None else None, out)

    def drawable(self, win: IntArray, ages: IntArray, sex: IntArray) -> np.ndarray:
        """(n, p): the pool symptoms each record may document (stage, age and sex)."""
        allowed = requirement_mask(self._min_age, self._max_age, self._sex_req, ages, sex)
        return allowed & self.stage_ok[win]

    def choose(
        self,
        u: FloatArray,
        win: IntArray,
        ages: IntArray,
        sex: IntArray,
        carried: np.ndarray | None = None,
        barred: np.ndarray | None = None,
    ) -> tuple[np.ndarray, FloatArray]:
        """(n, p) chosen pool symptoms and their keys, from the records' uniforms ``u``
        (layout: ``n_uniforms`` columns; column 0 unused here).

        ``carried`` symptoms (longitudinal patients: documented again from the previous visit)
        are always chosen and take their slots out of ``k``; ``barred`` ones (the previous
        visit's) are not drawn again, though a core-criterion group may pull one back in.
        """
        n, p = len(win), len(self.keywords)
        lam = self.expected_keywords[win]
        k = np.floor(lam) + (u[:, 1] < lam - np.floor(lam))
        k = np.clip(k, self.min_keywords, self.k_max).astype(np.int64)
        if carried is not None:
            k = np.maximum(k - carried.sum(axis=1), 0)
        slots = 3 + np.arange(self.k_max)
        cats = draw_rows(
            self._category_cum, np.repeat(win, self.k_max), u[:, slots].ravel()
        ).reshape(n, self.k_max)
        used = np.arange(self.k_max)[None, :] < k[:, None]
        counts = np.zeros((n, len(self.categories)), dtype=np.int64)
        np.add.at(counts, (np.repeat(np.arange(n), self.k_max)[used.ravel()], cats[used]), 1)
        base = 3 + self.k_max
        keys = self._log_weights[win] + gumbel(u[:, base : base + p])
        keys = np.where(self.drawable(win, ages, sex), keys, -np.inf)
        pick = keys if barred is None else np.where(barred, -np.inf, keys)
        self._refill(counts, pick, win, u[:, self.n_uniforms - self.k_max : self.n_uniforms])
        chosen = np.zeros((n, p), dtype=bool)
        for c, members in enumerate(self.members):
            if members.size == 0:
                continue
            sub = pick[:, members]
            take = np.minimum(counts[:, c], np.isfinite(sub).sum(axis=1))
            ranked = -np.sort(-sub, axis=1)
            threshold = ranked[np.arange(n), np.maximum(take - 1, 0)]
            keep = (sub >= threshold[:, None]) & np.isfinite(sub)
            chosen[:, members] = keep & (take[:, None] > 0)
        if carried is None:
            meet_core(chosen, keys, self.core, self._diagnosed[win])
        else:
            chosen |= carried
            # carried symptoms are never swapped out for a core member (infinite key)
            meet_core(chosen, np.where(carried, np.inf, keys), self.core, self._diagnosed[win])
        return chosen, keys

    def keywords_of(
        self, chosen: np.ndarray, keys: FloatArray, u: FloatArray, ages: IntArray, sex: IntArray
    ) -> list[list[Keyword]]:
        """The chosen keywords of each record, in descending key order (a random order), each
        written as one of its surface forms (the record's next uniform of ``u``, one column
        per rank) in its voice."""
        n = len(chosen)
        rows, cols = np.nonzero(chosen)
        order = np.lexsort((-keys[rows, cols], rows))
        rows, cols = rows[order], cols[order]
        per_record = np.bincount(rows, minlength=n)
        ends = np.cumsum(per_record)
        rank = np.arange(len(rows)) - (ends - per_record)[rows]
        forms = np.floor(u[rows, rank] * self._n_forms[cols]).astype(np.int64)
        voice = voice_of(sex, ages)[rows]
        flat = [
            self.keywords[j][f][v]
            for j, f, v in zip(cols.tolist(), forms.tolist(), voice.tolist(), strict=True)
        ]
        bounds = [0, *ends.tolist()]
        return [flat[a:b] for a, b in pairwise(bounds)]


def persona_at(
    persona: PersonaBatch | None, visit_months: FloatArray, n: int
) -> tuple[IntArray, IntArray]:
    """Whole-year ages at the visits and sex codes (-1 and unknown without a persona)."""
    if persona is None:
        return np.full(n, -1, dtype=np.int64), np.full(n, UNKNOWN_SEX, dtype=np.int64)
    return persona.visit_ages(visit_months), persona.sex
