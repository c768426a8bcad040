"""Injected faults of the ``[faults]`` config table (tests and demos): crash, delay, garbage."""

from __future__ import annotations

import os
import signal
import time

import torch

from robustfl.experiment.config import FaultsConfig


class Faults:
    """The faults that hit one worker ``rank``."""

    def __init__(self, config: FaultsConfig, rank: int) -> None:
        self.crash = {f.round for f in config.crash if f.rank == rank}
        self.delay = {f.round: f.seconds for f in config.delay if f.rank == rank}
        self.garbage = {f.round for f in config.garbage if f.rank == rank}

    def before_compute(self, round: int) -> None:
        """A crash fault kills this process with SIGKILL (no clean-up, like a machine failure)."""
        if round in self.crash:
            os.kill(os.getpid(), signal.SIGKILL)

    def before_send(self, round: int, payload: bytes) -> bytes:
        """Sleep for a delay fault; replace the payload with random bytes for a garbage fault."""
        if round in self.delay:
            time.sleep(self.delay[round])
        if round in self.garbage:
            gen = torch.Generator().manual_seed(round)
            return torch.randint(0, 256, (len(payload),), dtype=torch.uint8, generator=gen).numpy().tobytes()
        return payload
