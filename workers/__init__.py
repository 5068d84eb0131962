"""Process entry points and supervision (installed as ``picloud_compat.workers``).

`cli` starts the server processes; `lifecycle` wires a Celery worker's main process;
`supervisor` and `warden` watch job processes, for Celery and the simulator alike.
"""
