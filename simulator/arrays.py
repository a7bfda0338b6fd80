"""The numeric vocabulary of the fleet, the models and the engine: array types, the length
of a day, and a seeded hash that turns keys into uniform numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    pass


FloatArray = npt.NDArray[np.float64]


IntArray = npt.NDArray[np.int64]


Values = npt.NDArray[np.generic]


SECONDS_PER_DAY = 86400.0


def hash_uniform(*keys: npt.ArrayLike | int) -> FloatArray:
    """A deterministic uniform in [0, 1) per element from integer keys (splitmix64 mixing).

    Per-(device, day) or per-(room, batch) traits drawn this way are the same whichever
    tick, window or order evaluates them.
    """
    with np.errstate(over="ignore"):
        state: npt.NDArray[np.uint64] = np.asarray(np.uint64(0x9E3779B97F4A7C15))
        for key in keys:
            if isinstance(key, int):
                state = state ^ np.uint64(key & 0xFFFFFFFFFFFFFFFF)
            else:
                state = state ^ np.asarray(key).astype(np.int64).astype(np.uint64)
            state = state * np.uint64(0xBF58476D1CE4E5B9)
            state = state ^ (state >> np.uint64(31))
            state = state * np.uint64(0x94D049BB133111EB)
            state = state ^ (state >> np.uint64(29))
        return np.asarray((state >> np.uint64(11)).astype(np.float64) / float(1 << 53), np.float64)
