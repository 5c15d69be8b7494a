r"""Run configuration of ``nami train``: frozen, validated attrs classes read from TOML.

A configuration file has these tables (flow matching; diffusion below); every key is optional::

    [data]                     # where the data comes from
    dataset = "two_moons"      # a registered data set ...
    # file = "data.npy"        # ... or a file (.npy, .csv, .pt), rows are samples
    test_fraction = 0.1
    [data.params]              # keyword arguments of the data set
    noise = 0.05

    [model]
    process = "flow_matching"
    hidden = [256, 256, 256]
    time_features = 8
    activation = "silu"

    [solver]                   # any registered ODE solver, by registry name
    name = "rk4"
    steps = 20                 # every other key is passed to the solver

    [path]                     # optional; absent = the linear path
    name = "linear"

    [coupling]                 # optional; absent = independent pairs (flow matching)
    name = "ot"

    [time_density]             # optional; absent = t ~ U[0, 1] (flow matching)
    name = "logit_normal"

    [train]
    steps = 10000
    batch_size = 256
    lr = 1e-3

    [eval]
    num_samples = 2000

A diffusion model (``[model] process = "diffusion"``, from the nami-diffusion plugin) takes
``[schedule]`` (registry name, default ``vp``), ``[diffusion]`` (parameterisation, end time and
the options of the denoising score-matching loss, :class:`DiffusionConfig`), ``[solver]`` (an ODE
solver, an SDE solver or a diffusion sampler; default ``dpm_solver_pp`` with 20 steps) and
``[ode_solver]`` (the probability-flow ODE solver of the likelihood; default the ``[solver]`` if
it is an ODE solver, else ``dopri5``). The flow-matching tables ``[path]``, ``[coupling]`` and
``[time_density]`` and the diffusion tables do not mix: a configuration that mixes them is an error.

Unknown tables or keys raise :class:`ConfigError` naming the key and the allowed keys;
invalid values raise :class:`ConfigError` naming the table and the rule. ``Config.to_dict``
and ``Config.from_dict`` round-trip through plain Python types, which is how checkpoints
store the configuration.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from pathlib import Path
from typing import Any, Mapping, Optional

import attrs

from .errors import NamiError
from .fields import _ACTIVATIONS
from .validation import non_negative_float, non_negative_int, one_of, positive_float, positive_int

__all__ = [
    "ConfigError",
    "ComponentConfig",
    "ModelConfig",
    "DataConfig",
    "TrainConfig",
    "EvalConfig",
    "DiffusionConfig",
    "Config",
    "load_config",
    "DEFAULT_DATASET",
]

#: Data set used when neither a data set nor a file is configured.
DEFAULT_DATASET = "two_moons"
#: What a diffusion model can predict (``Diffusion(parameterization=...)`` of nami-diffusion).
PARAMETERIZATIONS = ("eps", "score", "x0", "v", "velocity")


class ConfigError(NamiError, ValueError):
    """A configuration is invalid: unknown key, wrong type or value out of range."""


# -- validators ----------------------------------------------------------------------------

def _known_process(instance: Any, attribute: Any, value: Any) -> None:
    from .train import MODEL_BUILDERS  # the dispatch table lives with the builders

    if value not in MODEL_BUILDERS:
        raise ValueError(f"{attribute.name} must be one of {sorted(MODEL_BUILDERS)}, got {value!r}")


def _name_str(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _open_fraction(instance: Any, attribute: Any, value: float) -> None:
    if not (0.0 < value < 1.0):
        raise ValueError(f"{attribute.name} must lie strictly between 0 and 1, got {value}")


def _decay(instance: Any, attribute: Any, value: float) -> None:
    if not (0.0 <= value < 1.0):
        raise ValueError(f"{attribute.name} must lie in [0, 1) (0 = off), got {value}")


def _to_int(value: Any) -> Any:
    """``int`` for integral numbers (TOML ``1e3``-style floats included); anything else unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _to_float(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _to_widths(value: Any) -> tuple[int, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"hidden must be a list of positive ints, got {value!r}")
    widths = tuple(_to_int(v) for v in value)
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"hidden must be a non-empty list of positive ints, got {list(value)}")
    return widths


