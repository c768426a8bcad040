"""Speed benchmarks shared by the ``robustfl bench`` command and the scripts in ``benchmarks/``."""
