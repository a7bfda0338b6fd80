"""The reference backend's API as an OpenAPI 3.1 document (served at ``/openapi.json``).

The schemas come from the pydantic models the handlers validate with
(:mod:`~simulator.backend.schema`), so the document cannot drift from what the backend
accepts; the paths are written here once. The test suite fuzzes the backend from this
document (every operation, valid and invalid inputs) and holds it to it: no answer is a
500, and every answer is one the document declares.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from simulator.backend import schema

_MODELS: list[type[BaseModel]] = [
    schema.Envelope,
    schema.Login,
    schema.Token,
    schema.ErrorAnswer,
    schema.IngestAnswer,
    schema.FarmRow,
    schema.FarmAnswer,
    schema.RoomAnswer,
    schema.DeviceAnswer,
    schema.Alert,
    schema.AckAnswer,
    schema.ReadBack,
    schema.Mark,
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(body: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": body}}}


def _answer(description: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, **_json(body or _ref("ErrorAnswer"))}


_LOGIN_REQUIRED = _answer("no live session token (log in at /api/login)")
_PATH_ID = {"type": "string", "minLength": 1, "maxLength": 128}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _PATH_ID}


def _dashboard(summary: str, answer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    responses = {"200": _answer(summary, answer), "401": _LOGIN_REQUIRED}
    responses.update(extra.pop("responses", {}))
    return {"summary": summary, "security": [{"session": []}], "responses": responses, **extra}


def _paths() -> dict[str, Any]:
    # The request as a whole (an error), or each of its messages (counted by reason).
    refused = {"anyOf": [_ref("ErrorAnswer"), _ref("IngestAnswer")]}
    not_found = {"404": _answer("not one of the user's (or no such thing)")}
    epoch = {"type": "number"}
    read_back_refused = {
        "401": _answer("the read-back token is missing or wrong"),
        "403": _answer("read-back is off (no --readback-token)"),
    }
    return {
        "/ingest": {
            "post": {
                "summary": "Store one message, or a batch (a JSON array), from devices",
                "security": [{}, {"device": []}, {"deviceBasic": []}],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "oneOf": [
                                _ref("Envelope"),
                                {"type": "array", "items": _ref("Envelope")},
                            ]
                        }
                    ),
                },
                "responses": {
                    "202": _answer("every message stored", _ref("IngestAnswer")),
                    "207": _answer("some stored, some refused", _ref("IngestAnswer")),
                    "400": _answer("not JSON", refused),
                    "401": _answer("unknown device credentials"),
                    "403": _answer("a message of another device than the credentials'"),
                    "413": _answer("the request or a message is too large", refused),
                    "422": _answer("every message refused", refused),
                },
            }
        },
        "/api/login": {
            "post": {
                "summary": "A session token for a user name and password",
                "requestBody": {"required": True, **_json(_ref("Login"))},
                "responses": {
                    "200": _answer("logged in", _ref("Token")),
                    "400": _answer("not a user name and a password"),
                    "401": _answer("bad credentials"),
                    "413": _answer("request too large"),
                },
            }
        },
        "/api/readback": {
            "get": {
                "summary": "What was stored, per device (for reconciliation)",
                "security": [{"readback": []}],
                "parameters": [
                    {
                        "name": "since",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,9})?$"},
                        "description": "a mark from /api/readback/mark",
                    }
                ],
                "responses": {
                    "200": _answer("the books", _ref("ReadBack")),
                    "400": _answer("since is not a mark"),
                    **read_back_refused,
                },
            }
        },
        "/api/readback/mark": {
            "get": {
                "summary": "A mark in the backend's time (read back ?since= it)",
                "security": [{"readback": []}],
                "responses": {"200": _answer("a mark", _ref("Mark")), **read_back_refused},
            }
        },
        "/api/farms": {
            "get": _dashboard("The user's farms", {"type": "array", "items": _ref("FarmRow")})
        },
        "/api/farms/{farm_id}": {
            "get": _dashboard(
                "A farm's rooms and their health",
                _ref("FarmAnswer"),
                parameters=[_path("farm_id")],
                responses=not_found,
            )
        },
        "/api/farms/{farm_id}/rooms/{room_id}": {
            "get": _dashboard(
                "A room's cough and climate series",
                _ref("RoomAnswer"),
                parameters=[
                    _path("farm_id"),
                    _path("room_id"),
                    {"name": "from", "in": "query", "required": False, "schema": epoch},
                    {"name": "to", "in": "query", "required": False, "schema": epoch},
                ],
                responses={"400": _answer("from or to is not epoch seconds"), **not_found},
            )
        },
        "/api/devices/{device_id}": {
            "get": _dashboard(
                "A device's last message",
                _ref("DeviceAnswer"),
                parameters=[_path("device_id")],
                responses=not_found,
            )
        },
        "/api/alerts": {
            "get": _dashboard(
                "The user's farms' latest alerts", {"type": "array", "items": _ref("Alert")}
            )
        },
        "/api/alerts/{alert_id}/ack": {
            "post": _dashboard(
                "Acknowledge an alert (operators)",
                _ref("AckAnswer"),
                parameters=[
                    {
                        "name": "alert_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": schema.INT64_MAX},
                    }
                ],
                responses={"403": _answer("a viewer may not acknowledge"), **not_found},
            )
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document of the reference backend."""
    _, definitions = models_json_schema(
        [(model, "validation") for model in _MODELS], ref_template="#/components/schemas/{model}"
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "barnstorm reference backend",
            "version": "1",
            "description": "A small farm-health backend to point barnstorm at: ingest, "
            "dashboards for each user's farms, and a read-back for reconciliation.",
        },
        "paths": _paths(),
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {
                "session": {"type": "http", "scheme": "bearer", "description": "/api/login"},
                "readback": {"type": "http", "scheme": "bearer", "description": "--readback-token"},
                "device": {"type": "http", "scheme": "bearer", "description": "a device's token"},
                "deviceBasic": {"type": "http", "scheme": "basic"},
            },
        },
    }


DOCUMENT = document()
