"""``[model.low_rank]``: PUFFERFISH's vanilla warm-up, the SVD switch to the hybrid, resume, errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from robustfl.experiment.build import build_run
from robustfl.experiment.config import ConfigError, validate


def _config(low_rank: dict[str, Any] | None, **training: Any) -> Any:
    config: dict[str, Any] = {
        "data": {"name": "embedded-mnist"},
        "model": {"name": "mlp", "params": {"hidden": [32, 16]}},
        "workers": {"n": 3},
        "training": {"rounds": 6, "lr": 0.05, "batch_size": 8, **training},
        "compressor": {"name": "powersgd", "params": {"rank": 2}},
    }
    if low_rank is not None:
        config["model"]["low_rank"] = low_rank
    return validate(config)


def _count(run: Any) -> int:
    return sum(p.numel() for p in run.sim.model.parameters())


def test_warmup_then_switch_to_the_hybrid() -> None:
    vanilla = build_run(_config(None))
    run = build_run(_config({"warmup_rounds": 2, "first_low_rank": 1}))
    full = _count(vanilla)
    for _ in range(2):
        a, b = vanilla.step(), run.step()
        assert a.bits_up == b.bits_up and torch.equal(vanilla.sim.params, run.sim.params)
    assert _count(run) == full
    stats = run.step()  # fc1 (784 x 32 -> rank 8) and fc2 (32 x 16 -> rank 4) factorised, fc3 kept
    assert _count(run) == full - 784 * 32 - 32 * 16 + 8 * (784 + 32) + 4 * (32 + 16)
    assert stats.bits_up != vanilla.step().bits_up  # the compressor was rebuilt for the new layout
    assert run.sim.params.shape == (_count(run),)


def test_full_rank_switch_keeps_the_function() -> None:
    """At rank ratio 1 the SVD factors reproduce the warmed-up weights: same logits after the switch."""
    run = build_run(_config({"warmup_rounds": 2, "first_low_rank": 1, "rank_ratio": 1.0}))
    run.step(), run.step()
    x = run.sim.x_test[:16]
    before = run.sim.model(x).detach()
    assert run.switch is not None
    run.switch.apply(run.sim)
    after = run.sim.model(x).detach()
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)


def test_no_warmup_trains_the_hybrid_from_the_start() -> None:
    run = build_run(_config({"warmup_rounds": 0, "first_low_rank": 2}))
    hybrid_count = _count(run)
    assert hybrid_count < _count(build_run(_config(None)))
    run.step()
    assert _count(run) == hybrid_count


def test_resume_after_the_switch_continues_identically() -> None:
    config = _config({"warmup_rounds": 2, "first_low_rank": 1})
    whole = build_run(config)
    for _ in range(3):
        whole.step()
    state = copy.deepcopy(whole.state_dict())
    whole.step()
    resumed = build_run(config)
    resumed.load_state_dict(state)
    resumed.step()
    assert torch.equal(whole.sim.params, resumed.sim.params)


def test_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="model.low_rank.first_low_rank"):
        build_run(_config({"warmup_rounds": 1}))
    with pytest.raises(ConfigError, match="model.low_rank.rank_ratio"):
        _config({"rank_ratio": 0.0})
