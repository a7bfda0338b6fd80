"""The seeded hash behind per-(device, day) traits: splitmix64, the same whatever shape or
order it is evaluated in."""

from __future__ import annotations

import warnings

import numpy as np

from simulator.arrays import hash_uniform

MASK = (1 << 64) - 1


def _reference(*keys: int) -> float:
    """splitmix64's mixing of each key in turn, in plain Python integers."""
    state = 0x9E3779B97F4A7C15
    for key in keys:
        state ^= key & MASK
        state = (state * 0xBF58476D1CE4E5B9) & MASK
        state ^= state >> 31
        state = (state * 0x94D049BB133111EB) & MASK
        state ^= state >> 29
    return (state >> 11) / float(1 << 53)


def test_the_hash_is_splitmix64_element_by_element_in_any_shape() -> None:
    """Every element equals the plain-integer splitmix64 of its keys (negative keys wrap as
    two's complement), for scalars, vectors and broadcast grids, without a warning."""
    rng = np.random.default_rng(11)
    devices = rng.integers(-(10**12), 10**12, 50)
    days = rng.integers(0, 400, (7, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = hash_uniform(42, days, devices, 3)
        scalar = hash_uniform(1, 2, 3)
    assert grid.shape == (7, 50)
    assert scalar.shape == ()
    assert float(scalar) == _reference(1, 2, 3)
    for i in range(7):
        for j in range(0, 50, 7):
            assert grid[i, j] == _reference(42, int(days[i, 0]), int(devices[j]), 3)
    assert np.all((grid >= 0.0) & (grid < 1.0))
