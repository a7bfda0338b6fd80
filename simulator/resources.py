"""The data barnstorm ships: farm templates, device profiles, scenarios and locustfiles.

In a checkout they live in the top-level folders (``farms/``, ``device_profiles/``,
``scenarios/``, ``locustfiles/``), which stay the source; the package reaches them through
``simulator/data/``, so an editable install, a wheel and an sdist all find them the same way,
through :mod:`importlib.resources`, from any working directory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal

Shipped = Literal["farms", "device_profiles", "scenarios", "locustfiles"]


def shipped(kind: Shipped) -> Path:
    """The folder of shipped ``kind`` files, as a path on disk."""
    folder = files("simulator").joinpath("data", kind)
    # A wheel installs as plain files, so this is a real path; a zipped install is not
    # supported (Locust needs the locustfiles on disk anyway).
    return Path(str(folder))
