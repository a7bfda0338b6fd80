"""How often the regression gate cries wolf, and how often it catches a real regression.

Simulated nights of one build (five dashboard endpoints with realistic request counts, 20 to
2,000 a night, log-normal latencies whose median also drifts a few percent from night to
night, failures at 0.2 %), compared by ``simulate compare``'s default rules: the share of
comparisons in which any rule breaks is the false-alarm rate. Then the same nights with one
endpoint 50 % slower, with its failures at 3 %, or with its queries per request from 1 to
40: the share caught is the gate's power. One baseline, and five.

    python -m benchmarks gate
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simulator.metrics.regression import DEFAULT_RULES, compare, parse_rules, scopes

ENDPOINTS = {"farm list": (40, 30), "farm": (60, 120), "room chart": (150, 300)}
ENDPOINTS |= {"device": (25, 800), "alerts": (15, 2000)}
RULES = parse_rules(DEFAULT_RULES)


def _night(rng: np.random.Generator, change: str | None = None) -> dict[str, Any]:
    requests = []
    for name, (median, typical) in ENDPOINTS.items():
        count = max(int(rng.normal(typical, typical * 0.2)), 5)
        drift = rng.normal(1.0, 0.05)  # the machine, the data: nights differ a little
        slower = 1.5 if change == "slower" and name == "room chart" else 1.0
        values = rng.lognormal(np.log(median * drift * slower), 0.35, count)
        times: dict[str, int] = {}
        for value in values:
            times[str(round(value))] = times.get(str(round(value)), 0) + 1
        rate = 0.03 if change == "failing" and name == "room chart" else 0.002
        failures = int(rng.binomial(count, rate))
        queries = 40.0 if change == "n+1" and name == "room chart" else 1.0
        ordered = np.sort(values)
        requests.append(
            {
                "name": name,
                "requests": count,
                "failures": failures,
                "rate_per_s": 1.0,
                "p50_ms": float(ordered[count // 2]),
                "p95_ms": float(ordered[int(count * 0.95) - 1]),
                "p99_ms": float(ordered[int(count * 0.99) - 1]),
                "response_times": times,
                "statuses": {"200": count - failures, "500": failures},
                "bytes_per_response": 2000.0,
                "backend": {"queries_per_request": queries, "responses": count},
            }
        )
    return {"kind": "mixed", "requests": requests}


def _share(rng: np.random.Generator, baselines: int, change: str | None, trials: int) -> float:
    hits = 0
    for _ in range(trials):
        nights = [scopes(_night(rng), "b") for _ in range(baselines)]
        hits += compare(nights, scopes(_night(rng, change), "now"), RULES).regressed
    return hits / trials


def bench_gate(trials: int = 400, seed: int = 20261207) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {
        "name": "gate",
        "what": f"{trials} simulated comparisons each: five endpoints, 20 to 2,000 requests a "
        "night, nights drifting 5 %; default rules",
    }
    for baselines in (1, 5):
        tag = f"{baselines}_baseline{'s' if baselines > 1 else ''}"
        result[f"false_alarm_share_{tag}"] = _share(rng, baselines, None, trials)
        for change in ("slower", "failing", "n+1"):
            key = f"caught_share_{change.replace('+', 'plus')}_{tag}"
            result[key] = _share(rng, baselines, change, trials // 2)
    return result


if __name__ == "__main__":
    for key, value in bench_gate().items():
        print(f"{key}: {value}")
