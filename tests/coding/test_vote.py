import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from robustfl.coding.vote import majority_vote


@pytest.mark.parametrize("method", ["boyer-moore", "pairwise"])
def test_majority_wins_and_missing_majority_gives_zero(method: str) -> None:
    honest = torch.tensor([1.0, -2.0, 3.0])
    x = torch.stack(
        [
            torch.stack([honest, torch.tensor([9.0, 9, 9]), honest]),  # majority at positions 0, 2
            torch.stack([torch.tensor([5.0, 5, 5]), honest, torch.tensor([7.0, 7, 7])]),  # none
            torch.stack([torch.full((3,), float("nan"))] * 3),  # NaN never equals NaN: none
        ]
    )
    votes, has = majority_vote(x, method)  # type: ignore[arg-type]
    assert has.tolist() == [True, False, False]
    assert torch.equal(votes[0], honest)
    assert torch.equal(votes[1:], torch.zeros(2, 3))


@pytest.mark.parametrize("method", ["boyer-moore", "pairwise"])
def test_tolerance_accepts_last_bit_differences_only_when_asked(method: str) -> None:
    a = torch.tensor([1.0, 2.0])
    x = torch.stack([a, a + 1e-7, torch.tensor([1.5, 2.0])]).unsqueeze(0)
    assert not majority_vote(x, method)[1].item()  # type: ignore[arg-type]
    votes, has = majority_vote(x, method, rtol=1e-6)  # type: ignore[arg-type]
    assert has.item() and torch.allclose(votes[0], a, rtol=1e-6)


@given(
    r=st.sampled_from([1, 3, 5, 7]),
    data=st.data(),
)
def test_boyer_moore_agrees_with_pairwise_counting(r: int, data: st.DataObject) -> None:
    """Rows drawn from a small alphabet so that majorities and ties both happen."""
    labels = data.draw(st.lists(st.lists(st.integers(0, 2), min_size=r, max_size=r), min_size=1, max_size=6))
    x = torch.tensor(labels, dtype=torch.float64).unsqueeze(-1).expand(-1, -1, 4).contiguous()
    bm, has_bm = majority_vote(x, "boyer-moore")
    pw, has_pw = majority_vote(x, "pairwise")
    assert torch.equal(has_bm, has_pw) and torch.equal(bm, pw)
    for g, row in enumerate(labels):
        top = max(set(row), key=row.count)
        assert has_bm[g].item() == (2 * row.count(top) > r)
        if has_bm[g]:
            assert bm[g, 0].item() == top


def test_rejects_bad_shapes_and_methods() -> None:
    with pytest.raises(ValueError, match="Tensor\\[g, r, d\\]"):
        majority_vote(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="vote must be"):
        majority_vote(torch.zeros(1, 3, 4), "median")  # type: ignore[arg-type]
