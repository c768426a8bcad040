"""How many single-bit flips in a checkpoint file are detected on load (and how many silently change it).

    PYTHONPATH=src python benchmarks/checkpoint_flips.py --flips 200

Writes a checkpoint shaped like a run's (``simulator`` with 2,000 float32 parameters and a round,
``loop`` totals) with ``RunDir.save_checkpoint``, flips one bit at a random offset (seeded), loads it
with ``RunDir.load_checkpoint`` and counts: refused (detected), loaded with different contents
(silent corruption), loaded unchanged (a bit the format does not use). Repeats ``--flips`` times.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from robustfl.experiment.rundir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flips", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="10 flips")
    args = parser.parse_args()
    flips = 10 if args.quick else args.flips
    state = {
        "simulator": {"params": torch.randn(2000, generator=torch.Generator().manual_seed(0)), "round": 5},
        "loop": {"bits_up": 10, "seconds": {"compute": 1.5}},
    }
    gen = torch.Generator().manual_seed(1)
    counts = {"detected": 0, "silently changed": 0, "unchanged": 0}
    with tempfile.TemporaryDirectory() as tmp:
        rd = RunDir(Path(tmp))
        for _ in range(flips):
            path = rd.save_checkpoint(5, state)
            data = bytearray(path.read_bytes())
            at = int(torch.randint(0, len(data) * 8, (1,), generator=gen))
            data[at // 8] ^= 1 << (at % 8)
            path.write_bytes(bytes(data))
            try:
                back = rd.load_checkpoint()
            except Exception:  # any refusal counts as detected
                counts["detected"] += 1
                continue
            try:
                same = torch.equal(back["simulator"]["params"], state["simulator"]["params"]) and (
                    back["loop"] == state["loop"] and back["simulator"]["round"] == 5
                )
            except (KeyError, TypeError):  # a key or a type changed: loaded, but not what was saved
                same = False
            counts["unchanged" if same else "silently changed"] += 1
    print("| flips | " + " | ".join(counts) + " |")
    print("|---" * (len(counts) + 1) + "|")
    print(f"| {flips} | " + " | ".join(str(v) for v in counts.values()) + " |")


if __name__ == "__main__":
    main()
