"""robustfl: Byzantine-robust, communication-efficient distributed and federated learning."""

from robustfl.allocator import keep_large_blocks

__version__ = "0.1.0"

keep_large_blocks()
