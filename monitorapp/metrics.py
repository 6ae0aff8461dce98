"""Prometheus metrics shared across processes through Redis.

Workers and the scheduler usually run in other processes — on a Heroku-style
platform, on other machines — than the web process that serves `/metrics/`,
so prometheus_client's multiprocess mode (a shared folder) cannot collect
them. Instead every process adds to hashes in Redis, and the web's collector
turns those hashes into Prometheus families at scrape time. Writes are
best-effort: a dead Redis never fails a check or a page because of a metric.

Declare a series once in `SERIES`; then `inc`, `observe` or `set_gauge` it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("monitors.performance")
PREFIX = "monitorapp:metrics:"
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Series:
    name: str
    kind: str  # counter, gauge or histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = field(default=DEFAULT_BUCKETS)


SERIES: dict[str, Series] = {}


def declare(
    name: str, kind: str, help: str, labels: Iterable[str] = (), buckets: Iterable[float] = DEFAULT_BUCKETS
) -> Series:
    series = Series(name, kind, help, tuple(labels), tuple(buckets))
    SERIES[name] = series
    return series


declare("monitorapp_http_requests_total", "counter", "HTTP requests answered by the web process.", ("status",))

# Filled in at scrape time from the database and Redis (endpoints by status,
# queue depth, …); each returns (labels, value) pairs.
LiveGauge = Callable[[], Iterable[tuple[dict[str, str], float]]]
LIVE_GAUGES: dict[str, tuple[str, tuple[str, ...], LiveGauge]] = {}


def live_gauge(name: str, help: str, labels: Iterable[str] = ()) -> Callable[[LiveGauge], LiveGauge]:
    """Register a gauge computed when `/metrics/` is scraped."""

    def decorator(function: LiveGauge) -> LiveGauge:
        LIVE_GAUGES[name] = (help, tuple(labels), function)
        return function

    return decorator


def _label_key(series: Series, labels: dict[str, str]) -> str:
    return json.dumps([str(labels.get(name, "")) for name in series.labels])


def _client() -> redis.Redis | None:
    from flask import has_app_context

    if not has_app_context():
        return None
    from monitorapp.queues import get_redis

    return get_redis()


def _write(action: Callable[[redis.Redis], None]) -> None:
    client = _client()
    if client is None:
        return
    try:
        action(client)
    except (redis.RedisError, OSError) as exc:
        log.debug("metric not recorded: %s", exc)


def inc(name: str, amount: float = 1.0, **labels: str) -> None:
    series = SERIES[name]
    _write(lambda r: r.hincrbyfloat(PREFIX + name, _label_key(series, labels), amount))


def set_gauge(name: str, value: float, **labels: str) -> None:
    series = SERIES[name]
    _write(lambda r: r.hset(PREFIX + name, _label_key(series, labels), value))


def observe(name: str, value: float, **labels: str) -> None:
    observe_many(name, [value], **labels)


def observe_many(name: str, values: Iterable[float], **labels: str) -> None:
    """Observe several values in one round trip (the check recorder's batches)."""
    series = SERIES[name]
    key = _label_key(series, labels)
    values = list(values)
    if not values:
        return
    buckets = {bound: sum(1 for value in values if value <= bound) for bound in series.buckets}

    def action(r: redis.Redis) -> None:
        pipe = r.pipeline(transaction=False)
        for bound, count in buckets.items():
            if count:
                pipe.hincrby(f"{PREFIX}{name}:bucket:{bound}", key, count)
        pipe.hincrby(f"{PREFIX}{name}:count", key, len(values))
        pipe.hincrbyfloat(f"{PREFIX}{name}:sum", key, sum(values))
        pipe.execute()

    _write(action)


class RedisCollector(Collector):
    """Reads every declared series from Redis when Prometheus scrapes."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def collect(self):
        for series in SERIES.values():
            try:
                yield from self._collect_series(series)
            except (redis.RedisError, OSError) as exc:
                log.warning("metrics unavailable from Redis: %s", exc)
                return
        for name, (help, labels, function) in LIVE_GAUGES.items():
            family = GaugeMetricFamily(name, help, labels=list(labels))
            try:
                for label_values, value in function():
                    family.add_metric([label_values.get(label, "") for label in labels], value)
            except Exception as exc:  # one broken gauge must not empty the scrape
                log.warning("live gauge %s failed: %s", name, exc)
                continue
            yield family

    def _collect_series(self, series: Series):
        labels = list(series.labels)
        if series.kind == "histogram":
            family = HistogramMetricFamily(series.name, series.help, labels=labels)
            counts = self.client.hgetall(f"{PREFIX}{series.name}:count")
            sums = self.client.hgetall(f"{PREFIX}{series.name}:sum")
            buckets = {
                bound: self.client.hgetall(f"{PREFIX}{series.name}:bucket:{bound}") for bound in series.buckets
            }
            for raw_key, raw_count in counts.items():
                values = json.loads(raw_key)
                cumulative = [
                    (str(bound), float(buckets[bound].get(raw_key, 0))) for bound in series.buckets
                ] + [("+Inf", float(raw_count))]
                family.add_metric(values, cumulative, float(sums.get(raw_key, 0)))
            yield family
            return
        family_class = CounterMetricFamily if series.kind == "counter" else GaugeMetricFamily
        family = family_class(series.name, series.help, labels=labels)
        for raw_key, raw_value in self.client.hgetall(PREFIX + series.name).items():
            family.add_metric(json.loads(raw_key), float(raw_value))
        yield family
