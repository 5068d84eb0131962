"""The store reached from outside the trusted side: by isolated clients and executors."""
