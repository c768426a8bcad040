"""robustfl: Byzantine-robust, communication-efficient distributed and federated learning."""

__version__ = "0.1.0"
