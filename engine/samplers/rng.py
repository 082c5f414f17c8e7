"""Per-record randomness keyed by (run seed, record index, stage), computed for whole batches.

Every record's draws for a stage are the output words of
``numpy.random.SeedSequence(entropy=run_seed, spawn_key=(record_index, stage))``: this module
re-implements SeedSequence's hash (numpy/random/bit_generator.pyx) with vectorised uint32
arithmetic, so a batch of records costs a few array operations instead of one SeedSequence
object per record, and record i's numbers never depend on which other records share its batch.
``tests/test_engine_rng.py`` checks the words against numpy's own SeedSequence.
"""

from __future__ import annotations

from enum import IntEnum
from functools import cache

import numpy as np
from numpy.typing import NDArray

_POOL = 4
_INIT_A = 0x43B0D7E5
_MULT_A = 0x931E8875
_INIT_B = 0x8B51F9DD
_MULT_B = 0x58F38DED
_MIX_L = 0xCA01F9DD
_MIX_R = 0x4973F715
_MASK = 0xFFFFFFFF
_U32 = np.uint32


class Stage(IntEnum):
    """The independent random streams of one record."""

    CODE = 0
    PERSONA = 1
    TRAJECTORY = 2
    SYMPTOMS = 3
    EXAMPLE = 4
    LLM = 5
    #: visit ``j`` of a longitudinal patient draws from stream ``VISIT + j`` (keyed by the
    #: patient index, like ``PERSONA``)
    VISIT = 64


def _words(value: int) -> list[int]:
    if value < 0:
        raise ValueError(f"seeds and record indices must be non-negative, got {value}")
    out = [value & _MASK]
    value >>= 32
    while value:
        out.append(value & _MASK)
        value >>= 32
    return out


class _Hash:
    """SeedSequence's ``hashmix`` with its running constant (which never depends on data)."""

    def __init__(self) -> None:
        self.const = _INIT_A

    def scalar(self, value: int) -> int:
        value ^= self.const
        self.const = (self.const * _MULT_A) & _MASK
        value = (value * self.const) & _MASK
        return value ^ (value >> 16)

    def vector(self, value: NDArray[np.uint32]) -> NDArray[np.uint32]:
        const = _U32(self.const)
        self.const = (self.const * _MULT_A) & _MASK
        value = (value ^ const) * _U32(self.const)
        return value ^ (value >> _U32(16))


def _mix_scalar(x: int, y: int) -> int:
    r = (_MIX_L * x - _MIX_R * y) & _MASK
    return r ^ (r >> 16)


def _mix_vector(x: NDArray[np.uint32], y: NDArray[np.uint32]) -> NDArray[np.uint32]:
    r = _U32(_MIX_L) * x - _U32(_MIX_R) * y
    return r ^ (r >> _U32(16))


def _pools(run_seed: int, indices: NDArray[np.int64], stage: int) -> list[NDArray[np.uint32]]:
    """The four pool words of each record's SeedSequence (indices below 2**32)."""
    run = _words(run_seed)
    run += [0] * (_POOL - len(run))
    h = _Hash()
    pool = [h.scalar(run[i]) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = _mix_scalar(pool[dst], h.scalar(pool[src]))
    for word in run[_POOL:]:
        for dst in range(_POOL):
            pool[dst] = _mix_scalar(pool[dst], h.scalar(word))
    n = len(indices)
    vec = [np.full(n, p, dtype=_U32) for p in pool]
    with np.errstate(over="ignore"):
        for words in (indices.astype(_U32), np.full(n, stage, dtype=_U32)):
            for dst in range(_POOL):
                vec[dst] = _mix_vector(vec[dst], h.vector(words))
    return vec


def stage_words(
    run_seed: int, indices: NDArray[np.int64] | range, stage: int, n_words: int
) -> NDArray[np.uint32]:
    """``SeedSequence(run_seed, spawn_key=(i, stage)).generate_state(n_words)`` for each i.

    Returns an array of shape ``(len(indices), n_words)``.
    """
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= 2**32):
        raise ValueError("record indices must lie in [0, 2**32)")
    pools = np.stack(_pools(run_seed, idx, int(stage)), axis=1)  # (n, 4)
    xor, mult = _output_constants(n_words)
    with np.errstate(over="ignore"):
        value = (np.take(pools, np.arange(n_words) % _POOL, axis=1) ^ xor) * mult
        return np.ascontiguousarray(value ^ (value >> _U32(16)))


@cache
def _output_constants(n_words: int) -> tuple[NDArray[np.uint32], NDArray[np.uint32]]:
    """Per output word ``j``: the constant SeedSequence xors into it and the one it then
    multiplies by (``INIT_B * MULT_B**j`` and the next power), as read-only arrays."""
    consts = [_INIT_B]
    for _ in range(n_words):
        consts.append((consts[-1] * _MULT_B) & _MASK)
    xor, mult = np.array(consts[:-1], dtype=_U32), np.array(consts[1:], dtype=_U32)
    xor.flags.writeable = mult.flags.writeable = False
    return xor, mult


def stage_uniforms(
    run_seed: int, indices: NDArray[np.int64] | range, stage: int, n: int
) -> NDArray[np.float64]:
    """``n`` uniforms in [0, 1) per record: the stage's uint64 state words scaled by 2**-53."""
    words = stage_words(run_seed, indices, stage, 2 * n)
    u64 = words.astype("<u4").view("<u8").astype(np.uint64)
    return (u64 >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def record_generator(run_seed: int, record_index: int, stage: int) -> np.random.Generator:
    """A numpy Generator for one record and stage (for consumers that draw per record)."""
    seq = np.random.SeedSequence(entropy=run_seed, spawn_key=(record_index, int(stage)))
    return np.random.Generator(np.random.PCG64(seq))


def record_seeds(run_seed: int, indices: NDArray[np.int64] | range) -> NDArray[np.int64]:
    """A 31-bit integer seed per record for the LLM's own sampling (``seed`` request field)."""
    return (stage_words(run_seed, indices, Stage.LLM, 1)[:, 0] & _U32(0x7FFFFFFF)).astype(np.int64)
