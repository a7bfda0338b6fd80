"""What the reference backend accepts, declared once as pydantic models: the ingest
envelope and the readings the dashboards use, the login body, and the answers. The models
validate at the edge (nothing unchecked reaches the store) and give the OpenAPI document
its schemas (:mod:`~simulator.backend.openapi`).

Every message carries the envelope (``device_id``, ``device_type``, ``farm_id``,
``room_id``, ``fw``, ``seq``, ``ts``, ``kind``) and the fields of its kind; fields the
backend does not know are kept as sent, as a real ingest keeps a firmware's extra fields.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulator.units import parse_instant

#: the largest integer a database column of 64 bits holds.
INT64_MAX = (1 << 63) - 1
#: the latest instant a message may carry (9999-12-31T23:59:59Z), as epoch seconds.
LATEST_TS = 253_402_300_799

Id = Annotated[str, Field(min_length=1, max_length=128)]
Name = Annotated[str, Field(min_length=1, max_length=64)]
Reading = Annotated[float, Field(allow_inf_nan=False)]


class Envelope(BaseModel):
    """A message as the backend stores it: the envelope checked, known readings typed,
    other fields kept (strict: ``"7"`` is not a number, ``1`` is not a string)."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    device_id: Id
    device_type: Name
    farm_id: Id
    room_id: Id | None = None
    fw: Annotated[str, Field(max_length=64)] | None = None
    seq: Annotated[int, Field(ge=0, le=INT64_MAX)]
    ts: (
        Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"})]
        | Annotated[int, Field(ge=0, le=LATEST_TS)]
    )
    kind: Name
    # The readings the dashboards and alerts read: typed when present.
    cough_count: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = None
    temp_c: Reading | None = None
    rh_pct: Reading | None = None
    co2_ppm: Reading | None = None
    rehs: Annotated[int, Field(ge=1, le=99)] | None = None
    rehs_color: Annotated[str, Field(max_length=16)] | None = None

    @field_validator("temp_c", "rh_pct", "co2_ppm", mode="before")
    @classmethod
    def _integers_are_readings(cls, value: Any) -> Any:
        # A firmware that rounds sends 22, not 22.0; strict mode would refuse it.
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    @field_validator("seq", "ts", "cough_count", "rehs", mode="before")
    @classmethod
    def _integral_numbers_are_integers(cls, value: Any) -> Any:
        # JSON has one number type: 7.0 is the integer 7 (as JSON Schema says), 7.5 is not.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @field_validator("ts")
    @classmethod
    def _instant(cls, value: str | int) -> str | int:
        if isinstance(value, str):
            try:
                parse_instant(value)
            except (ValueError, OverflowError):
                raise ValueError("not an ISO 8601 instant") from None
        return value

    def epoch(self) -> float:
        """``ts`` as epoch seconds."""
        return float(self.ts) if isinstance(self.ts, int) else parse_instant(self.ts)


def envelope_of(message: object) -> Envelope:
    """``message`` (decoded JSON) checked as a message; :class:`Refused` says why not."""
    if not isinstance(message, dict):
        raise Refused("a message must be a JSON object")
    try:
        return Envelope.model_validate(message)
    except ValidationError as exc:
        raise Refused(_reason(exc)) from None


def _reason(exc: ValidationError) -> str:
    """The first problem, as one short reason (a metric label, so low cardinality):
    ``missing device_id``, ``seq has the wrong type``, ``seq out of range``."""
    error = exc.errors(include_url=False, include_input=False)[0]
    field = str(error["loc"][0]) if error["loc"] else "message"
    kind = error["type"]
    if kind == "missing":
        return f"missing {field}"
    if kind.endswith(("_type", "_parsing")) or kind in ("union_tag_invalid", "is_instance_of"):
        return f"{field} has the wrong type"
    if "too_long" in kind or "too_short" in kind:
        return f"{field} has the wrong length"
    if kind.startswith(("greater", "less")) or kind == "finite_number":
        return f"{field} out of range"
    if kind == "value_error":
        return f"{field} is not valid"
    return f"{field} has the wrong type"


class Refused(ValueError):
    """A message or request the backend refuses; ``status`` is the HTTP answer."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.status = status


class Login(BaseModel):
    """``POST /api/login``."""

    model_config = ConfigDict(strict=True, extra="forbid")

    username: Annotated[str, Field(min_length=1, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class Token(BaseModel):
    token: str
    expires_in: int = Field(description="seconds the token stays valid")


class ErrorAnswer(BaseModel):
    error: str


class IngestAnswer(BaseModel):
    stored: int
    rejected: int
    reasons: dict[str, int] = Field(default_factory=dict, description="refusals by reason")


class FarmRow(BaseModel):
    farm_id: str
    name: str
    devices: int
    messages: int


class RoomHealth(BaseModel):
    room_id: str
    health: str


class FarmAnswer(BaseModel):
    farm_id: str
    rooms: list[RoomHealth]


class CoughPoint(BaseModel):
    device_id: str
    ts: float
    coughs: int


class ClimatePoint(BaseModel):
    device_id: str
    ts: float
    temp_c: float | None
    rh_pct: float | None
    co2_ppm: float | None


class RoomAnswer(BaseModel):
    room_id: str
    coughs: list[CoughPoint]
    climate: list[ClimatePoint]


class DeviceAnswer(BaseModel):
    device_id: str
    last: dict[str, Any]
    messages: int


class Alert(BaseModel):
    id: int
    device_id: str
    farm_id: str
    room_id: str | None
    kind: str
    detail: str
    ts: float
    acknowledged: int


class AckAnswer(BaseModel):
    id: int
    acknowledged: bool


class DeviceBooks(BaseModel):
    received: int
    highest_seq: int
    missing: list[list[int]]
    duplicates: int
    seqs: list[list[int]]


class ReadBack(BaseModel):
    devices: dict[str, DeviceBooks]
    received: int
    duplicates: int
    rejected: int
    rejected_by_reason: dict[str, int]
    since: str | None


class Mark(BaseModel):
    mark: str
