"""Reading any backend's Server-Timing header, and the N+1 watch over it."""

from __future__ import annotations

from simulator.metrics.server_timing import EndpointTiming, ServerTimings, parse, queries_of


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
