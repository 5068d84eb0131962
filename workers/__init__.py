"""Worker processes: lifecycle, warden, reaper and CLI (installed as ``picloud_compat.workers``)."""
