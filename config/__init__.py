"""Server-side configuration (installed as ``picloud_compat.config``)."""
