"""The numeric vocabulary of the fleet, the models and the engine: array types, the length
of a day, and a seeded hash that turns keys into uniform numbers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


IntArray = npt.NDArray[np.int64]


Values = npt.NDArray[np.generic]


SECONDS_PER_DAY = 86400.0


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SHIFT1, _SHIFT2, _SHIFT53 = np.uint64(31), np.uint64(29), np.uint64(11)


def hash_uniform(*keys: npt.ArrayLike | int) -> FloatArray:
    """A deterministic uniform in [0, 1) per element from integer keys (splitmix64 mixing).

    Per-(device, day) or per-(room, batch) traits drawn this way are the same whichever
    tick, window or order evaluates them. The mixing runs on arrays of at least one
    element, whose integer products wrap silently (numpy warns of that on scalars only):
    a hash is a few microseconds, it runs for every reading of a real-time tick.
    """
    shape = np.broadcast_shapes(*(np.shape(key) for key in keys))
    state = np.full(shape or (1,), _GOLDEN, np.uint64)
    for key in keys:
        if isinstance(key, int):
            state ^= np.uint64(key & 0xFFFFFFFFFFFFFFFF)
        else:
            state ^= np.asarray(key).astype(np.int64).view(np.uint64)
        state *= _MIX1
        state ^= state >> _SHIFT1
        state *= _MIX2
        state ^= state >> _SHIFT2
    uniform = (state >> _SHIFT53).astype(np.float64) / float(1 << 53)
    return uniform.reshape(shape)
