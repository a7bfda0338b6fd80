"""The reference backend fuzzed from its own OpenAPI document (schemathesis), and its MQTT
ingest fed arbitrary payloads (hypothesis): no input answers 500, every answer is one the
document declares, and no payload ever stops the MQTT ingest."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from simulator.backend.accounts import Accounts, User, hash_password
from simulator.backend.app import create_app, mqtt_consumer
from simulator.backend.store import Store

READBACK = "fuzz-readback-token-0123456789abcdef"
PASSWORD = "fuzz-password"
FUZZ_EXAMPLES = 150  # per operation and mode: about two thousand requests in all


def _app() -> Any:
    users = {
        "operator": User("operator", hash_password(PASSWORD), "operator", None),
        "viewer": User("viewer", hash_password(PASSWORD), "viewer", frozenset({"farm-00001"})),
    }
    app = create_app(":memory:", accounts=Accounts(users, readback_token=READBACK))
    token = app.state.backend.accounts.open_session(users["operator"])
    app.state.fuzz_headers = {"authorization": f"Bearer {token}"}
    return app


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=FUZZ_EXAMPLES
)
# A body past the limit is refused by its size (413) before its contents are looked at.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]


@schema.auth()
class Credentials:
    """A live session for the dashboards, the read-back token for the read-back; the
    fuzzer's checks also send each request without them, and with wrong ones."""

    def get(self, case: Any, context: Any) -> str:
        if case.operation.path.startswith("/api/readback"):
            return f"Bearer {READBACK}"
        return str(APP.state.fuzz_headers["authorization"])

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


@pytest.mark.slow
@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_every_input_as_its_document_says(case: Any) -> None:
    """Every operation, fed valid and invalid inputs generated from the OpenAPI document,
    answers no 500, and only statuses, content types and bodies the document declares."""
    case.call_and_validate()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
ENVELOPE = {
    "device_id": "cn-1",
    "device_type": "climate_node",
    "farm_id": "farm-00001",
    "room_id": "farm-00001-s1-r01",
    "fw": "2.7.0",
    "seq": 0,
    "ts": "2026-01-01T00:00:00Z",
    "kind": "reading",
}
messages = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    # A real envelope with one field replaced by anything: the wrongly typed envelope field
    # that once stopped the ingest for good.
    st.tuples(
        st.sampled_from([*sorted(ENVELOPE), "temp_c", "rehs", "cough_count"]), json_values
    ).map(lambda pair: json.dumps({**ENVELOPE, pair[0]: pair[1]}).encode()),
)


def _handled(store: Store) -> int:
    """Messages the store holds (duplicates too) and messages it refused."""
    books = store.readback()
    return int(books["received"] + books["duplicates"] + sum(store.rejected.values()))


@given(payloads=st.lists(messages, min_size=1, max_size=10))
@settings(
    deadline=None, max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_no_mqtt_payload_stops_the_ingest(tmp_path: Path, payloads: list[bytes]) -> None:
    """Whatever the MQTT ingest is handed, it never raises; each payload is stored or
    counted as refused by its reason, and a good message after them is still stored."""
    store = Store(str(tmp_path / "mqtt.db"))
    consume = mqtt_consumer(store)
    before = _handled(store)
    for payload in payloads:
        consume("barnstorm/fuzz", payload, None)
    good_seq = 10**6 + len(payloads)
    consume("barnstorm/fuzz", orjson.dumps({**ENVELOPE, "seq": good_seq}), None)
    assert _handled(store) == before + len(payloads) + 1
    books = store.readback()
    assert any(low <= good_seq <= high for low, high in books["devices"]["cn-1"]["seqs"])
