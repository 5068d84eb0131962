"""What an operator edits (installed as ``picloud_compat.config``).

`celeryconfig`: Celery's settings and why each non-default matters; `beat`: RedBeat
and beat timing; `compute_types`: the instance types (queues), their cores and
priorities. Everything else is a `Settings` field (``PICLOUD_*`` variables).
"""
