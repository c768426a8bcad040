"""The communication-time model (alpha + bits / beta per message; Thakur et al. 2005)."""

import math

import pytest

from robustfl.commtime import CLUSTERS, Cluster, Timeline, cluster, speedup, timed


def test_patterns_follow_their_closed_forms() -> None:
    c = Cluster(4, bandwidth_gbps=1.0, latency_s=1e-3)
    bits = 8e6  # 8 Mbit = 8 ms at 1 Gbit/s
    assert c.message(bits) == pytest.approx(1e-3 + 8e-3)
    assert c.communication("allreduce", bits) == pytest.approx(2 * 3 * 1e-3 + 2 * 3 / 4 * 8e-3)
    assert c.communication("allgather", bits) == pytest.approx(3 * (1e-3 + 8e-3))
    # PS: four messages in on one link, then a binomial-tree broadcast over 5 processes (3 rounds)
    assert c.communication("ps", [bits, bits, 0, 0], down_bits=bits) == pytest.approx(
        4e-3 + 16e-3 + 3 * (1e-3 + 8e-3)
    )
    assert Cluster(1, 1.0).communication("allreduce", bits) == 0.0
    # all-gather grows linearly in n, all-reduce's bandwidth term stays below 2 bits / beta
    big = Cluster(64, 1.0, 0.0)
    assert big.communication("allgather", bits) / big.communication("allreduce", bits) == pytest.approx(
        63 / (2 * 63 / 64)
    )


def test_presets_and_validation() -> None:
    assert cluster("g2.2xlarge-16").workers == 16 and cluster("g2.2xlarge-16").bandwidth_gbps == 1.0
    assert cluster("p3.2xlarge-8").bandwidth_gbps == 10.0 and set(CLUSTERS) >= {"p3.2xlarge-16"}
    assert cluster("g2.2xlarge-16").with_bandwidth(0.5).message(5e8) == pytest.approx(1e-4 + 1.0)
    with pytest.raises(ValueError, match="unknown cluster"):
        cluster("tpu")
    with pytest.raises(ValueError, match="workers"):
        Cluster(0, 1.0)
    with pytest.raises(ValueError, match="bandwidth_gbps"):
        Cluster(2, 0.0)
    with pytest.raises(ValueError, match="pattern"):
        Cluster(2, 1.0).communication("broadcast", 1)
    with pytest.raises(ValueError, match="2 workers"):
        Cluster(2, 1.0).communication("ps", [1, 2, 3])
    with pytest.raises(ValueError, match="bits"):
        Cluster(2, 1.0).message(-1)


def test_timeline_time_to_target_and_speedup() -> None:
    c = Cluster(2, bandwidth_gbps=1.0, latency_s=0.0)
    vanilla, compressed = Timeline(c, "allreduce"), Timeline(c, "allreduce")
    for acc, lower in ((0.5, 0.45), (0.7, 0.65), (0.9, 0.85)):
        vanilla.step(1.0, 2e9, accuracy=acc)  # 1 s compute + 2 s communication
        compressed.step(1.0, 2e8, accuracy=lower)  # 1 s + 0.2 s, a little less accurate
    assert vanilla.times == pytest.approx([3.0, 6.0, 9.0])
    assert vanilla.time_to(0.7) == pytest.approx(6.0) and compressed.time_to(0.65) == pytest.approx(2.4)
    assert speedup(vanilla, compressed, 0.6) == pytest.approx(6.0 / 2.4)
    assert speedup(vanilla, compressed, 0.9) is None  # compressed never reaches 0.9: "N/A"
    out, seconds = timed(math.sqrt, 16.0)
    assert out == 4.0 and seconds >= 0
    with pytest.raises(ValueError, match="pattern"):
        Timeline(c, "ring")
