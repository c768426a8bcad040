import pytest
import torch

from robustfl import compressors as C


@pytest.mark.parametrize("inner", [C.TopK(k=3), C.Sign(), C.QSGD(s=1), C.RandK(k=2, scaled=False)], ids=repr)
def test_sent_plus_memory_equals_inputs(inner: C.Compressor, rng: torch.Generator) -> None:
    ef = C.ErrorFeedback(inner)
    inputs = [torch.randn(4, 25, dtype=torch.float64, generator=rng) for _ in range(6)]
    sent = sum(ef(x, rng) for x in inputs)
    assert ef.memory is not None
    torch.testing.assert_close(sent + ef.memory, sum(inputs), rtol=0, atol=1e-10)
    assert float(ef.memory.abs().sum()) > 0  # the compressor really dropped something


def test_memory_is_added_back() -> None:
    ef = C.ErrorFeedback(C.TopK(k=1))
    first = ef(torch.tensor([3.0, 2.0]))
    second = ef(torch.tensor([0.0, 1.5]))  # memory 2.0 + 1.5 beats 0 + 0
    assert torch.equal(first, torch.tensor([3.0, 0.0]))
    assert torch.equal(second, torch.tensor([0.0, 3.5]))


def test_reset_and_shape_mismatch() -> None:
    ef = C.ErrorFeedback(C.TopK(k=1))
    ef(torch.randn(3, 4))
    with pytest.raises(ValueError, match="call reset"):
        ef(torch.randn(2, 4))
    ef.reset()
    assert ef.memory is None
    ef(torch.randn(2, 4))


def test_needs_a_compressor() -> None:
    with pytest.raises(ValueError, match="needs a Compressor"):
        C.ErrorFeedback("topk")  # type: ignore[arg-type]


def test_error_feedback_fixes_sign_descent_on_a_quadratic() -> None:
    """Karimireddy et al. (2019): scaled-sign descent stalls at a distance; with error feedback it
    converges. Gradient descent on ||w - target||^2 / 2 with a constant step."""
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(30, dtype=torch.float64, generator=gen) * torch.logspace(
        0, -2, 30, dtype=torch.float64
    )
    errors = []
    for c in (C.Sign(), C.ErrorFeedback(C.Sign())):
        w = torch.zeros(30, dtype=torch.float64)
        for _ in range(2000):
            w = w - 0.05 * c(w - target)
        errors.append(float((w - target).norm() / target.norm()))
    assert errors[0] > 1e-3
    assert errors[1] < 1e-8


def test_direct_use_keeps_the_wrapped_compressors_row_state_too() -> None:
    ef = C.ErrorFeedback(C.PowerSGD(rank=1, shapes=[(4, 5)]))
    x = torch.randn(3, 20, generator=torch.Generator().manual_seed(0))
    first, second = ef(x), ef(x)
    assert first.shape == second.shape == x.shape and ef.memory is not None
    assert not torch.equal(first, second)  # the warm start and the residual moved on
