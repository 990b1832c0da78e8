"""Transfer benchmarks: image tables, exact kNN protocols, statistics and reports."""
