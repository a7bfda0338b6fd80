"""The statistics of a telemetry file: what a fleet sends, measured the same way for a
simulated history and for an export of real devices.

``simulate stats FILE`` reads JSON Lines, plain or gzipped (barnstorm's ``--output``
history, whose lines hold the message under ``payload``, or one message object per line),
barnstorm's Parquet history, or CSV with a column map, groups the messages by device type
and kind, and measures, per group:

- how messages arrive: the median interval between two messages of one device, its 95th
  percentile, the share of gaps longer than twice the median, the longest gap, and the
  share of duplicates (a device's ``seq`` seen again);
- each numeric field: the share of messages without it, its distribution, and over each
  device's daily means the mean day-to-day change and the lag-1 autocorrelation;
- band shares of a field over all messages of its group, missing ones as a band of their
  own (``--bands rehs=90,80,60,40``);
- spells below a threshold (``--below rehs=60``): a device's consecutive days whose
  daily mean is under it, a missing day or two between them not ending the spell; their
  lengths and how many there are per device-year (the episodes a dashboard shows);
- the shares of each value of a text field (a colour, a firmware version).

Every figure has a key (``cough_monitor/daily rehs band 80–<90``), so two files compare
figure by figure (``--compare``) and a test can hold the docs' figures to a rerun
(the figures themselves are in :mod:`.stats_figures`).
"""

from __future__ import annotations

import csv
import gzip
import itertools
import math
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from simulator.errors import ConfigError
from simulator.units import parse_instant

#: keys of the message envelope: identity and time, not measurements.
ENVELOPE = frozenset(
    {"device_id", "device_type", "farm_id", "room_id", "site_id", "fw", "seq", "ts", "kind"}
)
DAY = 86400.0
#: a spell longer than this is the long tail the figures single out.
LONG_SPELL_DAYS = 21
#: the score's bands and red threshold unless told otherwise.
DEFAULT_BANDS: dict[str, tuple[float, ...]] = {"rehs": (90.0, 80.0, 60.0, 40.0)}
DEFAULT_BELOW: dict[str, float] = {"rehs": 60.0}
#: a spell goes on across at most this many days without a value (a device offline).
SPELL_BRIDGE_DAYS = 2
#: spells less than this many days apart are one episode (a chronic one waxing and waning).
EPISODE_GAP_DAYS = 7


@dataclass
class Group:
    """The messages of one device type and kind, column by column."""

    device_type: str
    kind: str
    devices: dict[str, int] = field(default_factory=dict)
    device: array[int] = field(default_factory=lambda: array("i"))
    ts: array[float] = field(default_factory=lambda: array("d"))
    seq: array[int] = field(default_factory=lambda: array("q"))
    #: numeric field -> (message index, value) of the messages that carry it.
    numeric: dict[str, tuple[array[int], array[float]]] = field(default_factory=dict)
    #: text field -> counts of each value.
    text: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.device)

    def add(self, device_id: str, ts: float, seq: int, values: dict[str, Any]) -> None:
        index = len(self.device)
        self.device.append(self.devices.setdefault(device_id, len(self.devices)))
        self.ts.append(ts)
        self.seq.append(seq)
        for name, value in values.items():
            if name in ENVELOPE or value is None:
                continue
            if isinstance(value, (bool, str)):
                counts = self.text.get(name)
                if counts is None:
                    counts = self.text[name] = Counter()
                counts[str(value).lower() if isinstance(value, bool) else value] += 1
            elif isinstance(value, int | float):
                column = self.numeric.get(name)
                if column is None:
                    column = self.numeric[name] = (array("i"), array("d"))
                column[0].append(index)
                column[1].append(float(value))


@dataclass
class Telemetry:
    """One file's messages, by (device type, kind)."""

    path: Path
    groups: dict[tuple[str, str], Group] = field(default_factory=dict)
    unreadable: int = 0

    def add(self, message: dict[str, Any], where: str) -> None:
        device_id = message.get("device_id")
        if device_id is None:
            self.unreadable += 1
            return
        device_type = str(message.get("device_type") or "device")
        kind = str(message.get("kind") or "message")
        key = (device_type, kind)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(device_type, kind)
        seq = message.get("seq")
        group.add(
            str(device_id),
            instant(message.get("ts"), where),
            seq if isinstance(seq, int) and not isinstance(seq, bool) else -1,
            message,
        )


def instant(value: Any, where: str) -> float:
    """Epoch seconds of a timestamp: ISO 8601 text, or epoch seconds or milliseconds."""
    if value is None or value == "":
        return math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    text = str(value)
    try:
        return float(text) / 1000.0 if float(text) > 1e11 else float(text)
    except ValueError:
        pass
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise ConfigError(where, f"a timestamp: {exc}") from None


