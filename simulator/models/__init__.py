"""Signal models, registered by name for device profiles (see :mod:`.base`)."""

from . import basic, climate, device, health
from .base import (
    Batch,
    FloatArray,
    IntArray,
    Modulator,
    SignalModel,
    Values,
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
