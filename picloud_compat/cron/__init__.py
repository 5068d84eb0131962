"""`cloud.cron`: functions run on a schedule by Celery beat (RedBeat, in Redis)."""
