"""Example candidates that another project adds to convbench (see pyproject.toml)."""
