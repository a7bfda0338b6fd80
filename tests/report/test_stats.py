"""`simulate stats`: figures of hand-made telemetry whose answers are known, CSV read with a
column map, two files side by side, and bad input named in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulator.errors import ConfigError
from simulator.report.stats import Options, measure, read_csv, read_file
from simulator.report.stats_page import markdown, render_stats_html, rows
from tests.helpers import simulate

DAY = 86400
START = 1_735_689_600  # 2025-01-01T00:00:00Z


def _daily(path: Path, series: dict[str, list[float | None]], *, repeat: int = 0) -> Path:
    """One daily message per device and day, ``None`` for a day without a score; the first
    ``repeat`` messages of each device sent twice (same seq)."""
    lines = []
    for device, values in series.items():
        for day, value in enumerate(values):
            message = {
                "device_id": device,
                "device_type": "cough_monitor",
                "kind": "daily",
                "seq": day,
                "ts": START + day * DAY,
                "rehs": value,
                "rehs_color": "blue" if value is None else ("red" if value < 40 else "green"),
            }
            copies = 2 if day < repeat else 1
            lines += [json.dumps({"topic": "t", "payload": message})] * copies
    path.write_text("\n".join(lines) + "\n")
    return path


def _field(stats: dict[str, Any], name: str = "rehs") -> dict[str, Any]:
    field: dict[str, Any] = stats["groups"][0]["fields"][name]
    return field


def test_spells_bands_and_episodes_of_a_known_series(tmp_path: Path) -> None:
    """Device a: a 3-day spell below 60, seven good days, a 4-day spell with a missing day
    inside (it does not end it), five good days and a 2-day spell (less than a week after:
    the same episode); device b: one 2-day spell at its very end. Spell lengths, spells and
    episodes per device-year, the band shares over all device-days (missing included) and
    the share of days under 60 are exactly these."""
    a: list[float | None] = [95, 50, 50, 50, *[95] * 7, 30, None, 30, 30, *[95] * 5, 55, 55, 95]
    b: list[float | None] = [*[85] * 8, 20, 20]
    stats = measure(read_file(_daily(tmp_path / "a.jsonl", {"a": a, "b": b})))
    field = _field(stats)
    below = field["below"]
    assert below["spells"] == 4
    assert (below["median_days"], below["max_days"]) == (2.5, 4.0)
    years = (23 + 10) / 365.25
    assert below["per_device_year"] == pytest.approx(4 / years)
    assert below["episodes_per_device_year"] == pytest.approx(3 / years)
    assert below["days_share"] == pytest.approx(10 / 32)
    bands = field["bands"]
    assert bands["≥90"] == pytest.approx(14 / 33)
    assert bands["80–<90"] == pytest.approx(8 / 33)
    assert bands["60–<80"] == 0.0
    assert bands["40–<60"] == pytest.approx(5 / 33)
    assert bands["<40"] == pytest.approx(5 / 33)
    assert bands["missing"] == pytest.approx(1 / 33)
    assert field["missing_share"] == pytest.approx(1 / 33)
    assert stats["groups"][0]["text"]["rehs_color"]["shares"]["blue"] == pytest.approx(1 / 33)


def test_day_to_day_change_autocorrelation_intervals_and_duplicates(tmp_path: Path) -> None:
    """A score alternating 90/80 changes by 10 a day and has a lag-1 autocorrelation of -1;
    one that climbs by 1 a day changes by 1 and is strongly persistent. Daily messages
    arrive every day, a device silent for three days shows as one gap over twice the
    median, and a message sent twice is a duplicate."""
    alternating: list[float | None] = [90.0 if d % 2 else 80.0 for d in range(40)]
    climbing: list[float | None] = [50.0 + d for d in range(40)]
    field = _field(measure(read_file(_daily(tmp_path / "x.jsonl", {"x": alternating}))))
    assert field["day_to_day_change"] == pytest.approx(10.0)
    assert field["lag1_autocorrelation"] == pytest.approx(-1.0, abs=0.03)
    field = _field(measure(read_file(_daily(tmp_path / "y.jsonl", {"y": climbing}))))
    assert field["day_to_day_change"] == pytest.approx(1.0)
    assert field["lag1_autocorrelation"] > 0.9
    path = _daily(tmp_path / "g.jsonl", {"g": [90.0] * 10}, repeat=2)
    lines = path.read_text().splitlines()
    del lines[5:8]  # three days without a message
    path.write_text("\n".join(lines) + "\n")
    group = measure(read_file(path))["groups"][0]
    assert group["interval"]["median_s"] == DAY
    assert group["interval"]["max_gap_s"] == 4 * DAY
    assert group["interval"]["gap_share"] == pytest.approx(1 / 6)
    assert group["duplicate_share"] == pytest.approx(2 / 9)


def test_a_csv_export_with_a_column_map_reads_as_the_same_figures(tmp_path: Path) -> None:
    """The same scores as CSV with the vendor's column names, mapped with --columns and
    given a device type and kind, measure exactly as the JSON Lines file does."""
    series: dict[str, list[float | None]] = {"a": [95, 50, None, 40, 99], "b": [88, 87, 30, 30, 96]}
    jsonl = measure(read_file(_daily(tmp_path / "s.jsonl", series)))
    csv_path = tmp_path / "export.csv"
    lines = ["Serial,Date,ReHS,ReHS Color"]
    for device, values in series.items():
        for day, value in enumerate(values):
            date = f"2025-01-{day + 1:02d}"
            colour = "blue" if value is None else ("red" if value < 40 else "green")
            lines.append(f"{device},{date},{'' if value is None else int(value)},{colour}")
    csv_path.write_text("\n".join(lines) + "\n")
    columns = {"Serial": "device_id", "Date": "ts", "ReHS": "rehs", "ReHS Color": "rehs_color"}
    exported = measure(read_csv(csv_path, columns, "cough_monitor", "daily"))
    assert rows(exported) == [r for r in rows(jsonl) if "duplicates" not in r[0]]


def test_two_files_side_by_side_and_the_page(tmp_path: Path) -> None:
    """--compare puts both values and the change per figure: shares in percentage points,
    other figures in percent; the page holds a histogram with both files' bars and the
    example series."""
    before: list[float | None] = [*[95.0] * 8, 30.0, 30.0]
    after: list[float | None] = [*[95.0] * 6, *[30.0] * 4]
    first = measure(read_file(_daily(tmp_path / "1.jsonl", {"a": before})))
    second = measure(read_file(_daily(tmp_path / "2.jsonl", {"a": after})))
    changes = {key: (a, b, c) for key, a, b, c in rows(first, second)}
    assert changes["cough_monitor/daily rehs band <40"] == ("20.0 %", "40.0 %", "+20.0 pp")
    assert changes["cough_monitor/daily rehs p95"][2] == "+0 %"
    assert "| cough_monitor/daily rehs band <40 | 20.0 % | 40.0 % | +20.0 pp |" in markdown(
        first, second
    )
    page = render_stats_html(first, second)
    assert page.count("<svg") == 2
    assert "second" in page
    assert "<rect" in page
    assert "<polyline" in page


def test_bad_input_is_one_line_naming_the_place(tmp_path: Path) -> None:
    """A CSV without the device column names the file and the --columns fix; a timestamp
    that is no date names the file and line; a bad --bands names the flag; all exit 2."""
    export = tmp_path / "export.csv"
    export.write_text("Serial,Date,ReHS\nx,2025-01-01,90\n")
    with pytest.raises(ConfigError, match=r'export.csv: no "device_id" column .*--columns'):
        read_csv(export, {}, None, None)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"device_id": "a", "ts": "yesterday"}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl: line 1: a timestamp: expected an ISO"):
        read_file(bad)
    result = simulate("stats", str(bad), "--bands", "rehs=high")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'simulate: error: --bands: expected FIELD=EDGE,EDGE,... (numbers), got "rehs=high"'
    ]
    missing = simulate("stats", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2
    assert "none.jsonl: no such file" in missing.stderr


def test_options_choose_the_bands_and_the_threshold(tmp_path: Path) -> None:
    """Bands and a threshold for another field (a temperature) are measured as asked."""
    path = tmp_path / "t.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"device_id": "c", "kind": "reading", "ts": START + i * 3600, "t": v})
            for i, v in enumerate([20.0, 21.0, 30.0, 31.0, 19.0])
        )
    )
    stats = measure(read_file(path), Options(bands={"t": (30.0, 20.0)}, below={"t": 25.0}))
    field = _field(stats, "t")
    assert field["bands"] == {"≥30": 0.4, "20–<30": 0.4, "<20": 0.2, "missing": 0.0}
    assert (field["below"]["days_share"], field["below"]["spells"]) == (1.0, 1)  # mean 24.2


def test_the_command_prints_a_table_json_and_a_page_of_two_files(tmp_path: Path) -> None:
    """`simulate stats A --compare B`: the terminal table names both files and each
    figure's change; --json holds both files' figures and the changes; --html writes the
    page with histograms of both."""
    before: list[float | None] = [*[95.0] * 8, 30.0, 30.0]
    after: list[float | None] = [*[95.0] * 6, *[30.0] * 4]
    first = _daily(tmp_path / "a.jsonl", {"a": before})
    second = _daily(tmp_path / "b.jsonl", {"a": after})
    page = tmp_path / "page.html"
    table = simulate("stats", str(first), "--compare", str(second), "--html", str(page))
    assert table.returncode == 0, table.stderr
    flat = " ".join(table.stdout.split())
    assert "a.jsonl b.jsonl change" in flat
    assert "cough_monitor/daily rehs band <40 20.0 % 40.0 % +20.0 pp" in flat
    assert page.read_text().count("<svg") == 2
    result = simulate("stats", str(first), "--compare", str(second), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["first"]["file"] == str(first)
    assert data["second"]["groups"][0]["fields"]["rehs"]["bands"]["<40"] == 0.4
    change = next(c for c in data["changes"] if c["figure"].endswith("band <40"))
    assert change["change"] == "+20.0 pp"
