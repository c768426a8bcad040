"""Sparsifiers: keep ``k`` of the ``d`` coordinates of each row.

Each sparsifier splits into *selection* (which coordinates, and what it costs to tell the receiver) and
the kept values, so ``Compose`` can send other compressors' per-coordinate codes on the selected
coordinates instead of raw values (seed 000's ``C_k(Q_s(x))``).

Index costs: explicit indices take ``ceil(log2 d)`` bits each; a mask drawn from a seed both sides know
(RandK, RandL) costs only the seed (63 bits, the width of ``robustfl.utils.derive_seed``).
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from robustfl.compressors._checks import check_k_ratio, resolve_k
from robustfl.compressors.base import (
    COMPRESSORS,
    Compressor,
    Field,
    Message,
    Randomness,
    draw_seeds,
    shared_generator,
)
from robustfl.compressors.codecs import Float, UInt, index_bits

SEED_BITS = 63


def mask_from_seed(seed: int, d: int, k: int) -> Tensor:
    """The ``k`` sorted coordinates of ``range(d)`` that ``seed`` selects (uniform, no repeats).

    For ``k <= d / 4``: draw indices with replacement until ``k`` distinct ones are seen, then keep a
    random ``k`` of them, ``O(k log k)``; by symmetry under permutations of ``range(d)`` the result is
    a uniform ``k``-subset. Otherwise the first ``k`` of a random permutation.
    """
    gen = torch.Generator().manual_seed(int(seed))
    if 4 * k > d:
        return torch.randperm(d, generator=gen)[:k].sort().values
    chosen = torch.empty(0, dtype=torch.long)
    while chosen.numel() < k:
        draw = torch.randint(0, d, (k + k // 4 + 16,), generator=gen)
        chosen = torch.unique(torch.cat([chosen, draw]))
    if chosen.numel() > k:
        chosen = chosen[torch.randperm(chosen.numel(), generator=gen)[:k]].sort().values
    return chosen


class Sparsifier(Compressor):
    """A compressor that sends ``k`` values per row plus what identifies their coordinates."""

    @abstractmethod
    def select(self, x: Tensor, rng: Randomness) -> tuple[dict[str, Field], Tensor]:
        """Index fields and the chosen coordinates ``Tensor[n, k]`` (int64, on ``x.device``)."""

    @abstractmethod
    def indices(self, msg: Message) -> Tensor:
        """Recover ``Tensor[n, k]`` coordinates from a message's index fields."""

    def scale(self, d: int, k: int) -> float:
        """Factor applied to the kept values on decode (``d / k`` for unbiased RandK)."""
        return 1.0

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        fields, idx = self.select(x, rng)
        fields["values"] = Field(x.gather(1, idx), Float(x.dtype))
        return Message(self.name, x.shape[0], x.shape[1], x.dtype, fields)

    def _decompress(self, msg: Message) -> Tensor:
        idx = self.indices(msg)
        values = msg.get_rows("values")
        if values.shape != idx.shape:
            raise ValueError(
                f"{self.name} message has {tuple(values.shape)} values for {tuple(idx.shape)} indices"
            )
        return scatter_rows(msg, idx, values.to(msg.dtype) * self.scale(msg.d, idx.shape[1]))


def scatter_rows(msg: Message, idx: Tensor, values: Tensor) -> Tensor:
    """``Tensor[n, d]`` of zeros with ``values`` placed at ``idx``, validating the indices."""
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= msg.d):
        raise ValueError(f"{msg.compressor} message has a coordinate outside range({msg.d})")
    out = torch.zeros(msg.n, msg.d, dtype=msg.dtype, device=values.device)
    return out.scatter_(1, idx.to(values.device), values)


class _KRatio(Sparsifier):
    def __init__(self, k: int | None = None, ratio: float | None = None) -> None:
        check_k_ratio(k, ratio, type(self).__name__)
        self.k, self.ratio = k, ratio

    def kept(self, d: int) -> int:
        return resolve_k(self.k, self.ratio, d)


