"""Aggregator speed vs one pass over the input and vs ByzFL: ``python benchmarks/aggregators.py --help``.

The same as ``robustfl bench aggregators``; the code lives in ``robustfl.bench.aggregators``.
"""

from robustfl.cli import app

if __name__ == "__main__":
    import sys

    app(["bench", "aggregators", *sys.argv[1:]])
