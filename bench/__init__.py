"""Hand-run benchmarks for newsbot's search (never part of the test suite).

A package so that ``bench/search.py`` and ``bench/eval_cli.py`` can share ``bench.queries``,
and so that a future relevance test can import the query generator.
"""
