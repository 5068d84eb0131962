"""The client side: one tenant's `Client`, chosen and authenticated by `session`."""