def read_jsonl(path: Path, telemetry: Telemetry | None = None) -> Telemetry:
    """Messages of a JSON Lines file: a message object per line, or barnstorm's history
    lines (``{"topic": ..., "payload": {...}}``). A line that is no JSON object is counted
    as unreadable, as is a message without ``device_id``."""
    data = telemetry or Telemetry(path)
    with _open(path, binary=True) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                data.unreadable += 1
                continue
            if isinstance(item, dict) and isinstance(item.get("payload"), dict):
                item = item["payload"]
            if not isinstance(item, dict):
                data.unreadable += 1
                continue
            data.add(item, f"{path}: line {number}")
    return data


def read_parquet(path: Path) -> Telemetry:
    """Messages of a Parquet history (``--output NAME.parquet``), payloads as written."""
    from simulator.transports.parquet import read_payloads

    data = Telemetry(path)
    for number, (_, payload) in enumerate(read_payloads(path), 1):
        if isinstance(payload, str):  # no JSON object, as its JSON line would not be
            data.unreadable += 1
        else:
            data.add(payload, f"{path}: row {number}")
    return data


def parse_columns(spec: str | None) -> dict[str, str]:
    """``device_id=Serial,ts=Date,rehs=Score`` -> {column in the file: name barnstorm uses}."""
    if not spec:
        return {}
    mapping: dict[str, str] = {}
    for part in spec.split(","):
        name, sep, column = part.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise ConfigError("--columns", f'expected NAME=COLUMN pairs, got "{part}"')
        mapping[column.strip()] = name.strip()
    return mapping


def read_csv(
    path: Path,
    columns: dict[str, str],
    device_type: str | None = None,
    kind: str | None = None,
) -> Telemetry:
    """Messages of a CSV file with a header row; ``columns`` renames its columns (at least
    ``device_id`` and ``ts`` must be there after renaming). Numbers are read as numbers,
    empty cells as missing, other cells as text."""
    data = Telemetry(path)
    try:
        with _open(path) as handle:
            return _read_csv_rows(path, csv.DictReader(handle), columns, device_type, kind, data)
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text (byte {exc.start}): expected CSV") from None
    except csv.Error as exc:
        raise ConfigError(str(path), f"not CSV ({exc})") from None


def _read_csv_rows(
    path: Path,
    reader: csv.DictReader[str],
    columns: dict[str, str],
    device_type: str | None,
    kind: str | None,
    data: Telemetry,
) -> Telemetry:
    header = [columns.get(name, name) for name in reader.fieldnames or ()]
    for needed in ("device_id", "ts"):
        if needed not in header:
            raise ConfigError(
                str(path),
                f'no "{needed}" column (columns: {", ".join(reader.fieldnames or ())}); '
                f"map one with --columns {needed}=COLUMN",
            )
    for number, row in enumerate(reader, 2):
        message: dict[str, Any] = {}
        for column, cell in row.items():
            if column is None or cell is None:
                continue
            name = columns.get(column, column)
            message[name] = _cell(cell) if name not in ("device_id", "ts") else cell
        message.setdefault("device_type", device_type)
        message.setdefault("kind", kind)
        data.add(message, f"{path}: line {number}")
    return data


def _cell(cell: str) -> Any:
    text = cell.strip()
    if not text or text.lower() in ("null", "nan", "na", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _open(path: Path, binary: bool = False) -> Any:
    """``path`` for reading; a ``.gz`` file through gzip."""
    try:
        if path.suffix.lower() == ".gz":
            return (
                gzip.open(path, "rb")
                if binary
                else gzip.open(path, "rt", encoding="utf-8", newline="")
            )
        return path.open("rb") if binary else path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read it ({exc.strerror})") from None


def read_file(
    path: Path,
    columns: dict[str, str] | None = None,
    device_type: str | None = None,
    kind: str | None = None,
) -> Telemetry:
    """A telemetry file by its suffix: ``.csv`` or ``.csv.gz`` (with the column map), or
    JSON Lines (``.jsonl``, ``.jsonl.gz``)."""
    if path.suffix.lower() == ".parquet":
        return read_parquet(path)
    if path.suffix.lower() == ".csv" or path.name.lower().endswith(".csv.gz"):
        return read_csv(path, columns or {}, device_type, kind)
    return read_jsonl(path)


# Measuring ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What to measure beyond the defaults: bands and thresholds by field."""

    bands: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(DEFAULT_BANDS))
    below: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BELOW))
    examples: int = 3  # devices whose daily series the HTML page draws


def _quantiles(values: np.ndarray[Any, Any], qs: Sequence[float]) -> list[float]:
    return [float(v) for v in np.quantile(values, qs)] if len(values) else [math.nan] * len(qs)


