"""Per-record randomness: the vectorised SeedSequence equals numpy's own, word for word."""

from __future__ import annotations

import numpy as np
import pytest

from engine.samplers.rng import Stage, record_generator, record_seeds, stage_uniforms, stage_words


@pytest.mark.parametrize("seed", [0, 7, 2**31 - 1, 2**40 + 5, 2**128 + 99, 12345678901234567890123])
@pytest.mark.parametrize("stage", list(Stage))
def test_words_equal_numpy_seedsequence(seed: int, stage: Stage) -> None:
    indices = np.array([0, 1, 2, 999, 5000, 123_456, 2**32 - 1])
    words = stage_words(seed, indices, stage, 11)
    for row, index in zip(words, indices, strict=True):
        ref = np.random.SeedSequence(entropy=seed, spawn_key=(int(index), int(stage)))
        assert (row == ref.generate_state(11)).all()


def test_uniforms_are_the_uint64_state_scaled() -> None:
    u = stage_uniforms(7, range(100, 110), Stage.PERSONA, 5)
    for row, index in zip(u, range(100, 110), strict=True):
        ref = np.random.SeedSequence(entropy=7, spawn_key=(index, int(Stage.PERSONA)))
        state = ref.generate_state(5, np.uint64)
        assert np.array_equal(row, (state >> np.uint64(11)).astype(np.float64) * 2.0**-53)
    assert ((u >= 0) & (u < 1)).all()


def test_a_record_does_not_depend_on_its_batch() -> None:
    whole = stage_uniforms(3, range(0, 1000), Stage.TRAJECTORY, 4)
    parts = np.vstack(
        [
            stage_uniforms(3, range(lo, min(lo + 37, 1000)), Stage.TRAJECTORY, 4)
            for lo in range(0, 1000, 37)
        ]
    )
    assert np.array_equal(whole, parts)
    assert np.array_equal(whole[500:], stage_uniforms(3, range(500, 1000), Stage.TRAJECTORY, 4))


def test_stages_and_seeds_are_independent_streams() -> None:
    a = stage_uniforms(1, range(2000), Stage.PERSONA, 1)[:, 0]
    b = stage_uniforms(1, range(2000), Stage.SYMPTOMS, 1)[:, 0]
    c = stage_uniforms(2, range(2000), Stage.PERSONA, 1)[:, 0]
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1 and abs(np.corrcoef(a, c)[0, 1]) < 0.1
    assert abs(a.mean() - 0.5) < 0.03


def test_record_generator_and_seeds() -> None:
    g = record_generator(5, 42, Stage.LLM)
    ref = np.random.Generator(np.random.PCG64(np.random.SeedSequence(5, spawn_key=(42, 5))))
    assert g.random() == ref.random()
    seeds = record_seeds(5, range(1000))
    assert seeds.min() >= 0 and seeds.max() < 2**31 and len(set(seeds.tolist())) > 990


def test_bad_indices_are_rejected() -> None:
    with pytest.raises(ValueError):
        stage_words(1, np.array([2**32]), Stage.CODE, 1)
    with pytest.raises(ValueError):
        stage_words(-1, np.array([0]), Stage.CODE, 1)
