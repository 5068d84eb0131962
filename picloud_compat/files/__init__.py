"""`cloud.files`: per-API-key file storage on S3 (cluster) or a directory (simulator)."""
