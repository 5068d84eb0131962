"""picloud-compat: the PiCloud ``cloud`` API on Celery workers, Redis and S3.

Users ``import cloud``; this package holds the implementation. It imports nothing
heavy at import time.
"""

__version__ = "0.1.0"
