"""The check engine's metrics, recorded by a worker and read through the web's `/metrics/`."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from monitorapp.monitoring.scheduler import schedule_endpoint_checks
from tests.monitoring.conftest import make_endpoint, run_worker


def scrape(web) -> dict[tuple[str, tuple], float]:
    response = web.test_client().get("/metrics/", headers={"Authorization": "Bearer metrics-token"})
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_the_web_shows_what_the_worker_and_scheduler_recorded(ctx, make_app, team_a, server, refused_port):
    make_endpoint(team_a, server.url("/ok"))
    make_endpoint(team_a, server.url("/error"))
    make_endpoint(team_a, f"http://127.0.0.1:{refused_port}/")
    make_endpoint(team_a, "http://paused.example/", paused=True, status="paused")
    schedule_endpoint_checks()
    run_worker()

    # Another app instance (the web process) scrapes.
    web = make_app(METRICS_TOKEN="metrics-token")
    samples = scrape(web)

    assert samples[("monitorapp_checks_total", (("result", "up"),))] == 1
    assert samples[("monitorapp_checks_total", (("result", "down"),))] == 2
    assert samples[("monitorapp_checks_total", (("result", "retry"),))] == 2
    assert samples[("monitorapp_check_duration_seconds_count", ())] == 5
    assert samples[("monitorapp_scheduler_tick_seconds_count", ())] == 1
    assert ("monitorapp_scheduler_lag_seconds", ()) in samples
    assert samples[("monitorapp_endpoints", (("status", "up"),))] == 1
    assert samples[("monitorapp_endpoints", (("status", "down"),))] == 2
    assert samples[("monitorapp_endpoints", (("status", "paused"),))] == 1
    assert samples[("monitorapp_queue_depth", (("queue", "checks"),))] == 0
    assert samples[("monitorapp_failed_jobs", (("queue", "checks"),))] == 1  # the refused one's dead letter
