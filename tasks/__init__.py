"""The Celery app and its one task (installed as ``picloud_compat.tasks``)."""
