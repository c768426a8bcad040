"""Coded schemes: server decode cost vs the plain robust rule, and DETOX's synthetic mean estimation.

Part ``cost`` (DETOX §7.3 "Improved speed", DRACO Remark 6.6): per ``(P, d)``, the median seconds of
one server step of each plain rule on ``P`` messages and of its coded counterpart's ``decode`` on the
same ``P x d`` input, and their ratio, measured side by side in one run. Plain rules use ``f = q``
Byzantine workers (``q = P/9``, the chapter's 5 of 45); DETOX uses ``r = 3`` and the §7.4 setups;
DRACO uses ``s = q`` (repetition needs ``2s + 1 | P``: the largest such ``s <= q``).

Part ``mean`` (§7.6.9, Fig. 7.6): robust mean estimation with ``p`` nodes, ``r``, ``q = floor(e^r/3)``
Byzantine nodes sending a constant vector of l2 norm 100; honest nodes send the mean of 20 samples of
``N(0, I_d)`` (DETOX's node groups, computing ``r`` times more, the mean of ``20 r``). Prints the l2
error of GM, coordinate-wise median (CM) and DETOX with ``A_0 = mean`` and ``A_1`` = GM / CM, with the
vote-group counts of Thm 7.3 (``k = 128 ln(1/delta)`` for GM, ``128 ln(d/delta)`` for CM, delta 0.05).

Part ``precision``: the cyclic code's worst relative recovery error with ``s`` adversaries of
magnitudes 1e-3..1e6, for the chapter's node ordering (``stride=1``) and ``stride="auto"``.

    PYTHONPATH=src python benchmarks/coding.py [--quick] [--part cost|mean|precision|all] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from robustfl import aggregators, coding
from robustfl.coding import CodedScheme, Detox


def paired_seconds(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, calls alternated so both see the same machine load."""
    a(), b()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((a, times[0]), (b, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def coded_input(scheme: CodedScheme, d: int, q: int, gen: torch.Generator) -> torch.Tensor:
    """Honest encodings of random partition gradients, ``q`` rows replaced by a constant (-100)."""
    parts = torch.randn(scheme.num_partitions, d, generator=gen)
    msg = scheme.encode_all(parts[torch.tensor(scheme.assignment())])
    msg[torch.randperm(scheme.workers, generator=gen)[:q]] = -100.0
    return msg


def cost(sizes: list[tuple[int, int]], repeats: int) -> None:
    gen = torch.Generator().manual_seed(0)
    print(
        f"{'P':>4}{'d':>8}  {'plain rule':<22}{'ms':>9}  {'coded decode':<26}{'ms':>9}  {'plain/coded':>11}"
    )
    for P, d in sizes:
        q = max(P // 9, 1)
        s = max(v for v in range(q + 1) if P % (2 * v + 1) == 0)
        pairs: list[tuple[str, aggregators.Aggregator, str, CodedScheme]] = [
            (
                "multi-krum",
                aggregators.MultiKrum(f=q),
                "detox-multi-krum",
                coding.get("detox-multi-krum", workers=P),
            ),
            ("bulyan", aggregators.Bulyan(f=q), "detox-bulyan", coding.get("detox-bulyan", workers=P)),
            ("median", aggregators.Median(), "detox-median", coding.get("detox-median", workers=P)),
            (
                "geometric-median T=10",
                aggregators.GeometricMedian(T=10),
                f"draco-repetition s={s}",
                coding.get("draco-repetition", workers=P, s=s),
            ),
            (
                "geometric-median T=10",
                aggregators.GeometricMedian(T=10),
                f"draco-cyclic s={q}",
                coding.get("draco-cyclic", workers=P, s=q),
            ),
        ]
        plain_x = torch.randn(P, d, generator=gen)
        plain_x[:q] = -100.0
        for plain_name, rule, coded_name, scheme in pairs:
            coded_x = coded_input(scheme, d, q, gen)
            dec_gen = torch.Generator().manual_seed(1)
            t_plain, t_coded = paired_seconds(
                partial(rule, plain_x), partial(scheme.decode, coded_x, dec_gen), repeats
            )
            print(
                f"{P:>4}{d:>8}  {plain_name:<22}{t_plain * 1e3:>9.2f}  {coded_name:<26}"
                f"{t_coded * 1e3:>9.2f}  {t_plain / t_coded:>10.1f}x"
            )


def mean_estimation(p: int, r: int, dims: list[int], trials: int) -> None:
    q = math.floor(math.exp(r) / 3)
    delta = 0.05
    gm = aggregators.GeometricMedian(nu=1e-6, T=200, tol=1e-7)
    print(
        f"p={p} r={r} q={q} (eps={q / p:.3f}); l2 error of the mean estimate (true mean 0), {trials} trial(s)"
    )
    print(f"{'d':>4}  {'GM':>8}  {'CM':>8}  {'D-GM':>8}  {'D-CM':>8}  {'E[q_hat]':>8}  {'q_hat':>6}")
    for d in dims:
        k_gm, k_cm = (min(round(128 * math.log(x / delta)), p // r) for x in (1, d))
        errs: dict[str, list[float]] = {"GM": [], "CM": [], "D-GM": [], "D-CM": []}
        q_hat = []
        for t in range(trials):
            gen = torch.Generator().manual_seed(1000 * d + t)
            byz = torch.randperm(p, generator=gen)[:q]
            constant = torch.full((d,), 100 / math.sqrt(d), dtype=torch.float64)
            plain = torch.randn(p, d, generator=gen, dtype=torch.float64) / math.sqrt(20)
            plain[byz] = constant
            errs["GM"].append(float(gm(plain).norm()))
            errs["CM"].append(float(aggregators.Median()(plain).norm()))
            del plain
            groups = {}
            for name, a1, k in (("D-GM", gm, k_gm), ("D-CM", aggregators.Median(), k_cm)):
                scheme = Detox(workers=p, r=r, vote_groups=k, a0="mean", a1=a1, seed=t)
                group_of = torch.empty(p, dtype=torch.long)
                for g, members in enumerate(scheme.node_groups()):
                    group_of[members] = g
                honest = torch.randn(p // r, d, generator=gen, dtype=torch.float64) / math.sqrt(20 * r)
                received = honest[group_of]
                received[byz] = constant
                votes, _ = scheme.votes(received)
                groups[name] = int((votes == constant).all(dim=1).sum())
                errs[name].append(float(scheme.hier_aggr(votes, gen).norm()))
            q_hat.append(groups["D-CM"])
        row = "  ".join(f"{statistics.mean(v):>8.4f}" for v in errs.values())
        expected = coding.expected_byzantine_votes(p, q, r)
        print(f"{d:>4}  {row}  {expected:>8.2f}  {statistics.mean(q_hat):>6.1f}")


def precision(sizes: list[tuple[int, int]], trials: int) -> None:
    """Worst relative recovery error of draco-cyclic over random adversary sets of size s whose rows
    are Gaussian with magnitudes spread over 1e-3..1e6, for the chapter's ordering and stride='auto'."""
    print(f"{'P':>4}{'s':>4}  {'stride':>6}  {'max|W|':>9}  {'worst rel. error':>16}  {'all located':>11}")
    for P, s in sizes:
        for stride in (1, "auto"):
            scheme = coding.DracoCyclic(workers=P, s=s, stride=stride)
            gen = torch.Generator().manual_seed(P * 100 + s)
            worst, found = 0.0, 0
            for _ in range(trials):
                parts = torch.randn(P, 64, generator=gen, dtype=torch.float64)
                msg = scheme.encode_all(parts[torch.tensor(scheme.assignment())])
                bad = torch.randperm(P, generator=gen)[:s]
                scale = 10.0 ** (torch.rand(s, 1, generator=gen, dtype=torch.float64) * 9 - 3)
                msg[bad] = torch.randn(s, msg.shape[1], generator=gen, dtype=torch.float64) * scale
                out, report = scheme.decode_report(msg, gen)
                truth = parts.mean(dim=0)
                worst = max(worst, float((out - truth).abs().max() / truth.abs().max()))
                found += set(report.located) == set(bad.tolist())
            gain = float(scheme.coefficients().abs().max())
            print(f"{P:>4}{s:>4}  {scheme.stride:>6}  {gain:>9.2g}  {worst:>16.1e}  {found:>5}/{trials}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (smoke run)")
    parser.add_argument("--part", choices=["cost", "mean", "precision", "all"], default="all")
    parser.add_argument("--trials", type=int, default=None, help="trials per row (mean: 1, precision: 20)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = args.quick
    if args.part in ("cost", "all"):
        cost(
            [(15, 10_000), (45, 10_000)] if quick else [(15, 100_000), (45, 100_000), (90, 100_000)],
            2 if quick else 7,
        )
    if args.part in ("mean", "all"):
        p, r = (22_001, 7) if quick else (220_000, 11)
        mean_estimation(p, r, [20, 60, 100] if quick else list(range(20, 101, 10)), args.trials or 1)
    if args.part in ("precision", "all"):
        sizes = [(15, 3), (45, 5), (45, 11), (100, 10), (100, 20), (200, 20), (256, 10)]
        precision(sizes[:2] if quick else sizes, args.trials or (2 if quick else 20))


if __name__ == "__main__":
    main()
