"""`callbackd status` against a running deployment: a real redis-server, a `callbackd worker` that answers the
ping and a `callbackd beat` whose tick leaves its heartbeat."""

from __future__ import annotations

import pytest

from tests.integration.celery_cluster import Cluster
from tests.integration.test_celery import cluster, write_settings  # noqa: F401 (the cluster fixture)

pytestmark = pytest.mark.integration


def test_status_counts_the_worker_that_answers_and_beats_fresh_tick(cli, workdir, cluster: Cluster):  # noqa: F811
    write_settings(workdir, cluster.redis.url, cluster.journal, workers={"tick_seconds": 2})
    cluster.worker("w1")
    cluster.beat()

    def ticked() -> bool:
        run = cli("status", "--json")
        return run.code == 0 and run.json()["beat"]["at"] is not None

    cluster.wait_for(ticked, "beat's tick to leave its heartbeat and the worker to answer", 60)
    report = cli("status", "--json").json()
    assert report["ok"] is True and report["problems"] == []
    assert report["workers"]["answered"] >= 1 and any(name.startswith("w1@") for name in report["workers"]["names"])
    assert report["beat"]["recent"] is True and report["beat"]["age_seconds"] <= 6

    for process in cluster.processes:  # the deployment down: no worker answers, beat falls behind
        process.kill()
    run = cli("status", "--json")
    assert run.code == 1
    assert "no Celery worker answered a ping within 1 s" in run.json()["problems"]
