"""Environments (``_env``): named pip requirements, built by workers into cached
virtual environments whose interpreter runs the jobs (`spec`, `registry`, `builder`)."""