@COMPRESSORS.register("topk", "top_k")
class TopK(_KRatio):
    """Keep the ``k`` largest-magnitude coordinates of each row (``k`` or ``ratio * d``).

    Biased; contractive with ``delta = k / d`` (the kept mass is at least the average). Bits per sender:
    ``k (ceil(log2 d) + 32)`` for float32 values.
    """

    name = "topk"

    def select(self, x: Tensor, rng: Randomness) -> tuple[dict[str, Field], Tensor]:
        d = x.shape[1]
        idx = x.abs().topk(self.kept(d), dim=1, sorted=False).indices.sort(dim=1).values
        return {"indices": Field(idx, UInt(index_bits(d)))}, idx

    def indices(self, msg: Message) -> Tensor:
        return msg.get_rows("indices", self.kept(msg.d)).long()

    def delta(self, d: int) -> float:
        return self.kept(d) / d


@COMPRESSORS.register("randk", "rand_k")
class RandK(_KRatio):
    """Keep ``k`` coordinates chosen uniformly at random, independently for each sender.

    ``scaled=True`` multiplies the kept values by ``d / k``: unbiased with ``omega = d / k - 1``.
    ``scaled=False`` is the plain projection: biased, contractive with ``delta = k / d``.
    ``shared_seed=True`` sends each sender's 63-bit mask seed instead of its ``k`` indices, so bits per
    sender are ``63 + 32 k`` (else ``k (ceil(log2 d) + 32)``).
    """

    name = "randk"

    def __init__(
        self, k: int | None = None, ratio: float | None = None, scaled: bool = True, shared_seed: bool = True
    ) -> None:
        super().__init__(k, ratio)
        self.scaled, self.shared_seed = bool(scaled), bool(shared_seed)
        self.unbiased = self.scaled

    def select(self, x: Tensor, rng: Randomness) -> tuple[dict[str, Field], Tensor]:
        n, d = x.shape
        k = self.kept(d)
        seeds = draw_seeds(n, rng)
        idx = torch.stack([mask_from_seed(int(s), d, k) for s in seeds]).to(x.device)
        if self.shared_seed:
            return {"seed": Field(seeds.reshape(n, 1), UInt(SEED_BITS))}, idx
        return {"indices": Field(idx, UInt(index_bits(d)))}, idx

    def indices(self, msg: Message) -> Tensor:
        k = self.kept(msg.d)
        if not self.shared_seed:
            return msg.get_rows("indices", k).long()
        seeds = msg.get_rows("seed", 1).reshape(-1)
        return torch.stack([mask_from_seed(int(s), msg.d, k) for s in seeds])

    def scale(self, d: int, k: int) -> float:
        return d / k if self.scaled else 1.0

    def omega(self, d: int) -> float | None:
        return d / self.kept(d) - 1.0 if self.scaled else None

    def delta(self, d: int) -> float | None:
        return super().delta(d) if self.scaled else self.kept(d) / d

    def params(self) -> dict[str, object]:
        return {"k": self.k, "ratio": self.ratio, "scaled": self.scaled, "shared_seed": self.shared_seed}


@COMPRESSORS.register("randl", "rand_l")
class RandL(Sparsifier):
    """C-RSA's rand-l sparsification (seed 001, Definition 1 and §3): one random set of ``l``
    coordinates, drawn from a single seed, shared by every sender of the batch.

    The seed's text says rand-l "set l out of d elements ... as zeros" but gives ``gamma = l / d`` and
    says only ``l`` real values are transmitted; we follow the latter: ``l`` coordinates are *kept*.
    Unscaled, so biased and contractive with ``delta = l / d``. The 63-bit seed is a shared field
    (counted once per batch; ``row(i)`` carries it), then ``32 l`` bits per sender. ``sign=True`` sends
    C-RSA's worker message ``P_omega(sign(x))`` instead: a ternary sign (2 bits) per kept coordinate,
    and ``decompress`` returns those signs (not an approximation of ``x``; ``delta`` is ``None``).
    """

    name = "randl"

    def __init__(self, l: int | None = None, ratio: float | None = None, sign: bool = False) -> None:
        check_k_ratio(l, ratio, "RandL", k_name="l")
        self.l, self.ratio, self.sign = l, ratio, bool(sign)

    def kept(self, d: int) -> int:
        return resolve_k(self.l, self.ratio, d)

    def select(self, x: Tensor, rng: Randomness) -> tuple[dict[str, Field], Tensor]:
        n, d = x.shape
        seed = draw_seeds(1, shared_generator(rng))
        idx = mask_from_seed(int(seed[0]), d, self.kept(d)).to(x.device)
        return {"seed": Field(seed, UInt(SEED_BITS), per_row=False)}, idx.expand(n, -1)

    def indices(self, msg: Message) -> Tensor:
        seed = msg.get("seed").reshape(-1)
        if seed.numel() != 1:
            raise ValueError("randl message must carry exactly one seed")
        return mask_from_seed(int(seed[0]), msg.d, self.kept(msg.d)).expand(msg.n, -1)

    def _compress(self, x: Tensor, rng: Randomness) -> Message:
        if not self.sign:
            return super()._compress(x, rng)
        fields, idx = self.select(x, rng)
        kept = x.gather(1, idx)
        fields["signs"] = Field((kept > 0).to(torch.uint8) + 2 * (kept < 0).to(torch.uint8), UInt(2))
        return Message(self.name, x.shape[0], x.shape[1], x.dtype, fields)

    def _decompress(self, msg: Message) -> Tensor:
        if not self.sign:
            return super()._decompress(msg)
        idx = self.indices(msg)
        codes = msg.get_rows("signs")
        if codes.shape != idx.shape or (codes.numel() and int(codes.max()) > 2):
            raise ValueError("randl sign message is malformed (codes must be 0, 1 or 2, one per index)")
        signs = (codes == 1).to(msg.dtype) - (codes == 2).to(msg.dtype)
        return scatter_rows(msg, idx, signs)

    def delta(self, d: int) -> float | None:
        return None if self.sign else self.kept(d) / d


