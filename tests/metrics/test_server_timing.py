"""Reading any backend's Server-Timing header, and the N+1 watch over it."""

from __future__ import annotations

from simulator.metrics.server_timing import (
    EndpointTiming,
    ServerTimings,
    growth_across_steps,
    parse,
    queries_of,
)


def test_headers_of_different_frameworks_parse() -> None:
    """Quoted descriptions with commas and semicolons, a metric without a duration, the
    same name twice (its durations add up), and query counts said in a description or
    as a metric of their own."""
    header = 'db;dur=12.5;desc="4 queries, 2 cached; fast", cache;desc="hit", app;dur=3, db;dur=1.5'
    metrics = parse(header)
    assert metrics["db"] == (14.0, "4 queries, 2 cached; fast")
    assert metrics["cache"] == (None, "hit")
    assert metrics["app"] == (3.0, None)
    assert queries_of(metrics) == 4
    assert queries_of(parse('sql;dur=3;desc="1 query", orm;desc="2 queries"')) == 3
    assert queries_of(parse("queries;desc=17, total;dur=40")) == 17
    assert queries_of(parse("queries;dur=9")) == 9
    assert queries_of(parse('total;dur=40;desc="render"')) is None
    assert parse("") == {}
    assert parse("db;dur=abc") == {"db": (None, None)}


def _timing(points: list[tuple[int, int, float]]) -> EndpointTiming:
    timing = EndpointTiming()
    for queries, size, at in points:
        timing.observe(f'db;dur=1;desc="{queries} queries", app;dur=1', size, at)
    return timing


def test_an_n_plus_one_is_flagged_and_a_constant_query_count_is_not() -> None:
    """Queries per request that follow the response size (different rooms, different
    amounts of data) or that grow over the run are an N+1; one query per request whatever
    the size, or two now and then, are not."""
    constant = _timing([(1, size, 100.0 + i) for i, size in enumerate(range(1000, 9000, 500))])
    assert constant.n_plus_one() is None
    occasional = _timing([(1 + i % 2, 4000 + 10 * i, 100.0 + i) for i in range(20)])
    assert occasional.n_plus_one() is None
    # A query or two more on the bigger rooms, or later in the run (a cache miss, a lazy
    # count), follows the size closely and doubles, and is still noise, not an N+1.
    cache_miss = _timing([(1 + i // 7, 1000 + 100 * i, 100.0 + i) for i in range(20)])
    assert cache_miss.n_plus_one() is None
    later = _timing([(1 if i < 10 else 3, 5000, 100.0 + 3 * i) for i in range(20)])
    assert later.n_plus_one() is None
    by_size = _timing([(2 + size // 100, size, 100.0) for size in (800, 3000, 1500, 6000, 2500)])
    why = by_size.n_plus_one()
    assert why is not None
    assert "grow with the response size" in why
    over_time = _timing([(100 + 10 * i, 5000, 100.0 + 3 * i) for i in range(30)])
    why = over_time.n_plus_one()
    assert why is not None
    assert "grew from" in why


def test_workers_figures_merge_as_one_process() -> None:
    """Two workers' sums, merged on the master, give the figures one process observing
    every response would: mean milliseconds per component, queries per request, the N+1."""
    points = [(2 + size // 100, size, 100.0 + i) for i, size in enumerate(range(500, 5000, 300))]
    whole = ServerTimings()
    first, second = ServerTimings(), ServerTimings()
    for n, (queries, size, at) in enumerate(points):
        header = f'db;dur={queries / 10};desc="{queries} queries", app;dur=2'
        whole.observe("room", header, size, at)
        (first if n % 2 else second).observe("room", header, size, at)
    master = ServerTimings()
    master.merge(first.take())
    master.merge(second.take())
    assert first.by_name == {}
    assert master.summary() == whole.summary()
    summary = master.summary()["room"]
    assert summary["responses"] == len(points)
    assert summary["n_plus_one"] is not None
    assert summary["ms"]["app"] == 2.0


def test_queries_growing_over_the_steps_of_a_search_are_flagged() -> None:
    """Steps whose queries per request climb with the load name the endpoint and the
    steps; a flat endpoint is not named; a step's own N+1 verdict is carried over."""

    def step(room: float, farms: float, why: str | None = None) -> dict[str, dict[str, object]]:
        return {
            "room": {"queries_per_request": room, "n_plus_one": None},
            "farms": {"queries_per_request": farms, "n_plus_one": why},
        }

    found = growth_across_steps([step(40, 1), step(60, 1), step(95, 1, "grows with size")])
    assert found == [
        {"name": "farms", "why": "grows with size (step 3)"},
        {"name": "room", "why": "queries per request grew from 40 (step 1) to 95 (step 3)"},
    ]
    assert growth_across_steps([step(40, 1), step(41, 1)]) == []
