"""Experiments: TOML config, run directories, the training loop, sweeps, plots and reproductions."""

from robustfl.experiment.config import ConfigError, ExperimentConfig, load_config

__all__ = ["ConfigError", "ExperimentConfig", "load_config"]