def band_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the bands that ``edges`` (descending) cut: ``≥90``, ``80–<90``, ...,
    ``<40``."""
    labels = [f"≥{edges[0]:g}"]
    labels += [f"{low:g}–<{high:g}" for high, low in itertools.pairwise(edges)]
    labels.append(f"<{edges[-1]:g}")
    return labels


def _daily(
    devices: np.ndarray[Any, Any], ts: np.ndarray[Any, Any], values: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Each device's daily mean: (device, day, mean), sorted by device then day."""
    ok = np.isfinite(ts)
    if not ok.any():
        empty = np.zeros(0)
        return empty.astype(np.int64), empty.astype(np.int64), empty
    days = np.floor(ts[ok] / DAY).astype(np.int64)
    first = int(days.min())
    keys = devices[ok].astype(np.int64) * 10_000_000 + (days - first)
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse, values[ok])
    counts = np.bincount(inverse)
    return unique // 10_000_000, unique % 10_000_000 + first, sums / counts


def _day_to_day(
    device: np.ndarray[Any, Any], day: np.ndarray[Any, Any], mean: np.ndarray[Any, Any]
) -> tuple[float, float]:
    """Mean absolute change between a device's consecutive days, and the lag-1
    autocorrelation of its daily means (each device's own mean taken out, pairs pooled)."""
    if len(mean) < 3:
        return math.nan, math.nan
    counts = np.bincount(device)
    centred = mean - (np.bincount(device, mean) / np.maximum(counts, 1))[device]
    pair = (device[1:] == device[:-1]) & (day[1:] - day[:-1] == 1)
    if not pair.any():
        return math.nan, math.nan
    change = float(np.mean(np.abs(mean[1:][pair] - mean[:-1][pair])))
    a, b = centred[:-1][pair], centred[1:][pair]
    scale = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
    return change, float(np.sum(a * b)) / scale if scale > 0 else math.nan


def spells(
    device: np.ndarray[Any, Any],
    day: np.ndarray[Any, Any],
    mean: np.ndarray[Any, Any],
    threshold: float,
) -> list[tuple[int, int, int]]:
    """Every spell below ``threshold`` in the daily series (sorted by device, then day) as
    (device, first day, last day): consecutive days under it, across at most
    ``SPELL_BRIDGE_DAYS`` days without a value."""
    found: list[tuple[int, int, int]] = []
    start = last = -1
    current = -1
    for d, t, low in zip(device.tolist(), day.tolist(), (mean < threshold).tolist(), strict=True):
        if d != current or (start >= 0 and t - last > SPELL_BRIDGE_DAYS + 1) or not low:
            if start >= 0:
                found.append((current, start, last))
            start = -1
            current = d
        if low:
            if start < 0:
                start = t
            last = t
    if start >= 0:
        found.append((current, start, last))
    return found


def episodes(found: list[tuple[int, int, int]]) -> int:
    """Spells of one device less than ``EPISODE_GAP_DAYS`` apart counted as one episode."""
    count = 0
    previous: tuple[int, int, int] | None = None
    for spell in found:
        if previous is None or spell[0] != previous[0] or spell[1] - previous[2] > EPISODE_GAP_DAYS:
            count += 1
        previous = spell
    return count


def measure(data: Telemetry, options: Options | None = None) -> dict[str, Any]:
    """Every figure of a file: a dict for ``--json``, tables and the HTML page."""
    options = options or Options()
    groups = []
    for key in sorted(data.groups):
        groups.append(_measure_group(data.groups[key], options))
    return {
        "file": str(data.path),
        "messages": sum(g.count for g in data.groups.values()),
        "unreadable": data.unreadable,
        "groups": groups,
    }


def _measure_group(group: Group, options: Options) -> dict[str, Any]:
    device = np.frombuffer(group.device, np.int32).astype(np.int64)
    ts = np.frombuffer(group.ts, np.float64)
    n = group.count
    out: dict[str, Any] = {
        "device_type": group.device_type,
        "kind": group.kind,
        "messages": n,
        "devices": len(group.devices),
    }
    order = np.lexsort((ts, device))
    d_sorted, t_sorted = device[order], ts[order]
    same = (d_sorted[1:] == d_sorted[:-1]) & np.isfinite(t_sorted[1:]) & np.isfinite(t_sorted[:-1])
    gaps = (t_sorted[1:] - t_sorted[:-1])[same]
    gaps = gaps[gaps > 0]
    known = np.isfinite(ts)
    days = np.unique(device[known] * 10_000_000 + np.floor(ts[known] / DAY).astype(np.int64))
    out["device_days"] = len(days)
    if len(gaps):
        median = float(np.median(gaps))
        out["interval"] = {
            "median_s": median,
            "p95_s": float(np.quantile(gaps, 0.95)),
            "gap_share": float(np.mean(gaps > 2.0 * median)),
            "max_gap_s": float(gaps.max()),
        }
    seq = np.frombuffer(group.seq, np.int64)
    with_seq = seq >= 0
    if with_seq.any():
        keys = device[with_seq] * (1 << 40) + seq[with_seq]
        out["duplicate_share"] = 1.0 - len(np.unique(keys)) / n
    fields: dict[str, Any] = {}
    for name in sorted(group.numeric):
        index_column, value_column = group.numeric[name]
        index = np.frombuffer(index_column, np.int32)
        values = np.frombuffer(value_column, np.float64)
        fields[name] = _measure_field(name, device[index], ts[index], values, n, options)
    out["fields"] = fields
    out["text"] = {
        name: {
            "missing_share": 1.0 - sum(counts.values()) / n,
            "shares": {value: c / n for value, c in counts.most_common(12)},
        }
        for name, counts in sorted(group.text.items())
    }
    return out


