"""The glibc allocator setting applied at ``import robustfl`` (robustfl/allocator.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from robustfl.allocator import ENV, keep_large_blocks

GLIBC = platform.libc_ver()[0] == "glibc"


def test_the_opt_out_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "system")
    assert keep_large_blocks() is False


def test_a_threshold_must_be_positive() -> None:
    for bad in (0, 1 << 31):
        with pytest.raises(ValueError, match="threshold"):
            keep_large_blocks(bad)


FAULTS = """
import resource, torch
def touch() -> None:
    t = torch.empty(12 * 1024 * 1024)  # 48 MiB: above glibc's largest default mmap threshold
    t.fill_(1.0)
for _ in range(20):  # the heap settles (a freed block is reused once it has merged with a neighbour)
    touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def minor_faults(setup: str, env: dict[str, str]) -> int:
    """Page faults of ten 48 MiB allocations after twenty, in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", setup + FAULTS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_large_blocks_are_reused_after_import() -> None:
    """After ``import robustfl`` freed 48 MiB blocks are reused: new ones cost (almost) no page faults,
    where glibc's defaults unmap each on free and fault in all 12,288 pages of every new one."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if not keep_large_blocks():  # a glibc that caps the threshold at 32 MiB refuses 1 GiB
        pytest.skip("this C library refuses the threshold")
    pages = 10 * 12 * 1024 * 1024 * 4 // 4096
    assert minor_faults("import robustfl\n", env) < pages // 4
    assert minor_faults("import robustfl\n", {**env, ENV: "system"}) > pages // 2
