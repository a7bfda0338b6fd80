"""Property-based: malformed input files get a clear error, never a traceback.

Hypothesis mutates the shipped farm templates, device profiles, scenarios and dashboard map
(a value replaced by one of the wrong type or range, a line dropped, text cut short) and
writes HAR and credentials files of arbitrary shape. Every loader must either accept the
file or raise a ConfigError naming it; any other exception is a bug.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.engine.scenarios import load_scenario
from simulator.errors import ConfigError
from simulator.fleet.credentials import load_credentials
from simulator.fleet.load import load_fleet
from simulator.locust.dashboard_map import load_map
from simulator.locust.har import build_map
from tests.helpers import ROOT

#: values of every kind a file could hold by mistake
LITERALS = [
    "-1",
    "0",
    "1e309",
    "-1e309",
    "nan",
    "inf",
    "3.5",
    "999999999999",
    '"x"',
    '""',
    '"-5d"',
    '"1970-01-01"',
    "[]",
    "[1, 2]",
    '["a"]',
    "{}",
    "{ a = 1 }",
    "true",
    "false",
    '"1s"',
    '"0s"',
    "[[1]]",
    '"not a number"',
]
#: CI runs the same examples every time; BARNSTORM_FUZZ_EXAMPLES=2000 explores new ones.
SETTINGS = settings(
    max_examples=int(os.environ.get("BARNSTORM_FUZZ_EXAMPLES", "60")),
    derandomize="BARNSTORM_FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """A shipped file with a few lines changed: a value swapped, a line dropped, or cut."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["value", "drop", "cut"]))
        if action == "value" and "=" in lines[index]:
            key = lines[index].split("=", 1)[0]
            lines[index] = f"{key}= {draw(st.sampled_from(LITERALS))}"
        elif action == "drop":
            del lines[index]
            if not lines:
                lines = [""]
        else:
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
    return "\n".join(lines) + "\n"


def _loads_or_config_error(load: object) -> None:
    assert callable(load)
    try:
        load()
    except ConfigError as exc:
        message = str(exc)
    else:
        return
    assert message.strip(), "an error says what is wrong"


def _shipped(folder: str) -> list[Path]:
    return sorted((ROOT / folder).glob("*.toml"))


@SETTINGS
@given(data=st.data(), which=st.sampled_from(["farms", "device_profiles"]))
def test_mutated_farms_and_profiles_build_a_fleet_or_name_the_error(
    data: st.DataObject, which: str
) -> None:
    """A fleet is built from the shipped farms and profiles with one file mutated: it builds,
    or the error is a ConfigError."""
    original = data.draw(st.sampled_from(_shipped(which)))
    text = data.draw(mutated(original.read_text()))
    with tempfile.TemporaryDirectory() as folder:
        farms, profiles = Path(folder) / "farms", Path(folder) / "profiles"
        shutil.copytree(ROOT / "farms", farms)
        shutil.copytree(ROOT / "device_profiles", profiles)
        target = (farms if which == "farms" else profiles) / original.name
        target.write_text(text)
        _loads_or_config_error(lambda: load_fleet(2, 1, farms, profiles))


@SETTINGS
@given(data=st.data())
def test_mutated_scenarios_and_maps_load_or_name_the_error(data: st.DataObject) -> None:
    """Mutated scenario files and dashboard maps load, or raise a ConfigError."""
    files = [*_shipped("scenarios"), ROOT / "locustfiles" / "dashboard_map.toml"]
    original = data.draw(st.sampled_from(files))
    text = data.draw(mutated(original.read_text()))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / original.name
        path.write_text(text)
        if original.parent.name == "scenarios":
            _loads_or_config_error(lambda: load_scenario(path))
        else:
            _loads_or_config_error(lambda: load_map(path))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "startedDateTime": st.sampled_from(["2026-01-01T00:00:00Z", "yesterday", ""]) | JSON,
        "request": st.fixed_dictionaries(
            {},
            optional={
                "method": st.sampled_from(["GET", "POST", ""]) | JSON,
                "url": st.sampled_from(["http://h/api/farms/f-1", "/x", "http://h/app.js"]) | JSON,
                "headers": JSON,
                "postData": JSON,
            },
        ),
        "response": JSON,
        "time": JSON,
        "pageref": JSON,
        "_resourceType": JSON,
    },
)


@SETTINGS
@given(
    log=st.one_of(
        JSON,
        st.fixed_dictionaries(
            {"log": st.fixed_dictionaries({"entries": st.lists(ENTRY, max_size=5)})}
        ),
    )
)
def test_har_files_of_any_shape_map_or_name_the_error(log: object) -> None:
    """HAR files of arbitrary JSON shape, or of the right shape with wrong values, turn into
    a map or a ConfigError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recording.har"
        path.write_text(json.dumps(log))
        _loads_or_config_error(lambda: build_map(path))


@SETTINGS
@given(text=st.text(max_size=300))
def test_credentials_files_of_any_text_load_or_name_the_error(text: str) -> None:
    """Any text as a credentials CSV loads or raises a ConfigError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "devices.csv"
        path.write_text(text)
        _loads_or_config_error(lambda: load_credentials(path, ["cm-1", "cn-1"]))
