"""``robustfl reproduce bgmd-table2``: Table 2 of Acharya et al. 2022 on our stack, printed beside the paper's numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustfl.cli._errors import user_errors
from robustfl.cli._progress import runs_progress
from robustfl.cli.app import app
from robustfl.cli.run import SetOption, default_out

reproduce_app = typer.Typer(no_args_is_help=True, help="Reproduce a published table.")
app.add_typer(reproduce_app, name="reproduce")


def with_rounds(overrides: list[str] | None, rounds: int | None) -> list[str]:
    """The ``--set`` overrides plus ``training.rounds`` when ``--rounds`` was given."""
    return [*(overrides or []), *([f"training.rounds={rounds}"] if rounds else [])]


WorkersOption = Annotated[
    int, typer.Option("--workers", "-w", min=1, help="Runs in parallel (process pool).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the table.")]
OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Folder (default runs/<command>-<time>).")
]


@reproduce_app.command("bgmd-table2")
def bgmd_table2(
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds per run (default: the configs' 150).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Folder with the Fashion-MNIST IDX files; default: the embedded MNIST sample."),
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option(help="Only these methods (sgd, cmd, gmd, bgmd); repeatable.")
    ] = None,
    corruption: Annotated[list[str] | None, typer.Option(help="Only these corruptions; repeatable.")] = None,
    seed: Annotated[
        list[int] | None,
        typer.Option(help="Run every cell with these seeds (repeatable; mean ± std). Default 0."),
    ] = None,
    set_: SetOption = None,
    workers: WorkersOption = 1,
    out: OutOption = None,
    write_configs: Annotated[
        Path | None, typer.Option(help="Only write the 64 TOML configs into this folder and exit.")
    ] = None,
    quiet: QuietOption = False,
    reading: Annotated[
        str,
        typer.Option(
            help="Rows of G_t: 'workers' (10 worker gradients) or 'samples' (per-sample/per-group gradients)."
        ),
    ] = "workers",
    group: Annotated[
        int, typer.Option(min=1, help="Samples per row with --reading samples (must divide 320).")
    ] = 1,
    cifar_dir: Annotated[
        Path | None,
        typer.Option(
            help="CIFAR-10 folder: run the het_* rows with ResNet-18 as the seed (default: stand-in)."
        ),
    ] = None,
) -> None:
    """LeNet, 10 workers: SGD / CMD / GMD / BGMD under clean, bit-flip, additive, impulse and backdoor corruption."""
    from robustfl.cli._output import console
    from robustfl.experiment import bgmd_table2 as t2
    from robustfl.experiment.table import print_table

    if write_configs is not None:
        for path in t2.write_configs(write_configs):
            typer.echo(str(path))
        return
    overrides = with_rounds(set_, rounds)
    if data_dir is not None:
        overrides += ["data.name=fashion-mnist", f"data.data_dir={str(data_dir)!r}"]
    out_dir = out or default_out("bgmd-table2")
    total = len(method or t2.METHODS) * len(corruption or t2.ALL_ROWS) * len(seed or [0])
    with user_errors(), runs_progress(total, "bgmd-table2", quiet) as on_done:
        rows = t2.reproduce(
            out_dir,
            methods=method,
            corruptions=corruption,
            seeds=seed,
            overrides=overrides,
            workers=workers,
            on_done=on_done,
            reading=reading,
            group=group,
            cifar_dir=cifar_dir,
        )
    methods = [m for m in t2.METHODS if any(f"{m}_ours" in r for r in rows.values())]
    table = [
        {"corruption": c, "f": r["f"], **{m.upper(): t2.cell_text(r, m) for m in methods}}
        for c, r in rows.items()
    ]
    print_table(
        console(),
        table,
        ["corruption", "f", *(m.upper() for m in methods)],
        title="test accuracy %: ours (Acharya et al. 2022, Table 2)",
    )
    for statement, holds in t2.shape_checks(rows):
        mark = "n/a " if holds is None else ("PASS" if holds else "MISS")
        typer.echo(f"{mark}  {statement}")
    typer.echo(f"table: {out_dir / 'table2.md'}")


@reproduce_app.command("crsa")
def crsa(
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds per run (default: the configs' 100).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Folder with the CIFAR-10 files; default: the embedded MNIST sample."),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(help="Only these methods (mean, median, krum, rsa, c-rsa); repeatable."),
    ] = None,
    attack: Annotated[
        list[str] | None,
        typer.Option(help="Only these attacks (large-number, sign-flip, gaussian, clean); repeatable."),
    ] = None,
    set_: SetOption = None,
    workers: WorkersOption = 1,
    out: OutOption = None,
    write_configs: Annotated[
        Path | None, typer.Option(help="Only write the TOML configs into this folder and exit.")
    ] = None,
    quiet: QuietOption = False,
    figure: Annotated[
        int,
        typer.Option(min=1, max=2, help="1: accuracy vs rounds and bits; 2: vs b and vs gamma (Gaussian)."),
    ] = 1,
    b: Annotated[
        list[int] | None,
        typer.Option("--b", help="--figure 2: Byzantine workers (default 0 1 2 3 4); repeatable."),
    ] = None,
    gamma: Annotated[
        list[float] | None,
        typer.Option(help="--figure 2: C-RSA's gamma values (default 0.1 0.25 0.5 0.75 1); repeatable."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="--figure 2: reuse finished runs in --out, continue partial ones."),
    ] = False,
) -> None:
    """He, Zhu & Ling (C-RSA) Fig. 1 (or 2): SGD-mean / median / Krum / RSA / C-RSA, 10 workers, non-IID."""
    from rich.console import Console

    from robustfl.experiment import crsa as cr
    from robustfl.experiment.table import to_rich

    if write_configs is not None:
        for path in cr.write_configs(write_configs):
            typer.echo(str(path))
        return
    overrides = with_rounds(set_, rounds)
    if data_dir is not None:
        overrides += ["data.name=cifar10", f"data.data_dir={str(data_dir)!r}"]
    out_dir = out or default_out("crsa")
    if figure == 2:
        if attack:
            raise typer.BadParameter("--figure 2 runs the Gaussian attack only; drop --attack")
        bs, gammas = b or list(cr.FIG2_BS), gamma or list(cr.FIG2_GAMMAS)
        with user_errors():
            cells = cr.figure2_cells(method or list(cr.METHODS), bs, gammas)
        with user_errors(), runs_progress(len(cells), "crsa fig. 2", quiet) as on_done:
            rows = cr.reproduce_figure2(
                out_dir,
                methods=method,
                bs=bs,
                gammas=gammas,
                overrides=overrides,
                workers=workers,
                on_done=on_done,
                resume=resume,
            )
        columns = ["method", "b", "gamma", "last10_acc", "final_acc", "bits_up", "diverged"]
        title = (
            f"C-RSA Fig. 2 (Gaussian attack): test accuracy %, mean of the last {cr.FIG2_LAST} evaluations"
        )
        Console().print(to_rich(rows, columns, title=title))
        typer.echo(f"table: {out_dir / 'crsa_fig2.md'}  figure: {out_dir / 'crsa_fig2.png'}")
        return
    if b or gamma or resume:
        raise typer.BadParameter("--b, --gamma and --resume belong to --figure 2")
    total = len(method or cr.METHODS) * len(attack or cr.DEFAULT_ATTACKS)
    with user_errors(), runs_progress(total, "crsa", quiet) as on_done:
        rows = cr.reproduce(
            out_dir, methods=method, attacks=attack, overrides=overrides, workers=workers, on_done=on_done
        )
    columns = ["attack", "method", "final_acc", "last3_acc", "bits_up", "bits_down", "diverged"]
    Console().print(to_rich(rows, columns, title="C-RSA (He et al.) Fig. 1: test accuracy % and bits"))
    typer.echo(f"table: {out_dir / 'crsa.md'}  figure: {out_dir / 'crsa.png'}")


@reproduce_app.command("momentum-cc")
def momentum_cc(
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds per run (default: the configs' 300).")
    ] = None,
    rule: Annotated[
        list[str] | None, typer.Option(help="Only these rules (mean, median, krum, cc); repeatable.")
    ] = None,
    attack: Annotated[
        list[str] | None, typer.Option(help="Only these attacks (alie, ipm); repeatable.")
    ] = None,
    set_: SetOption = None,
    workers: WorkersOption = 1,
    out: OutOption = None,
    quiet: QuietOption = False,
) -> None:
    """Karimireddy et al. (ICML 2021): history-free rules vs worker momentum + centered clipping under ALIE / IPM."""
    from rich.console import Console

    from robustfl.experiment import momentum_cc as mc
    from robustfl.experiment.table import to_rich

    overrides = with_rounds(set_, rounds)
    out_dir = out or default_out("momentum-cc")
    total = len(rule or mc.RULES) * len(mc.MOMENTA) * len(attack or mc.ATTACKS)
    with user_errors(), runs_progress(total, "momentum-cc", quiet) as on_done:
        rows = mc.reproduce(
            out_dir, rules=rule, attacks=attack, overrides=overrides, workers=workers, on_done=on_done
        )
    columns = ["attack", "rule", *(f"momentum {m:g}" for m in mc.MOMENTA)]
    Console().print(to_rich(rows, columns, title="final test accuracy %: without / with worker momentum"))
    typer.echo(f"table: {out_dir / 'momentum_cc.md'}")


@reproduce_app.command("client-drift")
def client_drift(
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds per run (default: the configs' 60).")
    ] = None,
    algorithm: Annotated[
        list[str] | None,
        typer.Option(help="Only these (fedavg, fedprox, scaffold, mime, mimelite); repeatable."),
    ] = None,
    scenario: Annotated[
        list[str] | None, typer.Option(help="Only these (clean, byzantine); repeatable.")
    ] = None,
    set_: SetOption = None,
    workers: WorkersOption = 1,
    out: OutOption = None,
    quiet: QuietOption = False,
    sweep_lr: Annotated[
        bool,
        typer.Option(
            "--sweep-lr",
            help="Sweep lr (and beta for Mime/MimeLite) on the clean runs; run each method's best under attack.",
        ),
    ] = False,
    lr: Annotated[
        list[float] | None,
        typer.Option(help="--sweep-lr: the lrs (default 0.01 0.02 0.05); repeatable."),
    ] = None,
    beta: Annotated[
        list[float] | None, typer.Option(help="--sweep-lr: Mime(Lite) betas (default 0.5 0.9); repeatable.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="--sweep-lr: reuse finished runs in --out, continue partial ones."),
    ] = False,
) -> None:
    """FedAvg / FedProx / SCAFFOLD / Mime / MimeLite on a Dirichlet(0.1) split, clean and with Byzantine clients."""
    from rich.console import Console

    from robustfl.experiment import client_drift as cd
    from robustfl.experiment.table import to_rich

    overrides = with_rounds(set_, rounds)
    out_dir = out or default_out("client-drift")
    if sweep_lr:
        if scenario:
            raise typer.BadParameter("--sweep-lr chooses the scenarios itself; drop --scenario")
        lrs, betas = lr or list(cd.LRS), beta or list(cd.BETAS)
        settings = cd.sweep_settings(algorithm or list(cd.ALGORITHMS), lrs, betas)
        total = len(settings) + len({s.algorithm for s in settings})
        with user_errors(), runs_progress(total, "client-drift sweep", quiet) as on_done:
            sweep_rows, best_rows = cd.reproduce_sweep(
                out_dir,
                algorithms=algorithm,
                lrs=lrs,
                betas=betas,
                overrides=overrides,
                workers=workers,
                on_done=on_done,
                resume=resume,
            )
        console = Console()
        columns = ["method", *(f"lr={x:g}" for x in lrs)]
        console.print(to_rich(sweep_rows, columns, title="clean: test accuracy % final / last three"))
        console.print(to_rich(best_rows, ["algorithm", "lr", "beta", "clean", "byzantine"], title="best lr"))
        typer.echo(f"tables: {out_dir / 'client_drift_sweep.md'}  {out_dir / 'client_drift_best.md'}")
        return
    if lr or beta:
        raise typer.BadParameter(
            "--lr and --beta belong to --sweep-lr (use --set training.lr=... for one run)"
        )
    chosen = scenario or list(cd.SCENARIOS)
    total = len(algorithm or cd.ALGORITHMS) * len(chosen)
    with user_errors(), runs_progress(total, "client-drift", quiet) as on_done:
        rows = cd.reproduce(
            out_dir,
            algorithms=algorithm,
            scenarios=scenario,
            overrides=overrides,
            workers=workers,
            on_done=on_done,
        )
    Console().print(to_rich(rows, ["algorithm", *chosen], title="final test accuracy %"))
    typer.echo(f"table: {out_dir / 'client_drift.md'}")


@reproduce_app.command("personalise")
def personalise(
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Training rounds per seed (default: the configs' 60).")
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(help="Only these (finetune, weighted, weighted-plain); repeatable."),
    ] = None,
    seed: Annotated[
        list[int] | None, typer.Option(help="Train with these seeds (repeatable; mean ± std). Default 0.")
    ] = None,
    set_: SetOption = None,
    out: OutOption = None,
    quiet: QuietOption = False,
) -> None:
    """FedAvg on a Dirichlet(0.1) split, then fine-tuning / weighted averaging (+ bias correction) per client."""
    from rich.console import Console

    from robustfl.experiment import personalise_runs as pr
    from robustfl.experiment.table import to_rich

    out_dir = out or default_out("personalise")
    with user_errors(), runs_progress(len(seed or [0]), "personalise", quiet) as on_done:
        rows = pr.reproduce(
            out_dir, methods=method, seeds=seed, overrides=with_rounds(set_, rounds), on_done=on_done
        )
    columns = ["model", "mean %", "worst 10% %"]
    Console().print(to_rich(rows, columns, title="per-client test accuracy on held-out client data"))
    typer.echo(f"table: {out_dir / 'personalise.md'}")


@reproduce_app.command("fl-bgmd")
def fl_bgmd(
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds per run (default: the configs' 40).")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option(help="Only these (fl-bgmd, fedavg-gm, fedavg-mean); repeatable.")
    ] = None,
    corruption: Annotated[
        list[str] | None, typer.Option(help="Only these (clean, bitflip_20, additive_20); repeatable.")
    ] = None,
    set_: SetOption = None,
    workers: WorkersOption = 1,
    out: OutOption = None,
    quiet: QuietOption = False,
) -> None:
    """FL-BGMD vs FedAvg + GM vs FedAvg-mean under the corruptions of Acharya et al. 2022, 5 local steps per sync."""
    from rich.console import Console

    from robustfl.experiment import fl_bgmd as fb
    from robustfl.experiment.table import to_rich

    overrides = with_rounds(set_, rounds)
    out_dir = out or default_out("fl-bgmd")
    chosen = method or list(fb.METHODS)
    total = len(chosen) * len(corruption or fb.CORRUPTIONS)
    with user_errors(), runs_progress(total, "fl-bgmd", quiet) as on_done:
        rows = fb.reproduce(
            out_dir,
            methods=method,
            corruptions=corruption,
            overrides=overrides,
            workers=workers,
            on_done=on_done,
        )
    columns = ["corruption", *chosen, *(f"{m} agg s/round" for m in chosen)]
    Console().print(
        to_rich(rows, columns, title="final test accuracy % and server aggregation seconds per round")
    )
    typer.echo(f"table: {out_dir / 'fl_bgmd.md'}")


@reproduce_app.command("fedma")
def fedma_table(
    setup: Annotated[
        str,
        typer.Option(
            help="embedded (default: MNIST sample), vgg9-cifar10 or lstm-shakespeare (need --data-dir)."
        ),
    ] = "embedded",
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder with the CIFAR-10 / Shakespeare files.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="embedded only: mlp (default) or lenet.")] = None,
    rounds: Annotated[
        int | None, typer.Option(min=1, help="FedMA rounds (FedAvg/FedProx: rounds x layers).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Local epochs E of every method.")] = None,
    clients: Annotated[int | None, typer.Option(min=2, help="Number of clients J.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the split and the initialisations.")] = 0,
    out: OutOption = None,
) -> None:
    """FedMA vs FedAvg vs FedProx vs ensemble at equal communications (Tables 5.1–5.2 of Wang et al., ICLR 2020)."""
    from robustfl.experiment import fedma_runs

    changes = {
        k: v
        for k, v in (("model", model), ("rounds", rounds), ("epochs", epochs), ("clients", clients))
        if v is not None
    }
    out_dir = out or default_out("fedma")
    with user_errors():
        if setup != "embedded" and data_dir is None:
            raise ValueError(f"--setup {setup} needs --data-dir (the folder with its files)")
        if model is not None and setup != "embedded":
            raise ValueError("--model applies to --setup embedded only")
        fedma_runs.reproduce(
            out_dir,
            setup,
            data_dir,
            seed=seed,
            on_done=lambda m: typer.echo(f"done: {m}", err=True),
            **changes,
        )
    typer.echo((out_dir / "fedma.md").read_text(encoding="utf-8"), nl=False)
    typer.echo(f"table: {out_dir / 'fedma.md'}")


@reproduce_app.command("atomo")
def atomo_table(
    method: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these (vanilla always runs): atomo-s1..4, qsgd-b1/2/4/8, terngrad; repeatable."
        ),
    ] = None,
    rounds: Annotated[int | None, typer.Option(min=1, help="Rounds per method (default 150).")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="CIFAR-10 files: ResNet-18 on CIFAR-10 instead of the embedded sample."),
    ] = None,
    target: Annotated[
        list[float] | None,
        typer.Option(help="Target test accuracies in (0, 1]; repeatable (default .6 .7 .8 .9)."),
    ] = None,
    bandwidth: Annotated[
        float | None, typer.Option(min=0.0, help="Link bandwidth in Gbit/s (default: the preset's 1).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every run.")] = 0,
    out: OutOption = None,
) -> None:
    """Speed-ups over vanilla SGD in modelled wall time on 16 g2.2xlarge nodes (Tables 3.3-3.4 of ATOMO)."""
    from robustfl.commtime import cluster
    from robustfl.experiment import atomo_runs

    out_dir = out or default_out("atomo")
    with user_errors():
        net = cluster("g2.2xlarge-16")
        if bandwidth is not None:
            net = net.with_bandwidth(bandwidth)
        atomo_runs.reproduce(
            out_dir,
            methods=method,
            rounds=rounds,
            data_dir=data_dir,
            targets=tuple(target) if target else atomo_runs.TARGETS,
            net=net,
            seed=seed,
            on_done=lambda m: typer.echo(f"done: {m}", err=True),
        )
    typer.echo((out_dir / "atomo.md").read_text(encoding="utf-8"), nl=False)
    typer.echo(f"table: {out_dir / 'atomo.md'}")


@reproduce_app.command("pufferfish")
def pufferfish_table(
    rounds: Annotated[int, typer.Option(min=2, help="Rounds per variant.")] = 150,
    warmup: Annotated[int, typer.Option(min=1, help="Vanilla warm-up rounds of the warm-up variants.")] = 30,
    k: Annotated[int, typer.Option(min=1, help="First low-rank weight layer K of the hybrid (1-based).")] = 2,
    variant: Annotated[
        list[str] | None, typer.Option(help="Only these variants (labels of the table); repeatable.")
    ] = None,
    model: Annotated[str, typer.Option(help="mlp (784-200-200-10) or lenet.")] = "mlp",
    seed: Annotated[int, typer.Option(min=0, help="Seed of every run.")] = 0,
    out: OutOption = None,
) -> None:
    """Vanilla vs low-rank vs hybrid without / with warm-up, and PowerSGD (PUFFERFISH Table 4.8's ablation)."""
    from robustfl.experiment import pufferfish_runs

    out_dir = out or default_out("pufferfish")
    with user_errors():
        pufferfish_runs.reproduce(
            out_dir,
            rounds=rounds,
            warmup=warmup,
            k=k,
            only=variant,
            seed=seed,
            model=model,
            on_done=lambda m: typer.echo(f"done: {m}", err=True),
        )
    typer.echo((out_dir / "pufferfish.md").read_text(encoding="utf-8"), nl=False)
    typer.echo(f"table: {out_dir / 'pufferfish.md'}")


@reproduce_app.command("bgmd-speed")
def bgmd_speed(
    corruption: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these corruptions (default impulse_20, bitflip_20, backdoor_20); repeatable."
        ),
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option(help="Only these methods (sgd, cmd, gmd, bgmd); repeatable.")
    ] = None,
    group: Annotated[
        int, typer.Option(min=1, help="Samples per gradient row (320 / group rows; must divide 320).")
    ] = 4,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds per run.")] = 60,
    eval_every: Annotated[int, typer.Option(min=1, help="Evaluate every this many rounds.")] = 5,
    clock: Annotated[
        str, typer.Option(help="Time axis: cpu (the runs' CPU seconds, load-proof) or wall (wall-clock).")
    ] = "cpu",
    resume: Annotated[
        bool, typer.Option("--resume", help="Read finished runs back and continue partial ones.")
    ] = False,
    set_: SetOption = None,
    out: OutOption = None,
    quiet: QuietOption = False,
) -> None:
    """Acharya et al. 2022, Figs 2-4: accuracy vs training time for SGD / CMD / GMD / BGMD, and BGMD's speed-up over GMD."""
    from robustfl.experiment import bgmd_speed as bs
    from robustfl.experiment import bgmd_table2 as t2

    out_dir = out or default_out("bgmd-speed")
    total = len(corruption or bs.CORRUPTIONS) * len(method or t2.METHODS)
    with user_errors(), runs_progress(total, "bgmd-speed", quiet) as on_done:
        result = bs.reproduce(
            out_dir,
            corruptions=corruption,
            methods=method,
            group=group,
            rounds=rounds,
            eval_every=eval_every,
            clock=clock,
            resume=resume,
            overrides=list(set_ or []),
            on_done=on_done,
        )
    for c, r in result["speedup"].items():
        ratio = "not reached" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        typer.echo(
            f"{c}: BGMD reaches GMD's accuracy - {bs.TOLERANCE:g} point(s) {ratio} sooner (seed: 2.5-3x)"
        )
    typer.echo(f"figure: {out_dir / 'bgmd_speed.png'}")


