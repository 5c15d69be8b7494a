r"""Training, evaluation and sampling of a configured model: the engine behind ``nami``.

:class:`Trainer` owns one run: the model, its optimiser, the EMA of the weights, the data
order and the random generators. Everything random comes from explicit
:class:`torch.Generator` objects whose states go into the checkpoint, so a run is
bitwise reproducible from its seed and a resumed run continues exactly as the
uninterrupted one would.

Distributed training: under ``torchrun`` with an initialised :mod:`torch.distributed`
process group, the trainer takes ``rank``/``world_size`` from it, shards every global
batch across ranks (:class:`~nami_core.data.ShardedBatches`), draws per-rank noise from a
per-rank generator, wraps the loss in :class:`~torch.nn.parallel.DistributedDataParallel`,
and only rank 0 shows progress and writes files. Nothing here is module-level state.

The process kind of ``[model] process`` is dispatched through :data:`MODEL_BUILDERS`:
``"flow_matching"`` (the core's :class:`~nami_core.process.FlowMatching`, optionally with a
minibatch coupling and a training-time density from the registry) and ``"diffusion"`` (the
``process`` component ``"diffusion"`` of the nami-diffusion plugin, built through the registry:
the core never imports a plugin).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import torch
from torch import Tensor, nn

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, ConfigError
from .data import PreparedData, ShardedBatches, Standardizer, _derive, check_matrix, dequantize, prepare_data
from .distributions import StandardNormal
from .errors import CheckpointError, ComponentNotFoundError, DataError
from .fields import VelocityField
from .metrics import bits_per_dim, energy_distance, mmd_rbf, nll
from .process import FlowMatching

__all__ = [
    "MODEL_BUILDERS",
    "build_model",
    "build_solver",
    "DiffusionModel",
    "likelihood_note",
    "Trainer",
    "TrainedModel",
    "evaluate",
    "train",
    "METRIC_DESCRIPTIONS",
]

# Random streams of a run (see data._derive): 0 init, 1 synthetic data, 2 split, 3 test
# dequantisation, 4 data order, 5 + rank noise/time, 1000 evaluation samples.
_INIT, _ORDER, _NOISE, _EVAL = 0, 4, 5, 1000


# -- models --------------------------------------------------------------------------------

def _network(config: Config, dim: int) -> VelocityField:
    m = config.model
    return VelocityField(dim, hidden=m.hidden, time_features=m.time_features, activation=m.activation)


def _build_flow_matching(config: Config, dim: int) -> nn.Module:
    solver = config.solver.build("solver")
    path = None if config.path is None else config.path.build("path")
    return FlowMatching(_network(config, dim), StandardNormal((dim,)), solver, path=path)


_DIFFUSION_DIST = "nami-diffusion"
#: Likelihood solver of a diffusion model whose sampler is not an ODE solver: adaptive
#: Dormand-Prince (the probability-flow ODE of VP is stiff near t_end, where fixed steps fail).
_DEFAULT_LIKELIHOOD_SOLVER = ("dopri5", {"rtol": 1e-5, "atol": 1e-5})


def _plugin_component(kind: str, name: str, dist: str, what: str) -> Any:
    """``registry.get(kind, name)``; when missing, an error that names the distribution providing it."""
    from .registry import get, plugins

    try:
        return get(kind, name)
    except ComponentNotFoundError as exc:
        from .registry import normalize_distribution

        info = next((p for p in plugins() if normalize_distribution(p.distribution) == normalize_distribution(dist)),
                    None)
        if info is None:
            why = f"which is not installed (pip install {dist})"
        else:
            why = f"which is installed but {info.status} ({info.message}); run `nami plugins` for details"
        raise ComponentNotFoundError(f"{what} is provided by the plugin distribution {dist!r}, {why}. "
                                     f"Registry: {exc}") from exc


def build_solver(name: str, params: Optional[Mapping[str, Any]] = None, *, samplers: bool = False) -> Any:
    """``registry.build("solver", name, **params)``; with ``samplers``, a name that is no solver is
    looked up as a ``sampler`` (diffusion samplers such as ``dpm_solver_pp``).

    Raises:
        ComponentNotFoundError: neither kind has the name (both messages, with their suggestions).
    """
    from .registry import build

    params = dict(params or {})
    try:
        return build("solver", name, **params)
    except ComponentNotFoundError as first:
        if not samplers:
            raise
        try:
            return build("sampler", name, **params)
        except ComponentNotFoundError as second:
            raise ComponentNotFoundError(f"{first} As a diffusion sampler: {second}") from first


def _is_ode_solver(solver: Any) -> bool:
    return callable(getattr(solver, "integrate", None)) and not (
        callable(getattr(solver, "integrate_sde", None)) or callable(getattr(solver, "sample_diffusion", None)))


class DiffusionModel(nn.Module):
    r"""The diffusion model of a run: the registry's ``process`` ``"diffusion"`` (nami-diffusion)
    around an MLP denoiser, with the options of its denoising score-matching loss.

    ``model(context)`` is the bound process; ``model.loss(x, generator=g)`` the training loss;
    assigning ``model.solver`` swaps the sampling solver (the network is shared).

    Args:
        factory: the ``Diffusion`` class (``registry.get("process", "diffusion").factory``).
        network: ``network(x, t, c=None)`` predicting ``options["parameterization"]``.
        schedule, solver: the noise schedule and the sampling solver/sampler (instances).
        ode_solver: the probability-flow ODE solver of ``log_prob`` (``None``: ``solver``).
        options: further keyword arguments of ``Diffusion`` (parameterisation, end time, ...).
        loss_options: keyword arguments of ``Diffusion.loss``.
    """

    def __init__(self, factory: Callable[..., Any], network: nn.Module, *, schedule: Any, solver: Any,
                 ode_solver: Any, options: Mapping[str, Any], loss_options: Mapping[str, Any]) -> None:
        super().__init__()
        self._factory = factory
        self._ode_solver = ode_solver
        self._options = dict(options)
        self.loss_options = dict(loss_options)
        self.diffusion = factory(network, schedule, solver, ode_solver=ode_solver, **self._options)

    @property
    def solver(self) -> Any:
        return self.diffusion.solver

    @solver.setter
    def solver(self, solver: Any) -> None:
        d = self.diffusion
        ode = self._ode_solver
        if ode is None and not _is_ode_solver(solver):
            ode = d.ode_solver  # a sampler replaces an ODE solver: the likelihood keeps the old one
        device = next(d.model.parameters()).device
        self.diffusion = self._factory(d.model, d.schedule, solver, ode_solver=ode, **self._options).to(device)

    @property
    def schedule(self) -> Any:
        return self.diffusion.schedule

    def forward(self, context: Optional[Tensor] = None) -> Any:
        return self.diffusion(context)

    def loss(self, x: Tensor, c: Optional[Tensor] = None, *, generator: Optional[torch.Generator] = None) -> Tensor:
        return self.diffusion.loss(x, c, generator=generator, **self.loss_options)

    def likelihood_note(self) -> str:
        """How ``log_prob`` is computed: prior, end time, divergence, solver."""
        d = self.diffusion
        return (f"probability-flow ODE of the {type(d.schedule).__name__} schedule from t_end = {d.t_end:g} to 1, "
                f"prior N(0, {d.prior_std:g}^2 I) at t = 1, {_divergence(d.event_shape.numel())}, "
                f"solver {d.ode_solver!r}: the density of the model at t_end (samples: {d.solver!r})")


def _build_diffusion(config: Config, dim: int) -> nn.Module:
    from .config import DiffusionConfig

    factory = _plugin_component("process", "diffusion", _DIFFUSION_DIST,
                                "[model] process = 'diffusion'").factory
    if config.schedule is None:  # pragma: no cover - Config requires it for diffusion
        raise ConfigError("[schedule] is required for [model] process = 'diffusion'")
    schedule = config.schedule.build("schedule")
    solver = build_solver(config.solver.name, config.solver.params, samplers=True)
    if config.ode_solver is not None:
        ode_solver = config.ode_solver.build("solver")
        if not _is_ode_solver(ode_solver):
            raise ConfigError(f"[ode_solver] must name an ODE solver (the likelihood integrates the "
                              f"probability-flow ODE), got {config.ode_solver.name!r}")
    elif _is_ode_solver(solver):
        ode_solver = None  # the sampling solver integrates the likelihood too
    else:
        name, params = _DEFAULT_LIKELIHOOD_SOLVER
        ode_solver = build_solver(name, params)
    dc = config.diffusion or DiffusionConfig()
    return DiffusionModel(factory, _network(config, dim), schedule=schedule, solver=solver, ode_solver=ode_solver,
                          options={**dc.process_options(), "event_shape": (dim,)}, loss_options=dc.loss_options())


#: ``[model] process`` -> builder ``(config, dim) -> model``. A model is an ``nn.Module`` with
#: ``loss(x, *, generator=...)`` (scalar training loss on standardised data),
#: ``__call__(context)`` returning a process with ``sample``/``log_prob``, and a settable
#: ``solver`` (``nami sample --solver``).
MODEL_BUILDERS: Mapping[str, Callable[[Config, int], nn.Module]] = {
    "flow_matching": _build_flow_matching,
    "diffusion": _build_diffusion,
}


def build_model(config: Config, dim: int, *, seed: Optional[int] = None) -> nn.Module:
    """Build the configured model for ``dim``-dimensional data.

    With ``seed`` the weights are initialised from that seed without touching the global
    random state of the program (:func:`torch.random.fork_rng`).
    """
    builder = MODEL_BUILDERS[config.model.process]
    if seed is None:
        return builder(config, dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(config, dim)


class _Loss(nn.Module):
    """``model.loss`` as a module ``forward`` (what DistributedDataParallel wraps).

    For flow matching with a ``coupling`` or a ``time_density`` the noise is drawn here,
    the batch is paired by ``coupling.pair(x0, x1, None, generator=g)`` and the times are drawn
    from the density, all from the trainer's (checkpointed) generator ``g``.
    """

    def __init__(self, model: nn.Module, coupling: Any = None, time_density: Any = None) -> None:
        super().__init__()
        self.model = model
        self.coupling = coupling
        self.time_density = time_density

    def forward(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if self.coupling is None and self.time_density is None:
            return self.model.loss(x, generator=generator)
        lead = x.shape[:-1]
        x1 = self.model.base.sample(lead, generator=generator).to(dtype=x.dtype, device=x.device)
        if self.coupling is not None:
            x, x1 = self.coupling.pair(x, x1, None, generator=generator)
        t = None
        if self.time_density is not None:
            t = self.time_density.sample(lead, generator=generator, dtype=x.dtype, device=x.device)
        return self.model.loss(x, t=t, x_noise=x1, generator=generator)


def _objective(config: Config, model: nn.Module) -> _Loss:
    coupling = None if config.coupling is None else config.coupling.build("coupling")
    density = None if config.time_density is None else config.time_density.build("time_density")
    return _Loss(model, coupling, density)


def _dist_info() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(obj: Any, world_size: int) -> list[Any]:
    """``obj`` of every rank (a collective under DDP), in rank order."""
    if world_size == 1:
        return [obj]
    out: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(out, obj)
    return out


# -- trainer -------------------------------------------------------------------------------

class _StopRequest:
    """Set by :func:`_defer_stop_signals` when SIGINT or SIGTERM arrives."""

    signum: Optional[int] = None


@contextlib.contextmanager
def _defer_stop_signals() -> Iterator[_StopRequest]:
    """Turn SIGINT/SIGTERM into a request that the training loop honours between steps.

    An interruption in the middle of a step (after the batch was drawn, before the optimiser
    stepped) would leave a checkpoint that no uninterrupted run passes through; deferring it
    to the end of the step keeps ``--resume`` exact. A second signal stops at once. Outside
    the main thread (where handlers cannot be installed) signals are left alone.
    """
    request = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: Any) -> None:
        if request.signum is not None:
            raise KeyboardInterrupt
        request.signum = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Trainer:
    """One training run of ``config`` on ``data``.

    Args:
        config: the run configuration.
        data: the prepared split and standardisation (:func:`~nami_core.data.prepare_data`).
        device: where to train (``"cpu"``, ``"cuda"``, ...).
        rank, world_size: this process's shard; default from :mod:`torch.distributed` if
            initialised, else ``0, 1``.

    Example:
        >>> from nami_core.config import Config
        >>> from nami_core.data import prepare_data
        >>> cfg = Config.from_dict({"train": {"steps": 5, "batch_size": 16}, "model": {"hidden": [8]},
        ...                         "data": {"size": 64}, "solver": {"name": "euler", "steps": 2}})
        >>> trainer = Trainer(cfg, prepare_data(cfg.data, cfg.train.seed))
        >>> trainer.fit(progress=False)
        >>> trainer.step
        5
    """

    def __init__(
        self,
        config: Config,
        data: PreparedData,
        *,
        device: str | torch.device = "cpu",
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ) -> None:
        r0, w0 = _dist_info()
        self.rank = r0 if rank is None else rank
        self.world_size = w0 if world_size is None else world_size
        self.config = config
        self.data = data
        self.device = torch.device(device)
        tc = config.train
        seed = tc.seed

        self.model = build_model(config, data.dim, seed=_derive(seed, _INIT)).to(self.device)
        self._loss = _objective(config, self.model)
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self._loss = DistributedDataParallel(self._loss)
        self.ema: Optional[dict[str, Tensor]] = (
            {k: v.detach().clone() for k, v in self.model.state_dict().items()} if tc.ema > 0 else None
        )
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)

        st = data.standardizer
        self._mean = st.mean.to(self.device)
        self._std = st.std.to(self.device)
        dtype = next(self.model.parameters()).dtype
        self._train = data.train.to(self.device, dtype)  # float64 files train the float32 model
        if data.levels is None:  # continuous data: standardise once
            self._train = st.forward(self._train)
        self.batches = ShardedBatches(
            data.train.shape[0], tc.batch_size, torch.Generator().manual_seed(_derive(seed, _ORDER)),
            rank=self.rank, world_size=self.world_size,
        )
        self.noise = torch.Generator(device=self.device).manual_seed(_derive(seed, _NOISE + self.rank))
        self.step = 0
        self.elapsed = 0.0
        self.history: list[list[float]] = []  # [step, mean loss over the last window]

    # -- the step ----------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based): linear warm-up, then cosine or constant."""
        tc = self.config.train
        if tc.warmup and step < tc.warmup:
            return tc.lr * (step + 1) / tc.warmup
        if tc.schedule == "constant":
            return tc.lr
        span = max(1, tc.steps - tc.warmup)
        progress = min(1.0, (step - tc.warmup) / span)
        return tc.lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _batch(self, idx: Tensor) -> Tensor:
        x = self._train[idx.to(self.device)]
        if self.data.levels is not None:
            x = dequantize(x, self.data.levels, self.noise)
            x = (x - self._mean) / self._std
        return x

    def training_step(self) -> Tensor:
        """One optimiser step; returns the (detached) loss."""
        tc = self.config.train
        x = self._batch(self.batches.next())
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self._loss(x, self.noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.optimizer.step()
        self.step += 1
        if self.ema is not None:
            decay = min(tc.ema, (1.0 + self.step) / (10.0 + self.step))
            with torch.no_grad():
                for k, v in self.model.state_dict().items():
                    e = self.ema[k]
                    if e.is_floating_point():
                        e.lerp_(v, 1.0 - decay)
                    else:
                        e.copy_(v)
        return loss.detach()

    def fit(
        self,
        *,
        until: Optional[int] = None,
        progress: bool = True,
        checkpoint: Optional[str | Path] = None,
        log: Optional[Callable[[str], None]] = None,
    ) -> None:
        """Train up to ``config.train.steps`` steps (or to step ``until``, to stop early).

        Args:
            until: stop after this step (an interruption, for tests and time-boxed jobs).
            progress: show a tqdm progress bar with the loss (rank 0 only).
            checkpoint: write the checkpoint here every ``checkpoint_every`` steps, and when
                interrupted by ``KeyboardInterrupt`` (which is then re-raised).
            log: called with a line every tenth of the run when there is no progress bar.
        """
        tc = self.config.train
        end = tc.steps if until is None else min(tc.steps, until)
        if self.step >= end:
            return
        bar = None
        if progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=tc.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True,
                       mininterval=0.25, file=sys.stderr)
        every = tc.log_every
        log_lines = max(every, tc.steps // 10)
        window = torch.zeros((), device=self.device)
        count = 0
        start = time.perf_counter()
        between_steps = True
        try:
            with _defer_stop_signals() as stop:
                while self.step < end:
                    between_steps = False
                    window += self.training_step()
                    between_steps = True
                    count += 1
                    if self.step % every == 0 or self.step == end:
                        mean = float(window) / count
                        if self.step % every == 0 or self.step == tc.steps:  # same history when resumed
                            self.history.append([self.step, mean])
                            window.zero_()
                            count = 0
                        if bar is not None:
                            bar.set_postfix(loss=f"{mean:.4f}", lr=f"{self.lr_at(self.step - 1):.1e}", refresh=False)
                            bar.update(self.step - bar.n)
                        elif log is not None and self.rank == 0 and (self.step % log_lines < every or self.step == end):
                            log(f"step {self.step}/{tc.steps}  loss {mean:.4f}")
                    if checkpoint is not None and tc.checkpoint_every and self.step % tc.checkpoint_every == 0 \
                            and self.step < tc.steps:
                        self.elapsed += time.perf_counter() - start
                        start = time.perf_counter()
                        self.save(checkpoint)
                    if stop.signum is not None:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            if checkpoint is not None and between_steps:
                self.elapsed += time.perf_counter() - start
                start = time.perf_counter()
                self.save(checkpoint)
            raise
        finally:
            self.elapsed += time.perf_counter() - start
            if bar is not None:
                bar.close()

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly (plain data and tensors).

        A collective under DDP (the per-rank noise generator states are gathered)."""
        return {
            "config": self.config.to_dict(),
            "step": self.step,
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "ema": None if self.ema is None else {k: v.cpu().clone() for k, v in self.ema.items()},
            "optimizer": self.optimizer.state_dict(),
            "batches": self.batches.state_dict(),
            "rng": {"noise": _gather(self.noise.get_state(), self.world_size), "world_size": self.world_size},
            "data": self.data.meta(),
            "history": [list(h) for h in self.history],
            "elapsed": self.elapsed,
        }

    def load_state_dict(self, state: Mapping[str, Any], *, name: str = "checkpoint") -> None:
        """Restore a :meth:`state_dict` (the same configuration, data and world size)."""
        meta = state["data"]
        if meta.get("fingerprint") != self.data.fingerprint:
            raise DataError(
                f"{name}: the data differ from the data the run was trained on "
                f"({self.data.source}: fingerprint {self.data.fingerprint}, checkpoint: {meta.get('fingerprint')})"
            )
        rng = state["rng"]
        if int(rng["world_size"]) != self.world_size:
            raise CheckpointError(
                f"{name} was written by {rng['world_size']} processes; resume with the same number "
                f"(this run has {self.world_size}) to continue exactly"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.batches.load_state_dict(state["batches"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{name} does not fit this configuration: {exc}") from exc
        if self.ema is not None:
            if state.get("ema") is None:
                raise CheckpointError(f"{name} has no EMA weights but the configuration asks for them")
            self.ema = {k: v.to(self.device).clone() for k, v in state["ema"].items()}
        self.noise.set_state(rng["noise"][self.rank])
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.history = [list(h) for h in state.get("history", [])]

    def save(self, path: str | Path) -> None:
        """Write the checkpoint (rank 0 writes; under DDP every rank must call this)."""
        state = self.state_dict()
        if self.rank == 0:
            save_checkpoint(path, state)

    def trained_model(self) -> "TrainedModel":
        """The model for sampling and evaluation (EMA weights when configured)."""
        model = copy.deepcopy(self.model)
        if self.ema is not None:
            model.load_state_dict(self.ema)
        model.eval()
        return TrainedModel(model, self.data.standardizer, self.config, self.data.image_shape, self.data.levels)


# -- a trained model -----------------------------------------------------------------------

class TrainedModel:
    """A model with its data standardisation: samples and densities in data units.

    Build it from a run directory or checkpoint with :meth:`load`.
    """

    def __init__(self, model: nn.Module, standardizer: Standardizer, config: Config,
                 image_shape: Optional[tuple[int, ...]] = None, levels: Optional[int] = None) -> None:
        self.model = model
        self.standardizer = standardizer
        self.config = config
        self.image_shape = image_shape
        self.levels = levels

    @property
    def dim(self) -> int:
        return self.standardizer.dim

    @classmethod
    def load(cls, path: str | Path, *, use_ema: bool = True, solver: Any = None,
             device: str | torch.device = "cpu") -> "TrainedModel":
        """Rebuild the model of a checkpoint (``path``: the file or its run directory).

        Args:
            use_ema: take the EMA weights if the checkpoint has them.
            solver: replace the configured solver (an instance, e.g. ``build("solver", "rk4", steps=50)``).
        """
        ckpt = load_checkpoint(path)
        where = Path(path)
        try:
            config = Config.from_dict(ckpt["config"], source=f"{where} (config)")
        except ConfigError as exc:
            raise CheckpointError(f"{where}: the stored configuration is invalid: {exc}") from exc
        meta = ckpt["data"]
        try:
            standardizer = Standardizer.from_state_dict(meta)
            model = build_model(config, int(meta["dim"]))
            weights = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
            model.load_state_dict(weights)
        except (KeyError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"{where}: weights do not fit the stored configuration: {exc}") from exc
        if solver is not None:
            model.solver = solver
        model.to(device).eval()
        shape = meta.get("image_shape")
        return cls(model, standardizer, config, None if shape is None else tuple(shape), meta.get("levels"))

    def sample(self, n: int, *, generator: Optional[torch.Generator] = None, batch_size: int = 10_000,
               standardized: bool = False) -> Tensor:
        """``n`` samples ``(n, dim)`` in data units (or standardised units)."""
        if n < 1:
            raise ValueError(f"the number of samples must be >= 1, got {n}")
        process = self.model()
        parts = [process.sample((min(batch_size, n - s),), generator=generator) for s in range(0, n, batch_size)]
        z = torch.cat(parts)
        return z if standardized else self.standardizer.inverse(z)

    def nll(self, x: Tensor, *, batch_size: int = 500) -> tuple[Tensor, Tensor]:
        """Per-row NLL in nats of data ``x`` (data units): ``(standardised, data units)``."""
        p = next(self.model.parameters())
        z = self.standardizer.forward(x.to(device=p.device, dtype=p.dtype))
        nll_z = nll(self.model(), z, batch_size=batch_size)
        return nll_z, nll_z + self.standardizer.log_det


def _divergence(numel: int) -> str:
    from .divergence import default_estimator

    return f"divergence {type(default_estimator(numel)).__name__}"


def likelihood_note(model: nn.Module) -> str:
    """How the model's ``log_prob`` is computed (written to ``metrics.json`` as ``likelihood``)."""
    note = getattr(model, "likelihood_note", None)
    if callable(note):
        return str(note())
    numel = math.prod(getattr(getattr(model, "base", None), "event_shape", ()) or (0,))
    return (f"instantaneous change of variables along the flow from t = 0 (data) to t = 1, base "
            f"N(0, I) at t = 1, {_divergence(numel)}, solver {model.solver!r}")


#: What each entry of ``metrics.json`` means.
METRIC_DESCRIPTIONS = {
    "likelihood": "how log p was computed: the ODE, its prior and end time, the divergence and the solver",
    "test_nll": "mean negative log-likelihood of the held-out rows, nats per sample, of the STANDARDISED "
                "data z = (x - mean) / std (the space the model is trained in); see 'likelihood' for "
                "the ODE, prior and end time",
    "test_bpd": "test_nll / (dim * ln 2): bits per dimension of the standardised data",
    "test_nll_data": "mean negative log-likelihood in ORIGINAL data units, nats per sample: "
                     "test_nll + sum(log std)  (log p_x(x) = log p_z(z) - sum_i log std_i)",
    "test_bpd_data": "test_nll_data / (dim * ln 2): bits per dimension in original data units",
    "test_bpd_discrete": "for dequantised integer data with L levels, (test_nll_data + dim * ln L) / (dim * ln 2): "
                         "an upper bound on the bits per dimension of the discrete values",
    "energy_distance": "squared energy distance (U-statistic) between model samples and held-out rows, "
                       "in standardised units; ~0 when they have the same distribution",
    "energy_distance_train_test": "the same statistic between training rows and held-out rows: "
                                  "the floor that finite samples allow",
    "mmd_rbf": "squared MMD (unbiased), Gaussian kernel with the median-distance bandwidth, standardised units",
}


def evaluate(
    trained: TrainedModel,
    test: Tensor,
    *,
    num_samples: int = 2000,
    batch_size: int = 500,
    max_test: int = 0,
    generator: Optional[torch.Generator] = None,
    reference: Optional[Tensor] = None,
) -> dict[str, Any]:
    """Metrics of a trained model on held-out rows ``test`` (data units).

    Returns ``test_nll``/``test_bpd`` (standardised data), ``test_nll_data``/``test_bpd_data``
    (data units), ``test_bpd_discrete`` (dequantised data only), ``energy_distance`` and
    ``mmd_rbf`` (samples vs. test rows, standardised), and ``energy_distance_train_test``
    when ``reference`` (training rows, data units) is given. See :data:`METRIC_DESCRIPTIONS`.

    Raises:
        DataError: ``test`` is not a finite ``(rows, dim)`` array of the model's dimension.
    """
    test = check_matrix(test, "test data")
    dim = trained.dim
    if test.shape[1] != dim:
        raise DataError(f"test data have {test.shape[1]} features but the model was trained on {dim}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    device = next(trained.model.parameters()).device
    dtype = next(trained.model.parameters()).dtype
    test = test.to(device=device, dtype=dtype)
    rows = test
    if max_test and test.shape[0] > max_test:
        rows = test[torch.randperm(test.shape[0], generator=generator, device=generator.device)[:max_test].to(device)]
    t0 = time.perf_counter()
    nll_z, nll_x = trained.nll(rows, batch_size=batch_size)
    t_nll = time.perf_counter() - t0
    test_nll, test_nll_data = float(nll_z.mean()), float(nll_x.mean())
    t0 = time.perf_counter()
    samples_z = trained.sample(num_samples, generator=generator, standardized=True).to(dtype)
    t_sample = time.perf_counter() - t0
    z_test = trained.standardizer.forward(test)
    cap = 3000  # distances cost O(n^2): at most this many rows per side
    z_cmp = z_test[torch.randperm(z_test.shape[0], generator=generator, device=generator.device)[:cap].to(device)]
    s_cmp = samples_z[:cap]
    out: dict[str, Any] = {
        "likelihood": likelihood_note(trained.model),
        "test_nll": test_nll,
        "test_bpd": float(bits_per_dim(test_nll, dim)),
        "test_nll_data": test_nll_data,
        "test_bpd_data": float(bits_per_dim(test_nll_data, dim)),
    }
    if trained.levels:
        out["test_bpd_discrete"] = float(bits_per_dim(test_nll_data + dim * math.log(trained.levels), dim))
    out["energy_distance"] = energy_distance(s_cmp, z_cmp)
    out["mmd_rbf"] = mmd_rbf(s_cmp, z_cmp)
    if reference is not None:
        ref = trained.standardizer.forward(reference.to(device=device, dtype=dtype))
        ref = ref[torch.randperm(ref.shape[0], generator=generator, device=generator.device)[: s_cmp.shape[0]].to(device)]
        out["energy_distance_train_test"] = energy_distance(ref, z_cmp)
    out.update({
        "dim": dim,
        "n_test": int(rows.shape[0]),
        "num_samples": int(num_samples),
        "nll_seconds": round(t_nll, 3),
        "sample_seconds": round(t_sample, 3),
    })
    return out


# -- the `nami train` job ------------------------------------------------------------------

def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def train(
    config: Config,
    out_dir: str | Path,
    *,
    resume: bool = False,
    steps: Optional[int] = None,
    until: Optional[int] = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
    log: Optional[Callable[[str], None]] = None,
    plot: bool = True,
) -> Optional[dict[str, Any]]:
    """Run the main job: train, checkpoint, evaluate, plot. Returns the metrics (rank 0),
    or ``None`` when stopped early by ``until`` (or on other ranks).

    Writes ``checkpoint.pt`` (atomically, also every ``checkpoint_every`` steps),
    ``metrics.json`` and ``samples.png`` into ``out_dir``.

    Args:
        config: the run configuration (ignored with ``resume``: the checkpoint's is used).
        out_dir: run directory.
        resume: continue from ``out_dir/checkpoint.pt``.
        steps: with ``resume``, a new total number of steps (to extend a finished run).
        until: stop after this step, leaving a checkpoint (simulates an interruption).
        progress: show a progress bar.
        device: training device.
        log: receives status lines (and progress lines when there is no progress bar).
        plot: write ``samples.png``.
    """
    out = Path(out_dir)
    ckpt_path = out / "checkpoint.pt"
    state = None
    if resume:
        state = load_checkpoint(ckpt_path)
        try:
            config = Config.from_dict(state["config"], source=f"{ckpt_path} (config)")
        except ConfigError as exc:
            raise CheckpointError(f"{ckpt_path}: the stored configuration is invalid: {exc}") from exc
    if steps is not None:
        config = config.merged({"train": {"steps": steps}})
    # fail fast on unknown component names, before reading data
    build_model(config, 1, seed=0)  # (seeded: leaves the global random state alone)
    _objective(config, nn.Identity())

    data = prepare_data(config.data, config.train.seed)
    trainer = Trainer(config, data, device=device)
    if state is not None:
        trainer.load_state_dict(state, name=str(ckpt_path))
        if trainer.step > config.train.steps:
            raise ValueError(f"the checkpoint is at step {trainer.step}, beyond the requested {config.train.steps} steps")
    if trainer.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    trainer.fit(until=until, progress=progress, checkpoint=ckpt_path, log=log)
    trainer.save(ckpt_path)
    if trainer.step < config.train.steps:
        return None
    if trainer.rank != 0:
        return None

    trained = trainer.trained_model()
    ec = config.eval
    if log is not None:
        n_nll = data.test.shape[0] if not ec.max_test else min(ec.max_test, data.test.shape[0])
        log(f"evaluating: likelihood of {n_nll} held-out rows, {ec.num_samples} samples")
    gen = torch.Generator(device=trainer.device).manual_seed(_derive(config.train.seed, _EVAL))
    t0 = time.perf_counter()
    metrics = evaluate(trained, data.test, num_samples=ec.num_samples, batch_size=ec.batch_size,
                       max_test=ec.max_test, generator=gen, reference=_train_rows(data, gen))
    metrics = {
        **metrics,
        "steps": trainer.step,
        "final_loss": trainer.history[-1][1] if trainer.history else None,
        "train_seconds": round(trainer.elapsed, 2),
        "eval_seconds": round(time.perf_counter() - t0, 2),
        "n_train": int(data.train.shape[0]),
        "source": data.source,
        "solver": config.solver.to_dict(),
        "descriptions": {k: v for k, v in METRIC_DESCRIPTIONS.items() if k in metrics},
    }
    _write_json(out / "metrics.json", metrics)
    if plot:
        from .plotting import plot_samples

        samples = trained.sample(min(ec.num_samples, 2000), generator=gen).cpu()
        if "test_bpd_discrete" in metrics:
            score = f"{metrics['test_bpd_discrete']:.3f} bits/dim (discrete bound)"
        else:
            score = f"test NLL {metrics['test_nll_data']:.3f} nats ({metrics['test_bpd_data']:.3f} bits/dim)"
        what = data.source
        if config.model.process == "diffusion" and config.schedule is not None and config.diffusion is not None:
            what += f", diffusion ({config.schedule.name}, {config.diffusion.parameterization})"
        title = f"{what}: {score}, {trainer.step} steps"
        plot_samples(out / "samples.png", samples, data.test.cpu(), image_shape=data.image_shape, title=title)
    return metrics


def _train_rows(data: PreparedData, generator: torch.Generator) -> Tensor:
    """Training rows in data units (dequantised once when the data are discrete)."""
    if data.levels is None:
        return data.train
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)))
    return dequantize(data.train, data.levels, g)
