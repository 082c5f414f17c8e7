"""Longitudinal patients (``plan --patients``): one persona, visits, symptoms that persist.

A patient's whole history is a function of (run seed, patient index), so any record of it
can be planned alone, in any batch, on any worker:

* the persona is drawn once, at the diagnosis (the persona stream of the patient index);
* the schedule is fixed per disease: ``visits`` visits in each trajectory window (the
  window's ``visits``; ``DEFAULT_VISITS`` per window whose weight is not 0 when the graph
  gives none), so every patient of a disease has the same ``V`` visits, in window order;
* visit ``j`` draws from its own stream (``Stage.VISIT + j``): its time and its keywords as
  the trajectory sampler draws them for its window, at the visit's age. A window of ``c``
  visits is cut into ``c`` equal slots and its ``k``-th visit falls uniformly in slot ``k``
  (so visits are in time order and roughly evenly spread, as scheduled visits are);
* from visit 1 on, each symptom documented at the previous visit that is still drawable (its
  stage within the window's, the persona within its age and sex requirements) is documented
  again with probability ``persistence`` (the window's, else ``DEFAULT_PERSISTENCE``); those
  count towards the visit's keywords, and a previous symptom that did not persist is not
  drawn anew (a core-criterion group of a diagnosed window may still pull one back in). So
  over visits in pre-diagnosis windows, P(documented | documented at the previous visit and
  drawable) is exactly ``persistence``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import EngineError
from engine.profile import DiseaseProfile
from engine.samplers.persona import PersonaBatch
from engine.samplers.rng import Stage, stage_uniforms
from engine.samplers.tables import FloatArray, IntArray
from engine.samplers.trajectory import TrajectorySampler, persona_at, window_ref
from engine.spec import Keyword, WindowRef

#: Visits per window when the graph gives none (windows of weight 0 get none).
DEFAULT_VISITS = 1
#: Persistence when the window gives none: a kgsynth default, not a clinical figure.
DEFAULT_PERSISTENCE = 0.5
#: Days per month (365.2425 / 12) for the visits' date offsets.
DAYS_PER_MONTH = 30.436875


@dataclass(frozen=True)
class PatientHistory:
    """The sampled histories of a batch of patients (``V`` visits each)."""

    months: FloatArray  # (n, V) months from the diagnosis, in visit order
    ages: IntArray  # (n, V) whole years at each visit (-1 unknown)
    keywords: list[list[list[Keyword]]]  # [visit][patient] -> keywords

    @property
    def days(self) -> IntArray:
        """(n, V) whole days from each patient's first visit."""
        return np.rint((self.months - self.months[:, :1]) * DAYS_PER_MONTH).astype(np.int64)


class PatientSampler:
    """A profile's visit schedule and persistence over its trajectory sampler."""

    def __init__(self, profile: DiseaseProfile, trajectory: TrajectorySampler) -> None:
        self.trajectory = trajectory
        windows = trajectory.windows
        counts = [
            w.visits
            if w.visits is not None
            else (0 if w.weight is not None and w.weight <= 0 else DEFAULT_VISITS)
            for w in windows
        ]
        #: the window of each visit, in visit order
        self.schedule = np.repeat(np.arange(len(windows)), counts)
        if not self.schedule.size:
            raise EngineError(
                f"{profile.disease}: no trajectory window has visits, so a patient would have "
                "none; give a window `visits` (docs/recipes.md#longitudinal-patients)"
            )
        self.persistence = np.array(
            [w.persistence if w.persistence is not None else DEFAULT_PERSISTENCE for w in windows]
        )
        #: the windows as patient records carry them: with the persistence used
        self.window_refs: list[WindowRef] = [
            window_ref(w).model_copy(update={"persistence": float(rho)})
            for w, rho in zip(windows, self.persistence.tolist(), strict=True)
        ]
        self._blocks = [np.flatnonzero(self.schedule == w) for w in range(len(windows))]
        self._p = len(trajectory.keywords)
        self.n_uniforms = trajectory.n_uniforms + 2 * self._p

    @property
    def visits(self) -> int:
        return int(self.schedule.size)

    def sample(
        self, run_seed: int, patients: IntArray, persona: PersonaBatch | None
    ) -> PatientHistory:
        """The histories of ``patients`` (patient indices), whole."""
        traj, n, p, v = self.trajectory, len(patients), self._p, self.visits
        u = [stage_uniforms(run_seed, patients, Stage.VISIT + j, self.n_uniforms) for j in range(v)]
        months = np.empty((n, v))
        for w, cols in enumerate(self._blocks):
            if cols.size:
                start, end = traj.windows[w].start_months, traj.windows[w].end_months
                times = np.stack([u[j][:, 2] for j in cols.tolist()], axis=1)
                slot = (np.arange(cols.size) + times) / cols.size
                months[:, cols] = start + slot * (end - start)
        ages = np.empty((n, v), dtype=np.int64)
        keywords: list[list[list[Keyword]]] = []
        previous: np.ndarray | None = None
        base = traj.n_uniforms
        for j in range(v):
            win = np.full(n, self.schedule[j], dtype=np.int64)
            ages[:, j], sex = persona_at(persona, months[:, j], n)
            carried = None
            if previous is not None:
                stays = u[j][:, base : base + p] < self.persistence[self.schedule[j]]
                carried = previous & stays & traj.drawable(win, ages[:, j], sex)
            chosen, keys = traj.choose(u[j], win, ages[:, j], sex, carried, previous)
            forms = u[j][:, base + p : base + 2 * p]
            keywords.append(traj.keywords_of(chosen, keys, forms, ages[:, j], sex))
            previous = chosen
        return PatientHistory(months, ages, keywords)
