"""Property tests: exact corruption counts and the PGD ball constraint for arbitrary sizes."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.attacks import BackdoorLabels, ImpulseNoise
from robustfl.attacks.model_poisoning import project_l2_ball


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), fraction=st.floats(0.0, 1.0), seed=st.integers(0, 2**31))
def test_data_attacks_touch_round_fraction_n_samples(n: int, fraction: float, seed: int) -> None:
    x, y = torch.rand(n, 6), torch.randint(0, 10, (n,))
    for attack in (BackdoorLabels(fraction, target=3), ImpulseNoise(fraction, pixel_fraction=0.5)):
        _, _, touched = attack(x, y, generator=torch.Generator().manual_seed(seed))
        assert int(touched.sum()) == round(fraction * n)


@settings(max_examples=60, deadline=None)
@given(
    d=st.integers(1, 50),
    scale=st.floats(1e-3, 1e3),
    radius=st.floats(0.0, 10.0),
    seed=st.integers(0, 2**31),
)
def test_projection_stays_in_the_ball_and_is_idempotent(
    d: int, scale: float, radius: float, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    center = torch.randn(d, generator=g, dtype=torch.float64)
    w = center + scale * torch.randn(d, generator=g, dtype=torch.float64)
    p = project_l2_ball(w, center, radius)
    assert float(torch.linalg.vector_norm(p - center)) <= radius * (1 + 1e-9) + 1e-12
    assert torch.allclose(project_l2_ball(p, center, radius), p)
