"""Regression rules against a baseline: parsed like SLAs, judged per scope, and the
`simulate compare` command's exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulator.errors import ConfigError
from simulator.exitcodes import EXIT_OK, EXIT_SLA, EXIT_USAGE
from simulator.metrics.regression import DEFAULT_RULES, compare, parse_rule, parse_rules, scopes
from tests.helpers import simulate


def _request(name: str, p95: float, *, failures: int = 0, queries: float = 1.0) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "dashboard",
        "requests": 200,
        "failures": failures,
        "error_rate": failures / 200,
        "rate_per_s": 10.0,
        "p50_ms": p95 / 2,
        "p95_ms": p95,
        "p99_ms": p95 * 1.2,
        "max_ms": p95 * 2,
        "backend": {"ms": {"total": p95 / 3, "db": p95 / 4}, "queries_per_request": queries},
    }


def _mixed(*requests: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "mixed", "requests": list(requests)}


def test_rules_parse_with_factor_slack_and_scope() -> None:
    """A factor and a slack in the metric's unit, a quoted scope with spaces, error rates in
    percent; anything else is one line naming the flag."""
    rule = parse_rule('"GET /api/farms".p95<=baseline*1.2+5ms')
    assert (rule.scope, rule.metric, rule.op, rule.factor, rule.slack) == (
        "GET /api/farms",
        "p95",
        "<=",
        1.2,
        5.0,
    )
    assert rule.limit(100.0) == pytest.approx(125.0)
    assert parse_rule("error_rate<=baseline+0.5%").limit(0.01) == pytest.approx(0.015)
    assert parse_rule("queries<=baseline").limit(7.0) == 7.0
    assert len(parse_rules(DEFAULT_RULES)) == len(DEFAULT_RULES)
    with pytest.raises(ConfigError, match=r"--rule: \"p95<=250ms\" is not a regression rule"):
        parse_rule("p95<=250ms")
    with pytest.raises(ConfigError, match=r"error_rate takes %"):
        parse_rule("error_rate<=baseline+5ms")


def test_a_slower_endpoint_breaks_and_noise_within_the_slack_holds() -> None:
    """p95 from 100 to 160 ms breaks 1.2x+5ms; 2 to 6 ms holds by the slack; an error rate
    from 0 to 1 % breaks +0.5 %; queries from 1 to 40 break; a scope in one run only, or
    with too few requests, is said apart and not judged."""
    few = {**_request("rare", 10.0), "requests": 3}
    before = _mixed(_request("room", 100.0), _request("farms", 2.0), _request("gone", 5), few)
    after = _mixed(
        _request("room", 160.0, queries=40.0),
        _request("farms", 6.0, failures=2),
        _request("new", 5),
        {**few, "p95_ms": 900.0},
    )
    result = compare(scopes(before, "a"), scopes(after, "b"), parse_rules(DEFAULT_RULES))
    broken = {(j.scope, j.metric) for j in result.judgements if not j.held}
    assert broken == {
        ("room", "p95"),
        ("room", "queries"),
        ("room", "p99"),
        ("farms", "error_rate"),
    }
    held = {(j.scope, j.metric) for j in result.judgements if j.held}
    assert ("farms", "p95") in held
    assert result.skipped == {
        "gone": "only in the baseline",
        "new": "only in this run",
        "rare": "3 requests: too few to judge",
    }
    assert result.regressed
    same = compare(scopes(before, "a"), scopes(before, "a"), parse_rules(DEFAULT_RULES))
    assert not same.regressed
    with pytest.raises(ConfigError, match=r'no scope "nowhere" in both runs'):
        compare(scopes(before, "a"), scopes(after, "b"), parse_rules(["nowhere.p95<=baseline"]))


def test_a_runs_report_compares_per_device_type() -> None:
    """A run's report gives one scope per device type: latency, failed and dropped share,
    rate."""
    counts = {
        "sent": 1000,
        "failed": 5,
        "dropped": 5,
        "rate_per_s": 50.0,
        "latency_ms": {"p50": 3.0, "p95": 9.0, "p99": 20.0},
    }
    report = {"totals": counts, "by_device_type": {"cough_monitor": counts}}
    figures = scopes(report, "r")["cough_monitor"]
    assert (figures["p95"], figures["error_rate"], figures["rate"]) == (9.0, 0.01, 50.0)
    with pytest.raises(ConfigError, match=r"x\.json: not a barnstorm report"):
        scopes({"hello": 1}, "x.json")


def test_compare_exits_3_on_a_regression_and_0_against_itself(tmp_path: Path) -> None:
    """The command: exit 3 with the broken rule named, 0 for a run against itself, 2 for a
    file that is not a report; --html writes both runs side by side."""
    baseline, current = tmp_path / "base.json", tmp_path / "now.json"
    baseline.write_text(json.dumps(_mixed(_request("room chart", 50.0))))
    current.write_text(json.dumps(_mixed(_request("room chart", 50.0, queries=900.0))))
    page = tmp_path / "cmp.html"
    worse = simulate("compare", str(baseline), str(current), "--html", str(page))
    assert worse.returncode == EXIT_SLA, worse.stdout + worse.stderr
    assert "BROKEN room chart: queries 900.0 against 1.0" in " ".join(worse.stdout.split())
    assert "Regression" in page.read_text()
    same = simulate("compare", str(baseline), str(baseline))
    assert same.returncode == EXIT_OK, same.stdout + same.stderr
    (tmp_path / "bad.json").write_text("[1, 2]")
    bad = simulate("compare", str(baseline), str(tmp_path / "bad.json"))
    assert bad.returncode == EXIT_USAGE
    assert bad.stderr.strip() == "simulate: error: CURRENT: " + str(tmp_path / "bad.json") + (
        " is not a barnstorm report"
    )
