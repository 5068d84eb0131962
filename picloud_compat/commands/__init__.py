"""The `picloud` command's sub-commands, by concern (the root group is `picloud_compat.cli`)."""
