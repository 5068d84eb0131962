"""The reference: raw Celery 5 at its defaults, with cloudpickled functions by value.

Same as baseline.md's ``celery-pickled/submit``: ``apply_async`` + ``AsyncResult.get()``
per job, Redis broker (db 1) and result backend (db 2), pickle serializer, prefork.
"""

import os

import cloudpickle
from celery import Celery

url = os.environ["BENCH_REDIS"]
app = Celery("rawbench", broker=f"{url}/1", backend=f"{url}/2")
app.conf.task_serializer = "pickle"
app.conf.result_serializer = "pickle"
app.conf.accept_content = ["pickle"]


@app.task(name="bench.run_pickled")
def run_pickled(blob):
    fn, args = cloudpickle.loads(blob)
    return cloudpickle.dumps(fn(*args))
