"""General-purpose models: constants, distributions and bands over another field."""

from __future__ import annotations

import numpy as np

from simulator.arrays import Values
from simulator.models.base import Batch, SignalModel, register
from simulator.tomlfile import Table


@register("constant")
class Constant(SignalModel):
    """The same value in every message (``value`` may be a number, string or bool)."""

    params = frozenset({"value"})

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        value = table.raw("value")
        if not isinstance(value, bool | int | float | str):
            raise table.error("value", "expected a number, string or boolean")
        self.value = value

    def generate(self, batch: Batch) -> Values:
        return np.full(len(batch), self.value)


@register("gaussian")
class Gaussian(SignalModel):
    """Normal noise around ``mean`` with ``sd``, optionally clipped to [min, max]."""

    sensor = True

    params = frozenset({"mean", "sd", "min", "max"})

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.mean = table.number("mean")
        self.sd = table.number("sd", 0.0, min=0.0)
        self.low = table.number("min") if "min" in table else -np.inf
        self.high = table.number("max") if "max" in table else np.inf
        if self.low > self.high:
            raise table.error("min", "is greater than max")

    def generate(self, batch: Batch) -> Values:
        values = batch.rng.normal(self.mean, self.sd, len(batch))
        return np.clip(values, self.low, self.high)


@register("poisson")
class Poisson(SignalModel):
    """A count drawn from a Poisson distribution with mean ``mean``."""

    output = "i"
    params = frozenset({"mean"})

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.mean = table.number("mean", min=0.0)

    def generate(self, batch: Batch) -> Values:
        return batch.rng.poisson(self.mean, len(batch)).astype(np.float64)


@register("band")
class Band(SignalModel):
    """A label for another field's value: the first band whose lower bound it reaches.

    ``bands = [[60, "green"], [40, "yellow"], [1, "red"]]`` and ``missing = "blue"`` for
    a null source value.
    """

    output = "U"
    params = frozenset({"source", "bands", "missing", "below"})

    def __init__(self, table: Table) -> None:
        super().__init__(table)
        self.source = table.string("source")
        self.depends_on = (self.source,)
        raw = table.raw("bands")
        if (
            not isinstance(raw, list)
            or not raw
            or not all(
                isinstance(b, list)
                and len(b) == 2
                and isinstance(b[0], int | float)
                and not isinstance(b[0], bool)
                and isinstance(b[1], str)
                for b in raw
            )
        ):
            raise table.error("bands", 'expected a list of [lower_bound, "label"] pairs')
        ordered = sorted(((float(b[0]), str(b[1])) for b in raw), reverse=True)
        self.bounds = np.array([b for b, _ in ordered], np.float64)
        self.labels = [label for _, label in ordered]
        self.missing = table.string("missing", "none")
        self.below = table.string("below", self.labels[-1])

    def generate(self, batch: Batch) -> Values:
        if self.source not in batch.values:
            raise RuntimeError(f"band source {self.source!r} is not an earlier field")
        source = np.asarray(batch.values[self.source], np.float64)
        labels = np.array([*self.labels, self.below, self.missing])
        # index of the first (highest) bound reached, len(bounds) when below all of them
        reached = source[:, None] >= self.bounds[None, :]
        index = np.where(reached.any(axis=1), reached.argmax(axis=1), len(self.bounds))
        index = np.where(np.isnan(source), len(self.bounds) + 1, index)
        return labels[index]
