"""Signal models, registered by name for device profiles (see :mod:`.base`)."""

from simulator.arrays import FloatArray, IntArray, Values
from simulator.models import basic, climate, device, health
from simulator.models.base import (
    Batch,
    Modulator,
    SignalModel,
    model_class,
    register,
    registered_models,
)

__all__ = [
    "Batch",
    "FloatArray",
    "IntArray",
    "Modulator",
    "SignalModel",
    "Values",
    "basic",
    "climate",
    "device",
    "health",
    "model_class",
    "register",
    "registered_models",
]