def _measure_field(
    name: str,
    device: np.ndarray[Any, Any],
    ts: np.ndarray[Any, Any],
    values: np.ndarray[Any, Any],
    n: int,
    options: Options,
) -> dict[str, Any]:
    finite = np.isfinite(values)
    device, ts, values = device[finite], ts[finite], values[finite]
    qs = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    p1, p5, p25, p50, p75, p95, p99 = _quantiles(values, qs)
    figures: dict[str, Any] = {
        "missing_share": 1.0 - len(values) / n if n else math.nan,
        "mean": float(values.mean()) if len(values) else math.nan,
        "sd": float(values.std()) if len(values) else math.nan,
        "min": float(values.min()) if len(values) else math.nan,
        "p1": p1,
        "p5": p5,
        "p25": p25,
        "p50": p50,
        "p75": p75,
        "p95": p95,
        "p99": p99,
        "max": float(values.max()) if len(values) else math.nan,
    }
    daily_device, daily_day, daily_mean = _daily(device, ts, values)
    change, autocorrelation = _day_to_day(daily_device, daily_day, daily_mean)
    figures["day_to_day_change"] = change
    figures["lag1_autocorrelation"] = autocorrelation
    edges = options.bands.get(name)
    if edges:
        cut = np.digitize(values, sorted(edges))  # 0: below the lowest edge
        counts = np.bincount(cut, minlength=len(edges) + 1)[::-1]
        shares = {label: int(c) / n for label, c in zip(band_labels(edges), counts, strict=True)}
        shares["missing"] = 1.0 - len(values) / n
        figures["bands"] = shares
    threshold = options.below.get(name)
    if threshold is not None and len(daily_mean):
        found = spells(daily_device, daily_day, daily_mean, threshold)
        lengths = np.array([last - first + 1 for _, first, last in found], np.float64)
        years = _device_spans(daily_device, daily_day) / 365.25
        figures["below"] = {
            "threshold": threshold,
            "days_share": float(np.mean(daily_mean < threshold)),
            "spells": len(lengths),
            "per_device_year": len(lengths) / years if years > 0 else math.nan,
            "episodes_per_device_year": episodes(found) / years if years > 0 else math.nan,
            "mean_days": float(lengths.mean()) if len(lengths) else math.nan,
            "median_days": float(np.median(lengths)) if len(lengths) else math.nan,
            "p90_days": float(np.quantile(lengths, 0.9)) if len(lengths) else math.nan,
            "max_days": float(lengths.max()) if len(lengths) else math.nan,
            "over_21_days_share": float(np.mean(lengths > LONG_SPELL_DAYS))
            if len(lengths)
            else math.nan,
        }
    if len(values):
        low, high = (p1, p99) if p99 > p1 else (float(values.min()), float(values.max()) + 1)
        counts, bin_edges = np.histogram(np.clip(values, low, high), bins=30, range=(low, high))
        figures["histogram"] = {"edges": bin_edges.tolist(), "counts": counts.tolist()}
    if options.examples and len(daily_mean):
        busiest = np.argsort(-np.bincount(daily_device), kind="stable")[: options.examples]
        figures["examples"] = [
            {
                "days": (daily_day[daily_device == d] - int(daily_day.min())).tolist(),
                "values": daily_mean[daily_device == d].round(3).tolist(),
            }
            for d in busiest.tolist()
            if (daily_device == d).any()
        ]
    return figures


def _device_spans(device: np.ndarray[Any, Any], day: np.ndarray[Any, Any]) -> float:
    """Device-days from each device's first to its last day with a value."""
    if not len(device):
        return 0.0
    first = np.full(int(device.max()) + 1, np.iinfo(np.int64).max)
    last = np.full(int(device.max()) + 1, np.iinfo(np.int64).min)
    np.minimum.at(first, device, day)
    np.maximum.at(last, device, day)
    seen = last >= first
    return float(np.sum(last[seen] - first[seen] + 1))
