"""Our hand-built Celery messages match what kombu itself publishes (feasibility.md T5).

If a kombu/Celery upgrade changes the Redis envelope, this fails before any job is lost.
"""

from __future__ import annotations

import json

from celery import Celery

from picloud_compat import messages
from picloud_compat.config.compute_types import queue_key


def test_template_has_kombus_envelope(redis_server):
    app = Celery("probe", broker=redis_server.url)
    app.conf.broker_transport_options = {"priority_steps": list(range(10)), "sep": ":"}
    app.conf.task_serializer = "json"
    app.send_task(
        messages.TASK_NAME, args=[{"t": "x", "j": 1, "n": 1}], queue="probe-q", priority=5
    )
    r = redis_server.client()
    theirs = json.loads(r.rpop(queue_key("probe-q", 5)))
    ours = json.loads(
        messages.fill(messages.chunk_template("x", 3, "probe-q", 5, "mod.f", "lbl"), 7, "tag#0")
    )
    assert set(ours) == set(theirs)
    assert set(ours["headers"]) == set(theirs["headers"])
    assert set(ours["properties"]) - {"argsrepr"} >= set(theirs["properties"]) - {
        "argsrepr",
        "body_encoding",
    }
    assert ours["properties"]["delivery_info"] == theirs["properties"]["delivery_info"]
    assert ours["properties"]["priority"] == theirs["properties"]["priority"] == 5
    assert "body_encoding" not in ours["properties"]  # kombu passes the JSON body through
    assert json.loads(ours["body"]) == [
        [{"t": "x", "j": 7, "n": 3}],
        {},
        {
            "callbacks": None,
            "errbacks": None,
            "chain": None,
            "chord": None,
        },
    ]
    assert ours["headers"]["shadow"] == "mod.f [lbl] x3"
    assert ours["headers"]["id"] == "x.7.3"
    assert ours["properties"]["delivery_tag"] == "tag#0"
