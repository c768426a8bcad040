"""Which torch devices this machine has, and the check of ``training.device`` when a config loads.

A device that is not there must fail while the configuration is read (one line naming the field, the
devices that exist and the fix), not 100 lines deep inside the first tensor move of a run.
"""

from __future__ import annotations

SUPPORTED = ("cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """``cpu`` plus ``cuda:0``... and ``mps`` when this torch build and machine have them."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def check_device(value: str) -> str:
    """``value`` normalised (``"CUDA"`` -> ``"cuda"``) if it names a device of this machine, else ``ValueError``."""
    text = value.strip().lower()
    if text == "cpu":
        return text
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        device = None
    here = available_devices()
    fix = f'; this machine has: {", ".join(here)}; set training.device = "cpu" (or one of those)'
    if device is None or device.type not in SUPPORTED:
        raise ValueError(f"{value!r} is not a device robustfl runs on (cpu, cuda, cuda:N, mps){fix}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "has no CUDA support" if torch.version.cuda is None else "finds no CUDA device"
            raise ValueError(f"this torch build {build}{fix}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"there is no {text}{fix}")
    if device.type == "mps" and "mps" not in here:
        raise ValueError(f"mps (Apple GPU) is not available here{fix}")
    return text
