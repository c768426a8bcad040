"""No cliffs (issue 19): every aggregator's time per input element along ``d`` and along ``n``.

``python benchmarks/cliffs.py --help``; the logic lives in ``robustfl.bench.cliffs``. Run with
``OMP_NUM_THREADS=1`` on a shared machine (the clock is the process CPU time).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robustfl.bench.cliffs import Report, Settings, load, markdown, run, summary


def _sizes(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(float(v)) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated sizes like 1000,1e4, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, few repeats, no memory probe")
    p.add_argument("--rule", action="append", help="only this rule (registry name; repeatable)")
    p.add_argument("--n-fixed", type=int, help="n on the d line (default 64)")
    p.add_argument(
        "--ds", type=_sizes, help="d values of the d line, comma-separated (default 1e3,3e3,...,1e7)"
    )
    p.add_argument("--d-fixed", type=int, help="d on the n line (default 100000)")
    p.add_argument("--ns", type=_sizes, help="n values of the n line (default 16,32,64,100,127,...,1024)")
    p.add_argument(
        "--no-straddle", action="store_true", help="do not add points around the code's size switches"
    )
    p.add_argument("--max-numel", type=float, help="skip cells with more elements (default 2^28)")
    p.add_argument("--max-seconds", type=float, help="time cap per call (default 5 s)")
    p.add_argument("--min-time", type=float, help="CPU seconds per cell (default 0.3)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default 1)")
    p.add_argument("--factor", type=float, help="cliff threshold on the normalised cost (default 2)")
    p.add_argument("--no-confirm", action="store_true", help="report cliffs without measuring them again")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    p.add_argument(
        "--render",
        type=Path,
        help="measure nothing: re-annotate this JSON report (with --factor) and write it out",
    )
    p.add_argument("--json", type=Path, help="write the full report here")
    p.add_argument("--markdown", type=Path, help="write the tables and the cliff list here")
    args = p.parse_args(argv)

    if args.render:
        report = load(json.loads(args.render.read_text()), args.factor)
        print("\n".join(summary(report)))
        _write(report, args.json, args.markdown)
        return 0
    s = Settings.quick() if args.quick else Settings()
    for name, attr in (
        ("n_fixed", "n_fixed"),
        ("ds", "ds"),
        ("d_fixed", "d_fixed"),
        ("ns", "ns"),
        ("max_seconds", "max_seconds"),
        ("min_time", "min_time"),
        ("threads", "threads"),
        ("factor", "factor"),
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(s, attr, value)
    if args.max_numel is not None:
        s.max_numel = int(args.max_numel)
    if args.no_straddle:
        s.straddle = False
    if args.no_confirm:
        s.confirm = False
    if args.no_memory:
        s.memory = False
    try:
        report = run(s, only=args.rule)
    except ValueError as err:
        p.error(str(err))
    _write(report, args.json, args.markdown)
    return 0


def _write(report: Report, json_path: Path | None, markdown_path: Path | None) -> None:
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    if markdown_path:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(markdown(report))


if __name__ == "__main__":
    raise SystemExit(main())
