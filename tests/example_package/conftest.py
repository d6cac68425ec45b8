# The example package is imported through its installation (or its entry point), never
# collected by the project's pytest run (--doctest-modules would import it a second time).
collect_ignore = ["convbench_example"]
