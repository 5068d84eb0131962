"""`cloud.rest`: functions published as HTTP endpoints, served by `picloud gateway`."""