def _opt_float(value: Any) -> Any:
    return None if value is None else _to_float(value)


def _opt_str(value: Any) -> Any:
    return None if value is None else str(value) if isinstance(value, Path) else value


def _plain(value: Any) -> Any:
    """Plain Python containers (lists, dicts) for storage in checkpoints and JSON."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# -- config classes ------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class ComponentConfig:
    """A component named by registry name, with keyword parameters for its factory.

    In TOML the table holds ``name`` and the parameters side by side
    (``[solver] name = "rk4"  steps = 20``).
    """

    name: str = attrs.field(validator=_name_str)
    params: dict = attrs.field(factory=dict, converter=dict, hash=False)

    def build(self, kind: str) -> Any:
        """``nami_core.registry.build(kind, name, **params)``."""
        from .registry import build

        return build(kind, self.name, **self.params)

    def to_dict(self) -> dict:
        return {"name": self.name, **_plain(self.params)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], section: str) -> "ComponentConfig":
        if "name" not in d:
            raise ConfigError(f"[{section}] needs a 'name' (the registry name of the component)")
        params = {k: v for k, v in d.items() if k != "name"}
        return _construct(cls, {"name": d["name"], "params": params}, section)


@attrs.frozen(kw_only=True)
class ModelConfig:
    """The generative model: process kind and the reference MLP field's architecture."""

    process: str = attrs.field(default="flow_matching", validator=_known_process)
    hidden: tuple[int, ...] = attrs.field(default=(256, 256, 256), converter=_to_widths)
    time_features: int = attrs.field(default=8, converter=_to_int, validator=non_negative_int)
    activation: str = attrs.field(default="silu", validator=one_of(*sorted(_ACTIVATIONS)))


@attrs.frozen(kw_only=True)
class DataConfig:
    """Where the data comes from and how it is split.

    Attributes:
        dataset: registry name of a data set (kind ``"dataset"``); used when ``file`` is unset.
        file: a ``.npy``, ``.csv`` or ``.pt`` file of shape ``(rows, features)``.
        params: keyword arguments for the data set.
        size: rows drawn from a data set that only samples (e.g. ``two_moons``).
        test_fraction: fraction of rows held out for evaluation (seeded split).
        dequantize: integer levels of discrete data (values ``0..levels-1``); uniform
            dequantisation ``(v + u) / levels`` with fresh noise every step. ``None`` = the
            data set's own ``levels`` if it has one, else none; ``0`` = off.
    """

    dataset: Optional[str] = attrs.field(default=None, validator=attrs.validators.optional(_name_str))
    file: Optional[str] = attrs.field(default=None, converter=_opt_str,
                                      validator=attrs.validators.optional(_name_str))
    params: dict = attrs.field(factory=dict, converter=dict, hash=False)
    size: int = attrs.field(default=10_000, converter=_to_int, validator=positive_int)
    test_fraction: float = attrs.field(default=0.1, converter=_to_float, validator=_open_fraction)
    dequantize: Optional[int] = attrs.field(
        default=None, converter=attrs.converters.optional(_to_int),
        validator=attrs.validators.optional(non_negative_int))

    def __attrs_post_init__(self) -> None:
        if self.dataset is not None and self.file is not None:
            raise ValueError(f"give either dataset ({self.dataset!r}) or file ({self.file!r}), not both")

    @property
    def source(self) -> str:
        """``file:<path>`` or ``dataset:<name>`` (the default data set when neither is set)."""
        if self.file is not None:
            return f"file:{self.file}"
        return f"dataset:{self.dataset or DEFAULT_DATASET}"


