"""The ``nami`` command: train, sample, evaluate and list plugins.

::

    nami train [CONFIG.toml] [--data FILE | --dataset NAME] [--out DIR] [--steps N] [--seed S] [--resume]
    nami sample DIR --num N --out FILE [--solver NAME] [--steps K] [--plot] [--seed S]
    nami eval DIR --data FILE
    nami plugins [--json]

Expected failures (bad data, a corrupt checkpoint, an invalid configuration, an unknown
component) print ``error: <message>`` to stderr and exit with status 2; ``--debug`` shows
the traceback instead. See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["main", "build_parser", "EXIT_USAGE", "EXIT_INTERRUPTED"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks of errors")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nami``."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="nami", parents=[common],
        description="nami: flow matching and diffusion in PyTorch. Train a model on data, "
                    "sample it, evaluate it, list plugins.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", parents=[common], help="train a model (default: two moons toy data)",
                       description="Train a flow-matching model (or, with [model] process = \"diffusion\" in "
                                   "CONFIG, a diffusion model). Without CONFIG and data it trains flow matching "
                                   "on the built-in two-moons data set.")
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="run configuration (TOML)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="FILE", help="training data: .npy, .csv or .pt, rows are samples")
    src.add_argument("--dataset", metavar="NAME", help="registered data set (two_moons, digits, ...)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<data or config name>)")
    p.add_argument("--steps", type=int, metavar="N", help="training steps (overrides [train] steps)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed (overrides [train] seed)")
    p.add_argument("--resume", action="store_true", help="continue the run in DIR from its checkpoint")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--threads", type=int, metavar="T", help="CPU threads of torch (default: torch's choice)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sample", parents=[common], help="draw samples from a trained run")
    p.add_argument("run", metavar="DIR", help="run directory (or its checkpoint.pt)")
    p.add_argument("--num", type=int, required=True, metavar="N", help="number of samples")
    p.add_argument("--out", required=True, metavar="FILE", help="output file: .npy, .pt or .csv")
    p.add_argument("--solver", metavar="NAME",
                   help="solver by registry name (default: the run's); diffusion runs also take samplers")
    p.add_argument("--steps", type=int, metavar="K", help="solver steps")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--plot", action="store_true", help="also write a plot of the samples next to FILE (same name, .png)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--threads", type=int, metavar="T", help="CPU threads of torch (default: torch's choice)")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("eval", parents=[common], help="evaluate a trained run on a data file (prints JSON)")
    p.add_argument("run", metavar="DIR", help="run directory (or its checkpoint.pt)")
    p.add_argument("--data", required=True, metavar="FILE", help="data in the run's units: .npy, .csv or .pt")
    p.add_argument("--num-samples", type=int, default=2000, metavar="M", help="samples for the distances")
    p.add_argument("--solver", metavar="NAME",
                   help="solver by registry name (default: the run's); diffusion runs also take samplers "
                        "and keep their [ode_solver] for the likelihood (docs/cli.md)")
    p.add_argument("--steps", type=int, metavar="K", help="solver steps")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--threads", type=int, metavar="T", help="CPU threads of torch (default: torch's choice)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("plugins", parents=[common], help="list installed plugins and their components")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_plugins)
    return parser


# -- commands ------------------------------------------------------------------------------

def _eprint(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _default_out(args: argparse.Namespace) -> Path:
    if args.data:
        name = Path(args.data).stem
    elif args.dataset:
        name = args.dataset.replace(":", "_")
    elif args.config:
        name = Path(args.config).stem
    else:
        from .config import DEFAULT_DATASET

        name = DEFAULT_DATASET
    return Path("runs") / name


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import Config, load_config
    from .train import train

    out = Path(args.out) if args.out else _default_out(args)
    if args.resume:
        clash = [flag for flag, given in (("CONFIG", args.config), ("--data", args.data),
                                          ("--dataset", args.dataset), ("--seed", args.seed is not None)) if given]
        if clash:
            raise ValueError(f"--resume takes the configuration from {out / 'checkpoint.pt'}; "
                             f"do not combine it with {', '.join(clash)}")
        config = Config()
    else:
        if args.config:
            config = load_config(args.config)
        else:
            config = Config()
        overrides: dict[str, dict[str, Any]] = {}
        if args.data:
            overrides["data"] = {"file": str(args.data), "dataset": None}
        elif args.dataset:
            overrides["data"] = {"dataset": args.dataset, "file": None}
        if not args.config and (args.dataset or not args.data):
            overrides = _suggested(overrides, args.dataset)
        if args.steps is not None:
            overrides.setdefault("train", {})["steps"] = args.steps
        if args.seed is not None:
            overrides.setdefault("train", {})["seed"] = args.seed
        if overrides:
            config = config.merged(overrides)
        if (out / "checkpoint.pt").exists() and not args.quiet:
            _eprint(f"note: {out} holds a run; it is overwritten (use --resume to continue it)")
    started, device, rank = _init_distributed(args.device)
    try:
        quiet = args.quiet or rank != 0
        interactive = sys.stderr.isatty() and not quiet
        if not quiet:
            _eprint(f"nami train: {config.data.source} -> {out}" + (" (resuming)" if args.resume else ""))
        try:
            metrics = train(config, out, resume=args.resume, steps=args.steps if args.resume else None,
                            progress=interactive, device=device, log=None if quiet else _eprint)
            if started:  # rank 0 evaluates and writes after training: leave the group together
                import torch.distributed as dist

                dist.barrier()
        except KeyboardInterrupt:
            if rank == 0:
                _eprint(f"interrupted; checkpoint saved in {out / 'checkpoint.pt'}; "
                        f"continue with: nami train --resume --out {out}")
            return EXIT_INTERRUPTED
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()
    if metrics is not None:
        print(_summary(metrics, out))
    return 0


def _init_distributed(device: str) -> tuple[bool, str, int]:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1) join the process group: gloo on CPU, NCCL on
    CUDA with one device per local rank. Returns ``(started here, device, rank)``."""
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False, device, 0
    started = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        started = True
    if device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return started, device, dist.get_rank()


