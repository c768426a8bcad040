import math

import pytest
import torch
from coding_helpers import corrupt, honest_messages
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl import coding
from robustfl.coding import DracoCyclic, DracoRepetition

KINDS = ["gaussian", "constant", "reverse", "nonfinite"]


def adversaries(data: st.DataObject, P: int, s: int) -> list[int]:
    return data.draw(st.lists(st.integers(0, P - 1), max_size=s, unique=True))


@settings(max_examples=40, deadline=None)
@given(groups=st.integers(1, 5), s=st.integers(0, 3), kind=st.sampled_from(KINDS), data=st.data())
def test_repetition_output_is_bit_identical_to_the_attack_free_output(
    groups: int, s: int, kind: str, data: st.DataObject
) -> None:
    P = groups * (2 * s + 1)
    scheme = DracoRepetition(
        workers=P, s=s, vote=data.draw(st.sampled_from(["auto", "boyer-moore", "pairwise"]))
    )
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31)))
    parts = torch.randn(P, 7, generator=gen)
    clean = honest_messages(scheme, parts)
    bad = adversaries(data, P, s)
    out, report = scheme.decode_report(corrupt(clean, bad, gen, kind))
    assert torch.equal(out, scheme.decode(clean))  # Thm 6.7 / Remark 6.4: the same update, bit for bit
    torch.testing.assert_close(out, parts.mean(dim=0), rtol=1e-5, atol=1e-6)
    assert report.no_majority == 0
    assert set(report.located) <= set(bad)
    if kind != "reverse":  # -100 * g equals g only where g = 0
        assert set(report.located) == set(bad)


def test_repetition_colluding_majority_is_visible_in_the_report() -> None:
    scheme = DracoRepetition(workers=6, s=1)
    clean = honest_messages(scheme, torch.randn(6, 5))
    attacked = clean.clone()
    attacked[[0, 1]] = 3.0  # two of three in group 0 agree: more than s adversaries in that group
    attacked[4] = 1.0
    out, report = scheme.decode_report(attacked)
    assert report.located == (2, 4)
    assert torch.equal(out, (torch.full((5,), 3.0) + clean[3]) / 2)


@pytest.mark.parametrize(("P", "s"), [(10, 1), (9, 2), (4, 2)])
def test_repetition_rejects_r_not_dividing_P(P: int, s: int) -> None:
    with pytest.raises(ValueError, match=f"P={P}, s={s}, r={2 * s + 1}"):
        coding.get("draco-repetition", workers=P, s=s)


def test_repetition_assignment_and_encoding_follow_the_block_code() -> None:
    scheme = DracoRepetition(workers=6, s=1)
    assert scheme.assignment() == [[0, 1, 2]] * 3 + [[3, 4, 5]] * 3
    assert scheme.redundancy == 3
    g = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(scheme.encode(4, g), g.mean(dim=0))
    assert scheme.message_dim(4) == 4


CYCLIC_SIZES = [(3, 1), (5, 2), (7, 1), (15, 3), (15, 7), (45, 5), (45, 11), (64, 8), (100, 20)]


@settings(max_examples=30, deadline=None)
@given(size=st.sampled_from(CYCLIC_SIZES), kind=st.sampled_from(KINDS), data=st.data())
def test_cyclic_recovers_the_mean_with_up_to_s_arbitrary_adversaries(
    size: tuple[int, int], kind: str, data: st.DataObject
) -> None:
    P, s = size
    scheme = DracoCyclic(workers=P, s=s)
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31)))
    parts = torch.randn(P, 6, generator=gen, dtype=torch.float64)
    clean = honest_messages(scheme, parts)
    bad = adversaries(data, P, s)
    out, report = scheme.decode_report(corrupt(clean, bad, gen, kind), gen)
    err = (out - parts.mean(dim=0)).abs().max() / parts.mean(dim=0).abs().max()
    assert err < 1e-8, (err, report)
    if kind in ("constant", "nonfinite"):  # large deviations are all named
        assert set(report.located) == set(bad)


def test_cyclic_float32_gradients_are_encoded_in_float64() -> None:
    scheme = DracoCyclic(workers=9, s=2)
    parts = torch.randn(9, 5)
    msg = honest_messages(scheme, parts)
    assert msg.dtype == torch.float64 and msg.shape == (9, 10) and scheme.message_dim(5) == 10
    torch.testing.assert_close(scheme.decode(msg).float(), parts.mean(dim=0), rtol=1e-5, atol=1e-6)


