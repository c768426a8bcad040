"""Whole rounds against peers: robustfl, ByzFL's framework, Flower's simulation and a plain PyTorch loop.

    PYTHONPATH=src python benchmarks/peers.py --byzfl /path/to/byzfl \\
        --flower-python /path/to/flower-venv/bin/python --json peers.json       # the table (long)
    PYTHONPATH=src python benchmarks/peers.py --quick                           # smoke run (seconds)

The same task for everyone (issue 19): one thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``),
the embedded MNIST sample (4,000 training images) split IID over ``n`` clients by robustfl's
partitioner, the MLP 784-200-200-10 from the same initial weights, batch 32 per client (drawn with
replacement when a client holds fewer than 32 images), one local step, the coordinate-wise median of
the ``n`` uploads, server learning rate 0.05, no Byzantine clients (the attack is not what is timed),
``--rounds`` rounds after one warm-up round. Each peer runs the way its own documentation runs it:

1. **robustfl**: an experiment config (``algorithm = "sgd"``, ``aggregator = "median"``) built by
   ``robustfl.experiment.build.build_simulator`` and stepped with ``Simulator.step()``.
2. **ByzFL** (its ``fed_framework``: ``Client``, ``Server``, ``RobustAggregator``) driven like its
   README and ``byzfl.benchmark.train`` drive DSGD: each client ``compute_gradients()`` on the next
   batch of its ``DataLoader``, the server ``update_model_with_gradients`` with ByzFL's ``Median``
   and its SGD optimizer, then every client ``set_model_state`` to the new model. ByzFL's models
   are looked up by name in ``byzfl.fed_framework.models``; the MLP is registered there under a new
   name (ByzFL ships no 784-200-200-10 network). ``byzfl/__init__`` imports its benchmark package and
   torchvision; the framework needs neither, so it is imported from the source folder like the
   aggregator benchmark does (:mod:`robustfl.bench.byzfl_loader`).
3. **Flower** (``flwr.simulation.run_simulation`` with the Ray backend, one CPU for Ray and one per
   client): a ``ClientApp`` that loads the broadcast weights into a fresh model, takes one SGD step
   and replies with its weights; the ``ServerApp`` runs Flower's ``FedMedian`` (the coordinate-wise
   median of the weights: after one plain SGD step from the same weights this is the same update as
   the median of the gradients). Round times come from the strategy's ``evaluate_fn`` hook, which
   Flower calls before the first round and after each round.
4. **A plain PyTorch loop**: one model and one ``torch.optim.SGD`` per client; each round every
   client copies the global weights, takes one step and uploads its update ``w - w_i`` (``lr`` times
   its gradient); the server applies ``torch.median(dim=0)`` of the stacked updates.

Every peer runs in its own subprocess (its own interpreter: the Flower venv for Flower, this venv
with ``src`` and ByzFL's folder for ByzFL), the peers interleaved within each repetition and size so
that they see the same machine load; one cell = one (repetition, size, peer) with its own timeout.
A cell that fails, times out or cannot start is recorded and the run goes on; a cell cut by its
timeout keeps the rounds it finished (marked in the table). Reported: the median over repetitions of
rounds per second (1 / median wall seconds per round), robustfl's speed-up over each peer as the
median of the per-repetition ratios (paired), the peak RSS of each cell (the largest of the child's
own ``ru_maxrss`` and the sampled sum over its process tree: Flower's Ray workers count), the test
accuracy after the last round (the peers learn the same task), the load average at the start and end
of each cell and of the run, and every version.

Children print one line per event on stdout (``READY {json}``, ``ROUND i wall cpu``, ``DONE {json}``),
so the harness keeps what a cell measured even when it is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PEERS = ("robustfl", "byzfl", "flower", "plain")
LABELS = {
    "robustfl": "robustfl",
    "byzfl": "ByzFL's own training framework",
    "flower": "Flower simulation (Ray)",
    "plain": "a plain PyTorch loop (one model and optimizer per client)",
}
SEED = 0
LR = 0.05
BATCH = 32
HIDDEN = (200, 200)
TASK_ENV = "ROBUSTFL_PEERS_TASK"
ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------
# Arguments


@dataclass
class Settings:
    clients: list[int] = field(default_factory=lambda: [20, 100, 500, 1000])
    rounds: int = 30
    repeats: int = 1
    timeout: float = 600.0
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    byzfl: str | None = None
    flower_python: str | None = None
    json: str | None = None
    robustfl_src: str | None = None


def _positive_ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"{name}: expected comma-separated positive integers such as 20,100, got {text!r}"
        )
    return values


def parse_args(argv: list[str] | None = None) -> Settings:
    """The harness's settings; errors name the option and the fix (argparse exits with status 2)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", default="20,100,500,1000", help="client counts per round, comma-separated")
    p.add_argument("--rounds", type=int, default=30, help="timed rounds per cell (after one warm-up round)")
    p.add_argument("--repeats", type=int, default=1, help="interleaved repetitions of every cell")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per cell before it is cut")
    p.add_argument("--peers", default=",".join(PEERS), help=f"which of {','.join(PEERS)} to run")
    p.add_argument(
        "--byzfl", default=os.environ.get("ROBUSTFL_BYZFL"), help="ByzFL source folder or unpacked wheel"
    )
    p.add_argument("--flower-python", default=None, help="python of an environment with flwr[simulation]")
    p.add_argument("--json", default=None, help="write every cell and the summary here")
    p.add_argument(
        "--robustfl-src",
        default=None,
        help="the robustfl cell imports robustfl from this src folder (default: ours)",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 2 sizes, 2 rounds, short timeout")
    a = p.parse_args(argv)
    try:
        clients = _positive_ints(a.clients, "--clients")
    except argparse.ArgumentTypeError as err:
        p.error(str(err))
    for name in ("rounds", "repeats"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1, got {getattr(a, name)}")
    if not a.timeout > 0:
        p.error(f"--timeout must be positive seconds, got {a.timeout}")
    peers = [s.strip() for s in a.peers.split(",") if s.strip()]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown or not peers:
        p.error(f"--peers: unknown {', '.join(unknown) or '(none given)'}; choose from {','.join(PEERS)}")
    if a.robustfl_src and not (Path(a.robustfl_src) / "robustfl" / "__init__.py").is_file():
        p.error(f"--robustfl-src {a.robustfl_src!r}: no robustfl package there; pass a checkout's src folder")
    s = Settings(
        clients, a.rounds, a.repeats, a.timeout, peers, a.byzfl, a.flower_python, a.json, a.robustfl_src
    )
    if a.quick:
        s.clients, s.rounds, s.repeats, s.timeout = [4, 8], 2, 1, min(s.timeout, 180.0)
    return s


# ----------------------------------------------------------------------------------------------------
# The task: written once per size by the harness (with robustfl's own loader and partitioner)


def prepare_task(n: int, folder: Path) -> Path:
    """Embedded MNIST, its IID split over ``n`` clients and the initial MLP weights, exactly as
    ``build_simulator`` makes them for the robustfl cell's config, saved for the other peers."""
    import torch

    from robustfl.data import load_dataset, partition
    from robustfl.models import build_model
    from robustfl.streams import Streams

    data = load_dataset("embedded-mnist")
    streams = Streams(SEED)
    parts = partition(data.y_train, n, "iid", generator=streams.shared("partition"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(streams.seed_of("model-init"))
        model = build_model("mlp", data.input_shape, data.num_classes, hidden=list(HIDDEN))
    task = {
        "x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test, "y_test": data.y_test,
        "parts": [p.clone() for p in parts], "init": [p.detach().clone() for p in model.parameters()],
    }  # fmt: skip
    path = folder / f"task-{n}.pt"
    torch.save(task, path)
    return path


def load_task(path: str | Path) -> dict[str, Any]:
    """The task file, memory-mapped: a peer pages in only what it reads (robustfl reads ``init``
    alone and loads its own copy of the data, which must not count twice in its peak memory)."""
    import torch

    task: dict[str, Any] = torch.load(path, weights_only=True, mmap=True)
    return task


def make_mlp(init: list[Any]) -> Any:
    """The MLP 784-200-200-10 (the layout of robustfl's ``mlp``) holding the weights ``init``."""
    import torch
    from torch import nn

    widths = [784, *HIDDEN]
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], 10))
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for p, w in zip(model.parameters(), init, strict=True):
            p.copy_(w)
    return model


def client_batch(part: Any, client: int, round: int, batch: int = BATCH) -> Any:
    """Indices of one client's minibatch: ``batch`` of its samples without replacement, with
    replacement when it holds fewer (robustfl's sampler does the same)."""
    import torch

    gen = torch.Generator().manual_seed(1_000_003 * (round + 1) + client)
    m = part.numel()
    pos = (
        torch.randperm(m, generator=gen)[:batch] if m >= batch else torch.randint(m, (batch,), generator=gen)
    )
    return part[pos]


def accuracy(model: Any, task: dict[str, Any]) -> float:
    import torch

    with torch.no_grad():
        return float((model(task["x_test"]).argmax(1) == task["y_test"]).float().mean())


# ----------------------------------------------------------------------------------------------------
# Children: one peer, one size; print READY / ROUND / DONE lines


def emit(kind: str, payload: Any) -> None:
    print(kind, payload if isinstance(payload, str) else json.dumps(payload), flush=True)


def _timed_rounds(step: Any, rounds: int) -> None:
    """Round 0 is the warm-up; rounds 1..rounds are timed."""
    for r in range(rounds + 1):
        t, c = time.perf_counter(), time.process_time()
        step(r)
        emit("ROUND", f"{r} {time.perf_counter() - t:.6f} {time.process_time() - c:.6f}")


def _rss_self() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PlainLoop:
    """One model and one SGD optimizer per client; the server steps by ``torch.median(dim=0)`` of the
    stacked updates ``w - w_i`` (one local step: ``lr`` times client ``i``'s gradient)."""

    def __init__(self, task: dict[str, Any], n: int, lr: float = LR) -> None:
        import copy

        import torch

        self.task, self.n = task, n
        self.server = make_mlp(task["init"])
        self.clients = [copy.deepcopy(self.server) for _ in range(n)]
        self.optimizers = [torch.optim.SGD(c.parameters(), lr=lr) for c in self.clients]

    def round(self, r: int) -> float:
        import torch
        import torch.nn.functional as F

        x, y, parts = self.task["x_train"], self.task["y_train"], self.task["parts"]
        weights = list(self.server.parameters())
        rows, losses = [], []
        for i, (model, opt) in enumerate(zip(self.clients, self.optimizers, strict=True)):
            with torch.no_grad():
                for p, w in zip(model.parameters(), weights, strict=True):
                    p.copy_(w)
            idx = client_batch(parts[i], i, r)
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            losses.append(loss.item())
            with torch.no_grad():
                rows.append(
                    torch.cat([(w - p).reshape(-1) for p, w in zip(model.parameters(), weights, strict=True)])
                )
        update = torch.stack(rows).median(dim=0).values
        with torch.no_grad():
            offset = 0
            for w in weights:
                w.sub_(update[offset : offset + w.numel()].view_as(w))
                offset += w.numel()
        return sum(losses) / len(losses)


def cell_plain(task: dict[str, Any], n: int, rounds: int) -> dict[str, Any]:
    import torch

    emit("READY", {"torch": torch.__version__})
    loop = PlainLoop(task, n)
    _timed_rounds(loop.round, rounds)
    return {"accuracy": accuracy(loop.server, task)}


def cell_robustfl(task: dict[str, Any], n: int, rounds: int) -> dict[str, Any]:
    import torch

    import robustfl
    from robustfl.experiment.build import build_simulator
    from robustfl.experiment.config import validate

    config = validate({
        "name": "peers",
        "data": {"name": "embedded-mnist", "partition": "iid"},
        "model": {"name": "mlp", "params": {"hidden": list(HIDDEN)}},
        "training": {"algorithm": "sgd", "rounds": rounds + 1, "batch_size": BATCH, "lr": LR, "seed": SEED,
                     "threads": 1},
        "workers": {"n": n, "f": 0},
        "aggregator": {"name": "median"},
    })  # fmt: skip
    sim = build_simulator(config)
    start = [p.detach() for p in sim.model.parameters()]
    if not all(torch.equal(a, b) for a, b in zip(start, task["init"], strict=True)):
        raise RuntimeError(
            "robustfl's initial weights differ from the task file's: the peers would not share a task"
        )
    commit = _git_commit(Path(robustfl.__file__).resolve().parents[2])
    emit("READY", {"torch": torch.__version__, "robustfl": robustfl.__version__, "commit": commit})
    _timed_rounds(lambda r: sim.step(), rounds)
    return {"accuracy": float(sim.evaluate()["test_accuracy"])}


def _git_commit(tree: Path) -> str:
    """The short commit of the checkout holding robustfl's ``src``, ``+dirty`` when src has edits."""
    try:
        out = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(tree), "status", "--porcelain", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (
        out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    )


def cell_byzfl(task: dict[str, Any], n: int, rounds: int, path: str) -> dict[str, Any]:
    import importlib

    import torch
    from torch.utils.data import DataLoader, RandomSampler, Subset, TensorDataset

    from robustfl.bench.byzfl_loader import find_package, load_byzfl_aggregators
    from robustfl.bench.peers import _dist_version

    load_byzfl_aggregators(path)
    framework = importlib.import_module("byzfl.fed_framework")
    name = "robustfl_peers_mlp"
    setattr(framework.models, name, lambda: make_mlp(task["init"]))
    train = TensorDataset(task["x_train"], task["y_train"])
    train.targets = task["y_train"]  # type: ignore[attr-defined]

    def loader(part: Any) -> Any:
        subset = Subset(train, part.tolist())
        if len(subset) >= BATCH:
            return DataLoader(subset, batch_size=BATCH, shuffle=True, drop_last=True)
        return DataLoader(
            subset, batch_size=BATCH, sampler=RandomSampler(subset, replacement=True, num_samples=BATCH)
        )

    clients = [
        framework.Client({
            "model_name": name, "device": "cpu", "loss_name": "CrossEntropyLoss", "LabelFlipping": False,
            "training_dataloader": loader(task["parts"][i]), "momentum": 0.0, "nb_labels": 10,
            "store_per_client_metrics": False,
        })
        for i in range(n)
    ]  # fmt: skip
    server = framework.Server({
        "device": "cpu", "model_name": name, "test_loader": DataLoader(TensorDataset(task["x_test"], task["y_test"]), batch_size=1000),
        "optimizer_name": "SGD", "learning_rate": LR, "weight_decay": 0.0, "milestones": [10**9],
        "learning_rate_decay": 1.0, "aggregator_info": {"name": "Median", "parameters": {}}, "pre_agg_list": [],
    })  # fmt: skip
    emit("READY", {"torch": torch.__version__, "byzfl": _dist_version(find_package(path))})
    torch.manual_seed(SEED)

    def step(r: int) -> None:
        for c in clients:
            c.compute_gradients()
        server.update_model_with_gradients([c.get_flat_gradients_with_momentum() for c in clients])
        state = server.get_dict_parameters()
        for c in clients:
            c.set_model_state(state)

    _timed_rounds(step, rounds)
    return {"accuracy": float(server.compute_test_accuracy())}


_FLOWER_TASK: dict[str, Any] = {}


def flower_train(msg: Any, context: Any) -> Any:
    """Flower ``ClientApp`` train hook: one SGD step from the broadcast weights, reply with the weights."""
    import torch
    import torch.nn.functional as F
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    torch.set_num_threads(1)
    if not _FLOWER_TASK:
        _FLOWER_TASK.update(load_task(os.environ[TASK_ENV]))
    task = _FLOWER_TASK
    pid = int(context.node_config["partition-id"])
    r = int(msg.content["config"]["server-round"]) - 1
    model = make_mlp(task["init"])
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    idx = client_batch(task["parts"][pid], pid, r)
    loss = F.cross_entropy(model(task["x_train"][idx]), task["y_train"][idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    metrics = MetricRecord({"num-examples": BATCH, "loss": loss.item()})
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


def flower_apps(task: dict[str, Any], n: int, rounds: int, result: dict[str, Any]) -> tuple[Any, Any]:
    """Flower's ``ServerApp`` (``FedMedian`` over all ``n`` nodes) and ``ClientApp``."""
    from flwr.app import ArrayRecord, Context, MetricRecord
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedMedian

    client_app = ClientApp()
    client_app.train()(flower_train)
    server_app = ServerApp()

    def cpu() -> float:  # the driver (ServerApp, simulation engine) and every Ray process it started
        return time.process_time() + descendants_cpu(os.getpid())

    last = [cpu(), time.perf_counter()]

    def stamp(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        wall, used = time.perf_counter(), cpu()  # the /proc scans stay out of the wall times
        if server_round > 0:
            emit("ROUND", f"{server_round - 1} {wall - last[1]:.6f} {used - last[0]:.6f}")
        if server_round == rounds + 1:
            model = make_mlp(task["init"])
            model.load_state_dict(arrays.to_torch_state_dict())
            result["accuracy"] = accuracy(model, task)
            emit("DONE", {**result, "rss_self": _rss_self()})  # Ray's shutdown may outlast the timeout
        last[0] = cpu()
        last[1] = time.perf_counter()
        return None

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedMedian(
            fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n, min_available_nodes=n
        )
        # the ServerApp's model: the same initial weights, keyed like the clients' state dicts
        start = ArrayRecord(make_mlp(task["init"]).state_dict())
        strategy.start(grid=grid, initial_arrays=start, num_rounds=rounds + 1, evaluate_fn=stamp)

    return server_app, client_app


def cell_flower(task_path: str, n: int, rounds: int) -> dict[str, Any]:
    import logging

    import flwr
    import ray
    import torch
    from flwr.simulation import run_simulation

    # import this file as a module: Ray pickles its functions by reference, and the workers find it
    # on the PYTHONPATH Flower hands them (the driver's sys.path)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import peers as module

    os.environ[TASK_ENV] = task_path
    task = load_task(task_path)
    result: dict[str, Any] = {}
    server_app, client_app = module.flower_apps(task, n, rounds, result)
    emit("READY", {"torch": torch.__version__, "flwr": flwr.__version__, "ray": ray.__version__})
    logging.getLogger("flwr").setLevel(logging.WARNING)
    backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": {"num_cpus": 1}}
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=n, backend_config=backend)  # type: ignore[arg-type]
    if "accuracy" not in result:
        raise RuntimeError("Flower's simulation ended before the last round (see its log above)")
    return result


def child(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cell", choices=PEERS, required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--byzfl", default=None)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if a.cell == "flower":
        out = cell_flower(a.task, a.n, a.rounds)
    else:
        task = load_task(a.task)
        if a.cell == "plain":
            out = cell_plain(task, a.n, a.rounds)
        elif a.cell == "robustfl":
            out = cell_robustfl(task, a.n, a.rounds)
        else:
            out = cell_byzfl(task, a.n, a.rounds, a.byzfl)
    emit("DONE", {**out, "rss_self": _rss_self()})


# ----------------------------------------------------------------------------------------------------
# The harness


@dataclass
class Cell:
    peer: str
    n: int
    repeat: int
    status: str = "ok"  # ok | timeout | failed | did not start
    note: str = ""
    warmup: float | None = None
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    rss_self: int | None = None
    rss_tree: int | None = None
    accuracy: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    load_start: list[float] = field(default_factory=list)
    load_end: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rounds_per_s(self) -> float | None:
        """1 / median wall seconds per round: what a user waits for."""
        return 1.0 / statistics.median(self.walls) if self.walls else None

    @property
    def cpu_rounds_per_s(self) -> float | None:
        """1 / median CPU seconds per round of the peer's processes: the work, whatever the load."""
        return 1.0 / statistics.median(self.cpus) if self.cpus and statistics.median(self.cpus) > 0 else None

    @property
    def rss(self) -> int | None:
        known = [v for v in (self.rss_self, self.rss_tree) if v is not None]
        return max(known) if known else None


def parse_line(cell: Cell, line: str) -> None:
    """Fold one line of a child's stdout into its cell (other lines are the peer's own output)."""
    kind, _, rest = line.strip().partition(" ")
    if kind == "READY":
        cell.versions.update({k: str(v) for k, v in json.loads(rest).items()})
    elif kind == "ROUND":
        r, wall, cpu = rest.split()
        if int(r) == 0:
            cell.warmup = float(wall)
        else:
            cell.walls.append(float(wall))
            cell.cpus.append(float(cpu))
    elif kind == "DONE":
        done = json.loads(rest)
        cell.accuracy, cell.rss_self = done.get("accuracy"), done.get("rss_self")


def _proc_table() -> dict[int, tuple[int, int, str, int]]:
    """pid -> (parent pid, resident bytes, start time, CPU clock ticks) for every process we can read."""
    page = os.sysconf("SC_PAGE_SIZE")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (
            int(fields[1]),
            int(fields[21]) * page,
            fields[19],
            int(fields[11]) + int(fields[12]),
        )
    return table


def descendants_cpu(root: int) -> float:
    """CPU seconds (user + system) of the live descendants of ``root`` (Flower's Ray processes)."""
    table = _proc_table()
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, (ppid, *_) in table.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(table[p][3] for p in tree - {root}) / os.sysconf("SC_CLK_TCK")


class Tree:
    """The processes a child starts (including daemons that leave its process group), sampled."""

    def __init__(self, root: int) -> None:
        self.root, self.seen, self.peak = root, {root: ""}, 0

    def sample(self) -> None:
        table = _proc_table()
        if not table:
            return
        alive = {
            pid
            for pid in self.seen
            if pid in table and (not self.seen[pid] or table[pid][2] == self.seen[pid])
        }
        grew = True
        while grew:
            grew = False
            for pid, (ppid, _, start, _) in table.items():
                if ppid in alive and pid not in alive:
                    alive.add(pid)
                    self.seen[pid] = start
                    grew = True
        self.peak = max(self.peak, sum(table[p][1] for p in alive if p in table))

    def kill(self) -> None:
        """SIGKILL to what is left of the tree (by pid, checking each pid's start time)."""
        table = _proc_table()
        for pid, start in self.seen.items():
            if pid in table and (not start or table[pid][2] == start):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def run_cell(
    cell: Cell, cmd: list[str], env: dict[str, str], timeout: float, log: Path, rounds: int = 0
) -> Cell:
    """Run one child, stream its lines into ``cell``, sample its process tree, enforce the timeout.
    A child that reported all ``rounds`` timed rounds and its accuracy before the timeout is complete
    (only its shutdown was cut)."""
    cell.load_start = list(os.getloadavg())
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=ROOT, start_new_session=True
        )
        tree = Tree(proc.pid)
        tail: list[str] = []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    parse_line(cell, line)
                except (ValueError, json.JSONDecodeError):
                    tail.append(line.rstrip())
                    del tail[:-5]

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        timed_out = False
        while proc.poll() is None:
            tree.sample()
            if time.perf_counter() - t0 > timeout:
                timed_out = True
                break
            time.sleep(0.25)
        tree.kill()
        proc.wait()
        reader.join(timeout=10)
    cell.seconds = time.perf_counter() - t0
    cell.rss_tree = tree.peak or None
    cell.load_end = list(os.getloadavg())
    if timed_out and rounds and len(cell.walls) >= rounds and cell.accuracy is not None:
        cell.note = f"all rounds done; its shutdown was cut at {timeout:.0f} s"
    elif timed_out:
        cell.status, cell.note = "timeout", f"{len(cell.walls)} of the timed rounds within {timeout:.0f} s"
    elif proc.returncode != 0 or cell.accuracy is None:
        why = _last_error(log) or (tail[-1] if tail else f"exit status {proc.returncode}")
        cell.status = "did not start" if cell.warmup is None and cell.peer == "flower" else "failed"
        cell.note = why
    return cell


def _last_error(log: Path) -> str:
    """The last line of a child's stderr that looks like an error, shortened to one line."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "error" in ln or "Exception" in ln:
            return ln[:200]
    return lines[-1][:200] if lines else ""


def command(peer: str, s: Settings, task: Path, n: int) -> tuple[list[str], dict[str, str]] | str:
    """The child's command line and environment, or why the peer cannot run here."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    python = sys.executable
    if peer in ("robustfl", "byzfl"):
        env["PYTHONPATH"] = str(ROOT / "src")
    if peer == "robustfl" and s.robustfl_src:
        env["PYTHONPATH"] = str(Path(s.robustfl_src).resolve())
    if peer == "byzfl" and not s.byzfl:
        return "no ByzFL folder (--byzfl or $ROBUSTFL_BYZFL)"
    if peer == "flower":
        if not s.flower_python:
            return "no Flower environment (--flower-python)"
        python = s.flower_python
        env["RAY_DISABLE_USAGE_STATS"], env["FLWR_TELEMETRY_ENABLED"] = "1", "0"
    cmd = [
        python,
        str(Path(__file__).resolve()),
        "--cell",
        peer,
        "--task",
        str(task),
        "--n",
        str(n),
        "--rounds",
        str(s.rounds),
    ]
    if peer == "byzfl":
        cmd += ["--byzfl", str(s.byzfl)]
    return cmd, env


def run(s: Settings, folder: Path) -> list[Cell]:
    tasks = {n: prepare_task(n, folder) for n in s.clients}
    cells = []
    for rep in range(s.repeats):
        for n in s.clients:
            order = s.peers[rep % len(s.peers) :] + s.peers[: rep % len(s.peers)]
            for peer in order:
                cell = Cell(peer, n, rep)
                made = command(peer, s, tasks[n], n)
                if isinstance(made, str):
                    cell.status, cell.note = ("did not start" if peer == "flower" else "failed"), made
                else:
                    run_cell(cell, *made, s.timeout, folder / f"{peer}-{n}-{rep}.log", s.rounds)
                cells.append(cell)
                print(f"  {describe(cell)}", file=sys.stderr, flush=True)
    return cells


def describe(cell: Cell) -> str:
    rps = cell.rounds_per_s
    cpu = cell.cpu_rounds_per_s
    speed = (
        f"{rps:.3g} rounds/s (CPU {cpu or 0:.3g}) over {len(cell.walls)} rounds" if rps else "no timed round"
    )
    rss = f", peak RSS {cell.rss / 2**30:.2f} GiB" if cell.rss else ""
    acc = f", test accuracy {cell.accuracy:.3f}" if cell.accuracy is not None else ""
    note = f" ({cell.note})" if cell.note else ""
    return f"rep {cell.repeat} n={cell.n} {cell.peer}: {cell.status}{note}: {speed}{rss}{acc}"


# ----------------------------------------------------------------------------------------------------
# Summary and table


def fmt(x: float) -> str:
    """Three significant digits, no exponent: 22.1, 6.83, 0.372, 0.0415."""
    if x >= 100:
        return f"{x:.0f}"
    digits = max(0, 2 - int(f"{x:e}".split("e")[1]))
    return f"{x:.{digits}f}"


def _speeds(
    runs: list[Cell], mine: dict[tuple[str, int], Cell], peer: str, attr: str
) -> tuple[float | None, float | None]:
    """Median over repetitions of ``attr`` (rounds/s) and of robustfl's per-repetition ratio (paired)."""
    speeds = [getattr(c, attr) for c in runs if getattr(c, attr)]
    ratios = []
    for c in runs:
        ours = mine.get(("robustfl", c.repeat))
        if peer != "robustfl" and ours and getattr(ours, attr) and getattr(c, attr):
            ratios.append(getattr(ours, attr) / getattr(c, attr))
    return (statistics.median(speeds) if speeds else None), (statistics.median(ratios) if ratios else None)


def summarise(cells: list[Cell]) -> dict[int, dict[str, dict[str, Any]]]:
    """Per size and peer: median rounds/s over repetitions (wall and CPU), robustfl's paired median
    speed-up over the peer, peak RSS, test accuracy, statuses."""
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for n in sorted({c.n for c in cells}):
        mine = {(c.peer, c.repeat): c for c in cells if c.n == n}
        out[n] = {}
        for peer in dict.fromkeys(c.peer for c in cells):
            runs = [c for (p, _), c in mine.items() if p == peer]
            wall, wall_x = _speeds(runs, mine, peer, "rounds_per_s")
            cpu, cpu_x = _speeds(runs, mine, peer, "cpu_rounds_per_s")
            rss = [c.rss for c in runs if c.rss]
            acc = [c.accuracy for c in runs if c.accuracy is not None]
            out[n][peer] = {
                "rounds_per_s": wall, "speedup": wall_x, "cpu_rounds_per_s": cpu, "cpu_speedup": cpu_x,
                "rss": max(rss) if rss else None, "accuracy": statistics.median(acc) if acc else None,
                "statuses": sorted({c.status for c in runs}), "notes": sorted({c.note for c in runs if c.note}),
                "partial": any(c.status == "timeout" for c in runs),
            }  # fmt: skip
    return out


def entry(peer: str, row: dict[str, Any], kind: str = "") -> str:
    """One cell of a speed table (``kind`` "" for wall, "cpu_" for CPU): ``6.83 (robustfl 3.3x)``, a
    star for a cell cut by its timeout, or why there is no number."""
    rps = row[f"{kind}rounds_per_s"]
    if not row["statuses"]:
        return "–"  # not run at this size
    if rps is None:
        status = ([s for s in row["statuses"] if s != "ok"] or ["no timed round"])[0]
        return f"– ({status}: {row['notes'][0]})" if row["notes"] else f"– ({status})"
    text = fmt(rps) + ("*" if row["partial"] else "")
    if peer != "robustfl" and row[f"{kind}speedup"] is not None:
        text += f" (robustfl {fmt(row[f'{kind}speedup'])}x)"
    return text


def format_table(summary: dict[int, dict[str, dict[str, Any]]], peers: list[str]) -> str:
    """Rounds/s by wall time and by CPU time (robustfl's paired speed-up over each peer in
    parentheses), then peak RSS and test accuracy."""
    head = "| clients | " + " | ".join(LABELS[p] for p in peers) + " |"
    rule = "|---:|" + "---:|" * len(peers)
    lines = []
    for kind, title in (("", "rounds/s, wall time"), ("cpu_", "rounds/s, CPU time of the peer's processes")):
        lines += [f"{title}:", "", head, rule]
        for n, row in summary.items():
            lines.append(
                f"| {n} | " + " | ".join(entry(p, row[p], kind) if p in row else "–" for p in peers) + " |"
            )
        lines.append("")
    lines += ["peak RSS (GiB), test accuracy after the last round:", "", head, rule]
    for n, row in summary.items():
        cols = []
        for p in peers:
            r = row.get(p, {})
            rss = f"{r['rss'] / 2**30:.2f}" if r.get("rss") else "–"
            acc = f"{r['accuracy']:.3f}" if r.get("accuracy") is not None else "–"
            cols.append(f"{rss}, {acc}")
        lines.append(f"| {n} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def versions(cells: list[Cell]) -> dict[str, str]:
    seen: dict[str, str] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    for c in cells:
        for k, v in c.versions.items():
            key = k if k != "torch" else f"torch ({c.peer})"
            seen.setdefault(key, v)
    return seen


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    load_start = list(os.getloadavg())
    t0 = time.time()
    print(
        f"peers: clients {s.clients}, {s.rounds} rounds, {s.repeats} repeats, timeout {s.timeout:.0f} s per cell; load {load_start}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="robustfl-peers-") as tmp:
        cells = run(s, Path(tmp))
        logs = {
            p.name: p.read_text(errors="replace")[-2000:]
            for p in Path(tmp).glob("*.log")
            if any(c.status != "ok" and p.name == f"{c.peer}-{c.n}-{c.repeat}.log" for c in cells)
        }
    load_end = list(os.getloadavg())
    summary = summarise(cells)
    table = format_table(summary, s.peers)
    vers = versions(cells)
    print(table)
    print(f"\nversions: {', '.join(f'{k} {v}' for k, v in vers.items())}")
    print(f"load average (1, 5, 15 min): start {load_start}, end {load_end}; {time.time() - t0:.0f} s")
    if any(c.status == "timeout" for c in cells):
        print("* cut by the per-cell timeout: rounds/s over the rounds it finished")
    if s.json:
        report = {
            "settings": asdict(s), "versions": vers, "load_start": load_start, "load_end": load_end,
            "seconds": time.time() - t0, "cells": [{**asdict(c), "rounds_per_s": c.rounds_per_s, "cpu_rounds_per_s": c.cpu_rounds_per_s} for c in cells],
            "summary": {str(n): v for n, v in summary.items()}, "table": table, "failed_logs": logs,
        }  # fmt: skip
        Path(s.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    if "--cell" in sys.argv[1:]:
        child(sys.argv[1:])
    else:
        sys.exit(main())