@attrs.frozen(kw_only=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        steps: optimiser steps (>= 1).
        batch_size: global batch size (split across ranks under DDP).
        lr: peak learning rate of Adam(W).
        weight_decay: decoupled weight decay (AdamW), 0 = off.
        schedule: ``"cosine"`` (decay to 0 after warm-up) or ``"constant"``.
        warmup: linear warm-up steps.
        ema: decay of the exponential moving average of the weights used for sampling and
            evaluation (0 = off).
        grad_clip: maximal gradient norm (0 = off).
        seed: seed of every random generator of the run (split, init, data order, noise).
        checkpoint_every: write the checkpoint every this many steps (0 = only at the end).
        log_every: refresh the progress display every this many steps.
    """

    steps: int = attrs.field(default=10_000, converter=_to_int, validator=positive_int)
    batch_size: int = attrs.field(default=256, converter=_to_int, validator=positive_int)
    lr: float = attrs.field(default=1e-3, converter=_to_float, validator=positive_float)
    weight_decay: float = attrs.field(default=0.0, converter=_to_float, validator=non_negative_float)
    schedule: str = attrs.field(default="cosine", validator=one_of("cosine", "constant"))
    warmup: int = attrs.field(default=100, converter=_to_int, validator=non_negative_int)
    ema: float = attrs.field(default=0.999, converter=_to_float, validator=_decay)
    grad_clip: float = attrs.field(default=1.0, converter=_to_float, validator=non_negative_float)
    seed: int = attrs.field(default=0, converter=_to_int, validator=non_negative_int)
    checkpoint_every: int = attrs.field(default=1000, converter=_to_int, validator=non_negative_int)
    log_every: int = attrs.field(default=50, converter=_to_int, validator=positive_int)


@attrs.frozen(kw_only=True)
class EvalConfig:
    """Evaluation after training.

    Attributes:
        num_samples: samples drawn for the sample-to-data distances and the plot.
        batch_size: rows per batch of the likelihood computation.
        max_test: evaluate the likelihood on at most this many held-out rows (0 = all).
    """

    num_samples: int = attrs.field(default=2000, converter=_to_int, validator=positive_int)
    batch_size: int = attrs.field(default=500, converter=_to_int, validator=positive_int)
    max_test: int = attrs.field(default=0, converter=_to_int, validator=non_negative_int)


def _t_end(instance: Any, attribute: Any, value: Optional[float]) -> None:
    if value is not None and not (0.0 <= value < 1.0):
        raise ValueError(f"{attribute.name} must lie in [0, 1), got {value}")


def _opt_positive(instance: Any, attribute: Any, value: Optional[float]) -> None:
    if value is not None:
        positive_float(instance, attribute, value)


@attrs.frozen(kw_only=True)
class DiffusionConfig:
    r"""The diffusion model and its training loss (``[model] process = "diffusion"``).

    The model is ``Diffusion(denoiser, schedule, solver, parameterization=..., t_end=...,
    final_step=..., sde_noise=..., ode_solver=...)`` of nami-diffusion; the loss is its
    denoising score-matching loss ``diffusion.loss(x0, weighting=..., time_sampling=..., ...)``.
    Names of weightings and time samplings are checked by the plugin (at the first step).

    Attributes:
        parameterization: what the network predicts: ``eps``, ``score``, ``x0``, ``v`` or ``velocity``.
        t_end: sampling end time and the time whose density the likelihood is (``None``: the
            schedule's default, 1e-3 for VP, 0 for VE/EDM).
        final_step: ``"none"`` or ``"denoise"`` (a last Tweedie step after an ODE/SDE solve).
        sde_noise: reverse-SDE noise scale (SDE solvers only; 0 = the probability-flow ODE).
        weighting: loss weighting: ``native`` (plain MSE of the prediction), ``eps``, ``x0``,
            ``v``, ``likelihood``, ``min_snr``, ``edm``.
        time_sampling: training-time density: ``uniform``, ``lognormal`` (EDM), ``logsnr``.
        t_min: smallest training time (``None``: 1e-5 where sigma(0) = 0, else 0).
        p_mean, p_std: the log-normal noise-level density of ``time_sampling = "lognormal"``.
        gamma: the clip of ``weighting = "min_snr"``.
        sigma_data: the data scale of ``weighting = "edm"`` (``None``: the schedule's, else 0.5).
    """

    parameterization: str = attrs.field(default="eps", validator=one_of(*PARAMETERIZATIONS))
    t_end: Optional[float] = attrs.field(default=None, converter=_opt_float, validator=_t_end)
    final_step: str = attrs.field(default="none", validator=one_of("none", "denoise"))
    sde_noise: float = attrs.field(default=1.0, converter=_to_float, validator=non_negative_float)
    weighting: str = attrs.field(default="native", validator=_name_str)
    time_sampling: str = attrs.field(default="uniform", validator=_name_str)
    t_min: Optional[float] = attrs.field(default=None, converter=_opt_float, validator=_t_end)
    p_mean: float = attrs.field(default=-1.2, converter=_to_float)
    p_std: float = attrs.field(default=1.2, converter=_to_float, validator=positive_float)
    gamma: float = attrs.field(default=5.0, converter=_to_float, validator=positive_float)
    sigma_data: Optional[float] = attrs.field(default=None, converter=_opt_float, validator=_opt_positive)

    def process_options(self) -> dict[str, Any]:
        """Keyword arguments of the ``Diffusion`` constructor."""
        return {"parameterization": self.parameterization, "t_end": self.t_end,
                "final_step": self.final_step, "sde_noise": self.sde_noise}

    def loss_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Diffusion.loss`` (the DSM loss)."""
        return {"weighting": self.weighting, "time_sampling": self.time_sampling, "t_min": self.t_min,
                "p_mean": self.p_mean, "p_std": self.p_std, "gamma": self.gamma, "sigma_data": self.sigma_data}


_SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "eval": EvalConfig}
#: Sections that are absent (``None``) unless the process uses them.
_OPTIONAL_SECTIONS: dict[str, type] = {"diffusion": DiffusionConfig}
_COMPONENTS = ("solver", "path", "coupling", "time_density", "schedule", "ode_solver")
#: Tables that belong to one process only.
_FLOW_MATCHING_ONLY = ("path", "coupling", "time_density")
_DIFFUSION_ONLY = ("schedule", "diffusion", "ode_solver")
_DEFAULT_SOLVER = ComponentConfig(name="rk4", params={"steps": 20})
_DEFAULT_DIFFUSION_SOLVER = ComponentConfig(name="dpm_solver_pp", params={"steps": 20})
_DEFAULT_SCHEDULE = ComponentConfig(name="vp")


def _is_diffusion(config: "Config") -> bool:
    return config.model.process == "diffusion"


@attrs.frozen(kw_only=True)
class Config:
    """The full configuration of a run; ``to_dict``/``from_dict`` round-trip.

    Defaults depend on ``model.process``: flow matching samples with ``rk4`` (20 steps); a
    diffusion model with ``dpm_solver_pp`` (20 steps), on the ``vp`` schedule, with the
    default :class:`DiffusionConfig`.
    """

    model: ModelConfig = attrs.field(factory=ModelConfig)
    data: DataConfig = attrs.field(factory=DataConfig)
    solver: ComponentConfig = attrs.field(default=attrs.Factory(
        lambda self: _DEFAULT_DIFFUSION_SOLVER if _is_diffusion(self) else _DEFAULT_SOLVER, takes_self=True))
    path: Optional[ComponentConfig] = None
    coupling: Optional[ComponentConfig] = None
    time_density: Optional[ComponentConfig] = None
    schedule: Optional[ComponentConfig] = attrs.field(default=attrs.Factory(
        lambda self: _DEFAULT_SCHEDULE if _is_diffusion(self) else None, takes_self=True))
    diffusion: Optional[DiffusionConfig] = attrs.field(default=attrs.Factory(
        lambda self: DiffusionConfig() if _is_diffusion(self) else None, takes_self=True))
    ode_solver: Optional[ComponentConfig] = None
    train: TrainConfig = attrs.field(factory=TrainConfig)
    eval: EvalConfig = attrs.field(factory=EvalConfig)

    def __attrs_post_init__(self) -> None:
        process = self.model.process
        if _is_diffusion(self):
            wrong = [k for k in _FLOW_MATCHING_ONLY if getattr(self, k) is not None]
            if wrong:
                raise ConfigError(
                    f"[{wrong[0]}] configures flow matching, but [model] process = 'diffusion'; "
                    f"a diffusion model takes [schedule], [diffusion], [solver] and [ode_solver] "
                    f"(its training times: [diffusion] time_sampling)"
                )
            if self.schedule is None:
                raise ConfigError("[schedule] is required for [model] process = 'diffusion' (e.g. name = \"vp\")")
        else:
            wrong = [k for k in _DIFFUSION_ONLY if getattr(self, k) is not None]
            if wrong:
                raise ConfigError(
                    f"[{wrong[0]}] configures a diffusion model, but [model] process = {process!r}; "
                    f"set process = \"diffusion\" in [model] to use it"
                )

    def to_dict(self) -> dict:
        """Plain dict (str keys; str/int/float/bool/None/list/dict values)."""
        out: dict[str, Any] = {}
        for section in _SECTIONS:
            out[section] = _plain(attrs.asdict(getattr(self, section), recurse=False))
        for section in _OPTIONAL_SECTIONS:
            value = getattr(self, section)
            out[section] = None if value is None else _plain(attrs.asdict(value, recurse=False))
        for key in _COMPONENTS:
            value = getattr(self, key)
            out[key] = None if value is None else value.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "config") -> "Config":
        """Build and validate a configuration from nested mappings (a parsed TOML file)."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{source}: a configuration must be a table/dict, got {type(d).__name__}")
        allowed = sorted(set(_SECTIONS) | set(_OPTIONAL_SECTIONS) | set(_COMPONENTS))
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key not in allowed:
                raise ConfigError(_unknown(key, allowed, f"{source}: unknown table [{key}]", "tables"))
            if value is None and key not in _SECTIONS:
                if key == "solver":
                    raise ConfigError(f"{source}: [solver] cannot be empty")
                continue  # absent: the process's default
            if key in _COMPONENTS:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{source}: [{key}] must be a table, got {value!r}")
                kwargs[key] = ComponentConfig.from_dict(value, key)
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: [{key}] must be a table, got {value!r}")
            section_cls = _SECTIONS.get(key) or _OPTIONAL_SECTIONS[key]
            names = sorted(a.name for a in attrs.fields(section_cls))
            for k in value:
                if k not in names:
                    raise ConfigError(_unknown(k, names, f"{source}: unknown key '{k}' in [{key}]", "keys"))
            kwargs[key] = _construct(section_cls, dict(value), key)
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def merged(self, overrides: Mapping[str, Mapping[str, Any]]) -> "Config":
        """A copy with ``{section: {key: value}}`` overrides applied (validated)."""
        d = self.to_dict()
        for section, values in overrides.items():
            if section in _COMPONENTS and "name" in values:
                d[section] = dict(values)  # a new component replaces the old one entirely
            else:
                base = d.get(section) or {}
                d[section] = {**base, **values}
        return Config.from_dict(d, source="overrides")


def _unknown(key: str, allowed: list[str], head: str, what: str) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{head}{hint}; allowed {what}: {', '.join(allowed)}"


def _construct(cls: type, kwargs: dict, section: str) -> Any:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid [{section}]: {exc}") from exc


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return Config.from_dict(raw, source=str(path))