def _suggested(overrides: dict[str, dict[str, Any]], dataset: Optional[str]) -> dict[str, dict[str, Any]]:
    """Merge a data set's ``suggested_config`` (used only when no config file is given)."""
    from .config import DEFAULT_DATASET
    from .data import build_dataset

    try:
        ds_cls = type(build_dataset(dataset or DEFAULT_DATASET))
    except Exception:  # noqa: BLE001 - the real error surfaces when the data are prepared
        return overrides
    suggested = getattr(ds_cls, "suggested_config", None) or {}
    merged = {k: dict(v) for k, v in suggested.items()}
    for section, values in overrides.items():
        merged.setdefault(section, {}).update(values)
    return merged


def _summary(metrics: dict[str, Any], out: Path) -> str:
    lines = [
        f"test NLL  {metrics['test_nll']:.4f} nats/sample standardised ({metrics['test_bpd']:.4f} bits/dim); "
        f"{metrics['test_nll_data']:.4f} nats in data units ({metrics['test_bpd_data']:.4f} bits/dim)",
    ]
    if "test_bpd_discrete" in metrics:
        lines.append(f"discrete bits/dim (dequantisation bound)  {metrics['test_bpd_discrete']:.4f}")
    ref = metrics.get("energy_distance_train_test")
    lines.append(f"energy distance  {metrics['energy_distance']:.5f}"
                 + (f" (train vs test: {ref:.5f})" if ref is not None else "")
                 + f"; MMD {metrics['mmd_rbf']:.5f}")
    lines.append(f"steps {metrics['steps']} in {metrics['train_seconds']:.1f} s; wrote "
                 f"{out / 'checkpoint.pt'}, {out / 'metrics.json'}, {out / 'samples.png'}")
    return "\n".join(lines)


def _solver(args: argparse.Namespace, trained_config: Any) -> Any:
    if args.solver is None and args.steps is None:
        return None
    from .train import build_solver

    if args.solver is not None:
        name, params = args.solver, {}
    else:
        name, params = trained_config.solver.name, dict(trained_config.solver.params)
    if args.steps is not None:
        params["steps"] = args.steps
    return build_solver(name, params, samplers=trained_config.model.process == "diffusion")


def _load(args: argparse.Namespace, *, use_ema: bool = True) -> Any:
    from .checkpoint import load_checkpoint
    from .config import Config
    from .train import TrainedModel

    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    ckpt_config = Config.from_dict(load_checkpoint(args.run)["config"]) if (args.solver or args.steps) else None
    solver = _solver(args, ckpt_config)
    return TrainedModel.load(args.run, use_ema=use_ema, solver=solver, device=args.device)


def _cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from .data import SUPPORTED_SUFFIXES, save_array

    if args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    out = Path(args.out)
    if out.suffix.lower() not in SUPPORTED_SUFFIXES:
        from .errors import DataError

        raise DataError(f"{out}: unknown output type {out.suffix or '(no extension)'!r}; "
                        f"use one of {', '.join(SUPPORTED_SUFFIXES)}")
    trained = _load(args, use_ema=not args.no_ema)
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    x = trained.sample(args.num, generator=g).cpu()
    save_array(out, x)
    msg = f"wrote {x.shape[0]} samples of dimension {x.shape[1]} to {out}"
    if args.plot:
        from .plotting import plot_samples

        png = plot_samples(out.with_suffix(".png"), x, image_shape=trained.image_shape,
                           title=f"{x.shape[0]} samples from {args.run}")
        msg += f" and a plot to {png}"
    print(msg)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from .data import load_array
    from .errors import DataError
    from .train import evaluate

    trained = _load(args)
    x = load_array(args.data)
    if x.shape[1] != trained.dim:
        raise DataError(f"{args.data}: {x.shape[1]} features, but the run {args.run} was trained on "
                        f"{trained.dim}-dimensional data")
    if args.num_samples < 2:
        raise ValueError(f"--num-samples must be >= 2, got {args.num_samples}")
    g = torch.Generator(device=args.device).manual_seed(args.seed)
    metrics = evaluate(trained, x, num_samples=args.num_samples, generator=g,
                       batch_size=trained.config.eval.batch_size)
    metrics["data"] = str(args.data)
    print(json.dumps(_finite(metrics), indent=2))
    return 0


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return obj


def _cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins_report import plugins_report

    print(plugins_report(as_json=args.json))
    return 0


# -- entry point ---------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``nami`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    from .errors import NamiError

    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        threads = getattr(args, "threads", None)
        if threads is not None:
            if threads < 1:
                raise ValueError(f"--threads must be >= 1, got {threads}")
            import torch

            torch.set_num_threads(threads)  # the command owns its process; the library never does this
        return int(args.func(args) or 0)
    except (NamiError, ValueError, LookupError, OSError) as exc:
        if debug:
            raise
        _eprint(f"error: {exc}")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
