"""Suite-wide settings: property tests draw the same examples on every run, so CI is deterministic.

Set ``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples instead.
"""

import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