@reproduce_app.command("detox")
def detox_table(
    run: Annotated[
        list[str] | None, typer.Option(help="Only these rows (e.g. d-median/alie); repeatable.")
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds per row.")] = 100,
    workers: Annotated[int, typer.Option(min=3, help="P workers (a multiple of r = 3).")] = 45,
    byzantine: Annotated[int, typer.Option(min=0, help="Byzantine workers (drawn at random once).")] = 5,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every run.")] = 0,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder with the CIFAR-10 files: ResNet-18 on CIFAR-10 instead of the default MLP."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder (default runs/detox-<time>).")
    ] = None,
) -> None:
    """DETOX vs plain Multi-Krum / Bulyan / Median under ALIE, signSGD +- DETOX (Table 7.1's shape)."""
    from robustfl.experiment import coded_runs

    out_dir = out or default_out("detox")
    with user_errors():
        coded_runs.reproduce_detox(
            out_dir, rounds, workers, byzantine, seed, only=run, data_dir=data_dir,
            on_done=lambda m: typer.echo(f"done: {m}", err=True),
        )  # fmt: skip
    typer.echo((out_dir / "detox.md").read_text(encoding="utf-8"), nl=False)
    typer.echo(f"table: {out_dir / 'detox.md'}")


@reproduce_app.command("draco")
def draco_table(
    run: Annotated[
        list[str] | None, typer.Option(help="Only these cells (e.g. cyclic/constant); repeatable.")
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds per cell.")] = 100,
    workers: Annotated[int, typer.Option(min=3, help="P workers (2s + 1 must divide it).")] = 15,
    s: Annotated[int, typer.Option(min=1, help="Adversaries, re-drawn every round.")] = 2,
    target: Annotated[
        list[float] | None,
        typer.Option(help="Target test accuracies in (0, 1]; repeatable (default .6 .7 .8)."),
    ] = None,
    bandwidth: Annotated[
        float | None, typer.Option(min=0.0, help="Link bandwidth in Gbit/s (default: the preset's 1).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every run.")] = 0,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder with the CIFAR-10 files: ResNet-18 on CIFAR-10 instead of the default MLP."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder (default runs/draco-<time>).")
    ] = None,
) -> None:
    """Repetition and cyclic codes vs the geometric median: speed-ups and cost split (Tables 6.2-6.7)."""
    from robustfl.commtime import cluster
    from robustfl.experiment import coded_runs

    out_dir = out or default_out("draco")
    with user_errors():
        net = cluster("g2.2xlarge-16")
        if bandwidth is not None:
            net = net.with_bandwidth(bandwidth)
        coded_runs.reproduce_draco(
            out_dir, rounds, workers, s, seed, data_dir=data_dir,
            targets=tuple(target) if target else coded_runs.DRACO_TARGETS, net=net, only=run,
            on_done=lambda m: typer.echo(f"done: {m}", err=True),
        )  # fmt: skip
    typer.echo((out_dir / "draco.md").read_text(encoding="utf-8"), nl=False)
    typer.echo(f"table: {out_dir / 'draco.md'}")