def test_cyclic_encoding_matrix_is_the_chapters_code() -> None:
    """Lemma 6.8 (support and span of 1_P) and Lemma 6.14 (W C_R^H = 0) for stride 1 and auto."""
    for stride in (1, "auto"):
        P, s = 11, 2
        scheme = DracoCyclic(workers=P, s=s, stride=stride)
        W = scheme.encoding_matrix()
        support = torch.zeros(P, P, dtype=torch.bool)
        for j, parts in enumerate(scheme.assignment()):
            assert parts == [(j + i) % P for i in range(2 * s + 1)]
            support[parts, j] = True
        assert torch.equal(W != 0, support)
        x = torch.polar(
            torch.ones(P, dtype=torch.float64),
            2 * math.pi * ((scheme.stride * torch.arange(P, dtype=torch.float64)) % P) / P,
        )
        C = x.unsqueeze(0) ** torch.arange(P).unsqueeze(1).to(torch.complex128) / math.sqrt(P)
        assert (W @ C[P - 2 * s :].conj().T).abs().max() < 1e-12
        U = [0, 2, 3, 5, 6, 8, 9]  # any P - 2s columns span 1_P
        b = torch.linalg.lstsq(W[:, U], torch.ones(P, dtype=torch.complex128)).solution
        assert (W[:, U] @ b - 1).abs().max() < 1e-10


def test_cyclic_chapter_ordering_loses_precision_where_auto_stride_does_not() -> None:
    P, s = 100, 10
    parts = torch.randn(P, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    errors = {}
    for stride in (1, "auto"):
        scheme = DracoCyclic(workers=P, s=s, stride=stride)
        out = scheme.decode(honest_messages(scheme, parts), torch.Generator().manual_seed(1))
        errors[stride] = float((out - parts.mean(dim=0)).abs().max())
    assert errors["auto"] < 1e-12 < 1e-3 < errors[1]


def test_cyclic_residual_flags_more_than_s_adversaries() -> None:
    scheme = DracoCyclic(workers=15, s=2)
    gen = torch.Generator().manual_seed(3)
    clean = honest_messages(scheme, torch.randn(15, 8, generator=gen, dtype=torch.float64))
    residuals = []
    for bad in ([1, 2], [1, 5, 9]):
        attacked = clean.clone()
        attacked[bad] += 10 * torch.randn(len(bad), clean.shape[1], generator=gen, dtype=torch.float64)
        residuals.append(scheme.decode_report(attacked, gen)[1].residual)
    assert residuals[0] < 1e-9 < 1e-2 < residuals[1]  # type: ignore[operator]


def test_cyclic_config_errors_name_the_rule() -> None:
    with pytest.raises(ValueError, match="P=4, s=2, r=5"):
        coding.get("draco-cyclic", workers=4, s=2)
    with pytest.raises(ValueError, match="coprime"):
        coding.get("draco-cyclic", workers=10, s=1, stride=2)
    with pytest.raises(ValueError, match="even length"):
        DracoCyclic(workers=5, s=1).decode(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="rows but the scheme has P=5"):
        DracoCyclic(workers=5, s=1).decode(torch.zeros(4, 6))
    with pytest.raises(ValueError, match="grads must have shape"):
        DracoCyclic(workers=5, s=1).encode_all(torch.zeros(5, 2, 4))


def test_registry_lists_the_schemes_and_validates_parameters() -> None:
    names = coding.CODINGS.names()
    for name in ("draco-repetition", "draco-cyclic", "detox", "detox-multi-krum"):
        assert name in names
    with pytest.raises(ValueError, match="has no parameter f"):
        coding.get("draco-repetition", workers=3, f=1)


@pytest.mark.parametrize(
    ("name", "params"),
    [("draco-repetition", {"s": 1}), ("draco-cyclic", {"s": 2}), ("detox", {"r": 3}), ("detox-bulyan", {})],
)
def test_encode_one_worker_matches_encode_all(name: str, params: dict[str, int]) -> None:
    scheme = coding.get(name, workers=15, **params)
    G = torch.randn(15, scheme.per_worker, 6, dtype=torch.float64)
    every = scheme.encode_all(G)
    for j in range(15):
        torch.testing.assert_close(scheme.encode(j, G[j]), every[j])
    with pytest.raises(ValueError, match="worker must be < P=15"):
        scheme.encode(15, G[0])


def test_cyclic_residual_is_tiny_without_adversaries() -> None:
    for P, s in [(5, 2), (15, 3), (45, 5)]:
        scheme = DracoCyclic(workers=P, s=s)
        parts = torch.randn(P, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(P))
        _, report = scheme.decode_report(honest_messages(scheme, parts), torch.Generator().manual_seed(0))
        assert report.residual is not None and report.residual < 1e-12
        assert report.located == ()
