"""Cosine distances stay accurate when rows share a large common part (model weights)."""

import torch

from robustfl.aggregators._cosine import cosine_distances, row_norms, weighted_rows


def exact(x: torch.Tensor) -> torch.Tensor:
    u = x.double() / torch.linalg.vector_norm(x.double(), dim=1, keepdim=True)
    return torch.cdist(u, u).square() / 2  # differences of unit vectors: no cancellation


def test_matches_definition_on_gradients() -> None:
    x = torch.randn(6, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cos = torch.nn.functional.cosine_similarity(x.unsqueeze(1), x.unsqueeze(0), dim=-1)
    assert torch.allclose(cosine_distances(x), 1 - cos.fill_diagonal_(1.0), atol=1e-12)
    assert torch.allclose(row_norms(x.float()), x.norm(dim=1), rtol=1e-6)
    w = torch.arange(6, dtype=torch.float64)
    assert torch.allclose(weighted_rows(w, x.float()).double(), w @ x, rtol=1e-5, atol=1e-5)


def test_relative_accuracy_on_rows_with_a_large_common_part() -> None:
    g = torch.Generator().manual_seed(1)
    common = 100 * torch.randn(1000, generator=g)
    x = (common + 1e-2 * torch.randn(8, 1000, generator=g)).float()  # float32 weights
    got, want = cosine_distances(x), exact(x)
    off = ~torch.eye(8, dtype=torch.bool)
    assert float(want[off].max()) < 1e-7  # below float32 resolution of 1 - cos
    assert torch.allclose(got[off], want[off], rtol=1e-6)


def test_zero_rows_are_orthogonal_to_everything() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    d = cosine_distances(x)
    assert d[0, 1] == 1 and d[1, 0] == 1 and d[0, 0] == 0 and d[1, 2] == 0


def test_column_chunks_give_the_same_distances() -> None:
    x = torch.randn(5, 103, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x[2] = 0.0
    assert torch.allclose(cosine_distances(x, chunk_elements=5 * 7), cosine_distances(x), atol=1e-13)