@COMPRESSORS.register("blocksampling", "block_sampling")
class BlockSampling(Sparsifier):
    """Seed 000, Algorithm 2 (block coordinate selection) as a compressor over a batch ``G: [n, d]``.

    ``s_j = ||G[:, j]||^2``; a set of ``k`` distinct coordinates is sampled with probabilities
    proportional to ``s_j`` (successive sampling without replacement, by exponential keys), and
    every row keeps the same coordinates, unscaled. Zero columns are drawn only once all non-zero ones
    are taken. Biased; contractive in the batch's Frobenius norm with ``delta = k / d``: inclusion
    probabilities grow with ``s_j`` and sum to ``k``, so by Chebyshev's sum inequality the kept mass is
    at least ``(k / d) ||G||_F^2`` (per row when ``n = 1``).

    Bits: the ``k`` indices (``ceil(log2 d)`` each) are one shared field, counted once per batch, then
    ``32 k`` per sender. Choosing the set needs the column norms of all rows, i.e. a server that sees
    ``G`` (as in seed 000's BGMD); that cost is outside this message.
    """

    name = "blocksampling"

    batch_coupled = True

    def __init__(self, k: int | None = None, ratio: float | None = None) -> None:
        check_k_ratio(k, ratio, "BlockSampling")
        self.k, self.ratio = k, ratio

    def kept(self, d: int) -> int:
        return resolve_k(self.k, self.ratio, d)

    def select(self, x: Tensor, rng: Randomness) -> tuple[dict[str, Field], Tensor]:
        n, d = x.shape
        rng = shared_generator(rng)  # one coordinate set for all senders
        gen_device = rng.device if rng is not None else torch.device("cpu")
        scores = x.double().pow(2).sum(dim=0).to(gen_device)
        # successive sampling proportional to s_j in one pass (exponential keys, Efraimidis-Spirakis):
        # the k smallest E_j / s_j with E_j ~ Exp(1); zero columns rank after all positive ones
        k = self.kept(d)
        e = torch.empty_like(scores).exponential_(generator=rng)
        positive = scores > 0
        n_pos = int(positive.sum())
        inf = torch.full_like(scores, float("inf"))
        if n_pos >= k:
            idx = torch.where(positive, e / scores, inf).topk(k, largest=False).indices
        else:  # all positive columns, then zero columns uniformly
            extra = torch.where(positive, inf, e).topk(k - n_pos, largest=False).indices
            idx = torch.cat([positive.nonzero().reshape(-1), extra])
        idx = idx.sort().values
        idx = idx.to(x.device)
        return {"indices": Field(idx, UInt(index_bits(d)), per_row=False)}, idx.expand(n, -1)

    def indices(self, msg: Message) -> Tensor:
        idx = msg.get("indices").reshape(-1).long()
        if idx.numel() != self.kept(msg.d):
            raise ValueError(f"blocksampling message has {idx.numel()} indices, expected {self.kept(msg.d)}")
        return idx.expand(msg.n, -1)

    def delta(self, d: int) -> float:
        return self.kept(d) / d
