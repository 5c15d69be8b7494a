"""The component registry: plugin discovery and lookup of components by kind and name.

Plugins are distributions with an entry point in the group ``nami`` whose target holds a
``nami_register(register)`` hook implementation (:mod:`nami_core.hookspecs`). Discovery is
lazy (the first :meth:`Registry.get`, :meth:`~Registry.build`, :meth:`~Registry.components`,
:meth:`~Registry.plugins` or :meth:`~Registry.resolve_class`, never at import) and isolated:
a plugin that fails to import, whose hook raises, or that registers a component lacking its
kind's protocol methods is skipped as a whole, reported by one :class:`NamiPluginWarning`
and by :meth:`Registry.plugins`, and any later use of its components raises an error that
names it and chains the original exception.

Environment variables (read when a :class:`Registry` is created; the default registry is
created on first use):

- ``NAMI_DISABLE_PLUGIN_AUTOLOAD=1``: load no plugin, except those named in the allow list.
- ``NAMI_PLUGINS_ALLOW=a,b``: load only these distributions.
- ``NAMI_PLUGINS_BLOCK=a,b``: never load these distributions (not even imported).
- ``NAMI_STRICT_PLUGINS=1``: a plugin failure raises :class:`PluginLoadError`.

Names are lower case ``[a-z][a-z0-9_]*`` (``"RK-4"`` is read as ``"rk_4"``); distribution
names compare case-insensitively with ``-``, ``_`` and ``.`` equivalent.

Example:
    >>> reg = Registry(autoload=False)
    >>> class Euler:
    ...     def __init__(self, steps: int = 10):
    ...         self.steps = steps
    ...     def integrate(self, fn, y0, t0, t1, *, time_shape=(), trajectory=False): ...
    >>> _ = reg.register("solver", "my_euler", Euler)
    >>> reg.get("solver", "local:my_euler").qualified_name
    'local:my_euler'
    >>> reg.build("solver", "my_euler", steps=4).steps
    4
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
import re
import sys
import threading
import traceback
import typing
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import attrs
import importlib_metadata
import pluggy

from nami_core.errors import (
    AmbiguousComponentError,
    BuildError,
    ComponentAttributeError,
    ComponentNotFoundError,
    InvalidComponentError,
    NamiError,
    NamiPluginWarning,
    PluginLoadError,
    RegistrationError,
)
from nami_core.hookspecs import PROJECT, NamiHookSpecs
from nami_core.protocols import KIND_REQUIREMENTS, missing_methods

__all__ = [
    "LOCAL",
    "ENV_DISABLE_AUTOLOAD",
    "ENV_ALLOW",
    "ENV_BLOCK",
    "ENV_STRICT",
    "FIRST_PARTY_NAMES",
    "ComponentInfo",
    "PluginInfo",
    "Registry",
    "default_registry",
    "normalize_name",
    "normalize_distribution",
    "register",
    "unregister",
    "get",
    "build",
    "components",
    "kinds",
    "plugins",
    "registered",
    "resolve",
    "resolve_class",
]

#: Source name of components registered in-process (``"local:<name>"``).
LOCAL = "local"
ENV_DISABLE_AUTOLOAD = "NAMI_DISABLE_PLUGIN_AUTOLOAD"
ENV_ALLOW = "NAMI_PLUGINS_ALLOW"
ENV_BLOCK = "NAMI_PLUGINS_BLOCK"
ENV_STRICT = "NAMI_STRICT_PLUGINS"

_PATHS, _SOLVERS, _DIFFUSION = "nami-paths", "nami-solvers", "nami-diffusion"
#: ``nami.<Name>`` attributes provided by first-party plugins, for "pip install ..." hints.
FIRST_PARTY_NAMES: dict[str, str] = {
    **dict.fromkeys(
        ["LinearPath", "CosinePath", "ZeroGamma", "BrownianGamma", "ScaledBrownianGamma",
         "BrownianBridgePath", "stochastic_fm_loss", "masked_fm_loss", "masked_sample",
         "stochastic_interpolant", "bridge_loss", "bridge_sample", "IndependentCoupling",
         "OTCoupling", "SinkhornCoupling", "ClassConditionalCoupling", "UniformTime",
         "LogitNormalTime", "ModeTime", "Checkerboard", "GaussianRing", "TwoSpirals",
         "GaussianMixture"],
        _PATHS,
    ),
    **dict.fromkeys(
        ["Euler", "Midpoint", "Heun", "RK4", "ExplicitRK", "Dopri5", "EulerMaruyama",
         "StochasticHeun"],
        _SOLVERS,
    ),
    **dict.fromkeys(
        ["Diffusion", "VPSchedule", "VESchedule", "EDMSchedule", "DPMSolverPP",
         "ScoreFromNoise", "DriftFromVelocityScore", "MirrorVelocityFromScore",
         "ConvertPrediction", "DDIM", "EDMHeun", "EDMPrecond", "ForwardDiffusionSDE",
         "ReverseDiffusionSDE", "TorchSDESolver", "TorchSDEEuler", "TorchSDEMilstein",
         "TorchSDESRK", "TorchSDEReversibleHeun", "dsm_loss"],
        _DIFFUSION,
    ),
}

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_TRUE = {"1", "true", "yes", "on"}
Names = Union[str, Iterable[str], None]


# --------------------------------------------------------------------------- names


def _canon(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def normalize_name(name: str, *, what: str = "name") -> str:
    """Canonical component name or kind: lower case, ``-`` read as ``_``.

    Raises:
        RegistrationError: if ``name`` is not a string matching ``[a-z][a-z0-9_]*`` once
            normalised.
    """
    if not isinstance(name, str):
        raise RegistrationError(f"{what} must be a str, got {type(name).__name__} {name!r}")
    canon = _canon(name)
    if not _NAME_RE.match(canon):
        raise RegistrationError(
            f"{what} must match [a-z][a-z0-9_]* (after lower-casing and '-' -> '_'), got {name!r}"
        )
    return canon


def normalize_distribution(name: str) -> str:
    """Canonical distribution name: lower case, runs of ``-``, ``_``, ``.`` read as ``-``."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _name_set(value: Names) -> Optional[frozenset[str]]:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(normalize_distribution(v) for v in items if v.strip())


def _env_names(var: str) -> Optional[frozenset[str]]:
    return _name_set(os.environ.get(var) or None)


def _env_flag(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in _TRUE


def _describe(factory: Any) -> str:
    return getattr(factory, "__qualname__", None) or type(factory).__name__


def _protocol_target(factory: Any) -> Any:
    """What to check against a kind's protocol: a class, or what a factory function returns."""
    while isinstance(factory, functools.partial):
        factory = factory.func
    if inspect.isroutine(factory):
        try:
            returned = typing.get_type_hints(factory).get("return")
        except Exception:  # unresolvable annotations: check the function itself
            returned = None
        if inspect.isclass(returned):
            return returned
    return factory


# --------------------------------------------------------------------------- records


@attrs.frozen
class ComponentInfo:
    """A registered component.

    Attributes:
        kind: component kind (``"solver"``, ``"path"``, ...).
        name: canonical registry name (``"rk4"``).
        qualified_name: ``"<distribution>:<name>"`` (``"local:<name>"`` if in-process).
        factory: the class or callable that :meth:`Registry.build` calls.
        distribution: the distribution that registered it, or ``"local"``.
        aliases: further names the component answers to.
    """

    kind: str
    name: str
    qualified_name: str
    factory: Any
    distribution: str
    aliases: tuple[str, ...] = ()


@attrs.define
class PluginInfo:
    """What discovery found out about one plugin distribution.

    Attributes:
        distribution: distribution name as its metadata spells it.
        version: its version, or ``None`` if unknown.
        status: ``"ok"``, ``"failed"``, ``"blocked"`` or ``"disabled"``.
        error: the exception that made it fail, else ``None``.
        entry_point: its entry point(s), ``"name = module"``, comma separated.
        components: ``(kind, name)`` of each component it registered.
        hooks: names of the hooks it implements.
        message: one line on its status (the error, or why it was not loaded).
        traceback: the formatted traceback of ``error``.
    """

    distribution: str
    version: Optional[str]
    status: str
    error: Optional[BaseException] = None
    entry_point: str = ""
    components: list[tuple[str, str]] = attrs.Factory(list)
    hooks: list[str] = attrs.Factory(list)
    message: str = ""
    traceback: Optional[str] = None

    @property
    def key(self) -> str:
        """The normalised distribution name."""
        return normalize_distribution(self.distribution)


def _fail(info: PluginInfo, exc: BaseException) -> None:
    info.status, info.error, info.components, info.hooks = "failed", exc, [], []
    info.message = f"{type(exc).__name__}: {exc}"
    info.traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _external_stacklevel() -> int:
    """``stacklevel`` for a warning issued by the caller, pointing at the first frame outside nami."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in ("nami", "nami_core"):
        frame, level = frame.f_back, level + 1
    return level


# --------------------------------------------------------------------------- registry


class Registry:
    """Components by kind and name, from installed plugins and in-process registration.

    Args:
        group: entry-point group to discover plugins in.
        autoload: load installed plugins on first access; ``None`` reads
            ``NAMI_DISABLE_PLUGIN_AUTOLOAD``. When ``False``, only distributions in
            ``allow`` are loaded.
        allow: distribution names (iterable or comma-separated string) to load exclusively;
            ``None`` reads ``NAMI_PLUGINS_ALLOW`` (unset: all).
        block: distribution names never to load (not even imported); ``None`` reads
            ``NAMI_PLUGINS_BLOCK``.
        strict: raise :class:`PluginLoadError` for the first plugin failure instead of
            warning; ``None`` reads ``NAMI_STRICT_PLUGINS``.
        path: directories to discover distributions in instead of ``sys.path`` (the plugin
            modules themselves are still imported from ``sys.path``).
        builtins: register nami-core's built-in components (data sets) on load.
    """

    def __init__(
        self,
        *,
        group: str = PROJECT,
        autoload: Optional[bool] = None,
        allow: Names = None,
        block: Names = None,
        strict: Optional[bool] = None,
        path: Optional[Sequence[Union[str, os.PathLike]]] = None,
        builtins: bool = True,
    ) -> None:
        self.group = group
        self.builtins = bool(builtins)
        self.autoload = (not _env_flag(ENV_DISABLE_AUTOLOAD)) if autoload is None else bool(autoload)
        self.allow = _env_names(ENV_ALLOW) if allow is None else _name_set(allow)
        self.block = (_env_names(ENV_BLOCK) if block is None else _name_set(block)) or frozenset()
        self.strict = _env_flag(ENV_STRICT) if strict is None else bool(strict)
        self._path = None if path is None else [os.fspath(p) for p in path]
        self._lock = threading.RLock()
        self._loaded = self._loading = False
        self._entries: dict[tuple[str, str, str], ComponentInfo] = {}  # (kind, source key, name)
        self._index: dict[tuple[str, str], list[ComponentInfo]] = {}  # (kind, name or alias)
        self._plugins: dict[str, PluginInfo] = {}  # by normalised distribution
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(NamiHookSpecs)

    def __repr__(self) -> str:
        state = "loaded" if self._loaded else "not loaded"
        return f"<Registry group={self.group!r} {state}, {len(self._entries)} components>"

    # ----------------------------------------------------------------- registration

    def register(
        self,
        kind: str,
        name: str,
        factory: Any = None,
        *,
        aliases: Sequence[str] = (),
        source: str = LOCAL,
    ) -> Any:
        """Register ``factory`` as component ``name`` of ``kind``.

        Used as a decorator when ``factory`` is omitted::

            @registry.register("solver", "my_euler")
            class MyEuler: ...

        Args:
            kind: component kind; a kind listed in :data:`nami_core.protocols.KIND_REQUIREMENTS`
                is checked against its protocol.
            name: registry name; also reachable as ``"<source>:<name>"``.
            factory: class or callable building the component (``build`` calls it).
            aliases: further names for the same component.
            source: who registers it (``"local"`` for in-process code).

        Returns:
            ``factory`` (or the decorator).

        Raises:
            RegistrationError: malformed kind/name, or the name is already taken by
                another factory from the same source.
            InvalidComponentError: ``factory`` lacks a method its kind requires.
        """
        if factory is None:
            return lambda f: self.register(kind, name, f, aliases=aliases, source=source)
        component = self._make_component(kind, name, factory, aliases, source)
        with self._lock:
            self._check_free(component, self._entries.values())
            self._add(component)
        return factory

    def unregister(self, kind: str, name: str, *, source: Optional[str] = None) -> None:
        """Remove a component (by name or ``"source:name"``), with its aliases.

        Raises:
            ComponentNotFoundError: nothing of that kind and name is registered.
            AmbiguousComponentError: several sources register it and none was given.
        """
        if ":" in name:
            source, _, name = name.partition(":")
        if source is None or normalize_distribution(source) != LOCAL:
            self.load()
        kind_c, name_c = _canon(kind), _canon(name)
        with self._lock:
            found = [
                c for c in self._entries.values()
                if c.kind == kind_c and c.name == name_c
                and (source is None or normalize_distribution(c.distribution) == normalize_distribution(source))
            ]
            if not found:
                where = f" by {source!r}" if source is not None else ""
                raise ComponentNotFoundError(f"cannot unregister {kind} {name!r}: it is not registered{where}")
            if len(found) > 1:
                raise AmbiguousComponentError(
                    f"cannot unregister {kind} {name!r}: registered by several sources "
                    f"({', '.join(c.qualified_name for c in found)}); pass source= or a qualified name"
                )
            self._remove(found[0])

    @contextmanager
    def registered(
        self, kind: str, name: str, factory: Any, *, aliases: Sequence[str] = (), source: str = LOCAL
    ) -> Iterator[ComponentInfo]:
        """Register a component for the duration of a ``with`` block (handy in tests).

        Yields:
            The :class:`ComponentInfo` of the registered component.
        """
        key = (normalize_name(kind, what="kind"), normalize_distribution(source), normalize_name(name))
        existed = key in self._entries
        self.register(kind, name, factory, aliases=aliases, source=source)
        try:
            yield self._entries[key]
        finally:
            with self._lock:
                if not existed and key in self._entries:
                    self._remove(self._entries[key])

    def add_plugin(self, plugin: Any, *, name: str, version: Optional[str] = None) -> PluginInfo:
        """Load an in-process plugin object (a module or object with ``nami_register``).

        It is treated like an installed distribution called ``name``: its components are
        reachable as ``"<name>:<component>"``, and registration is all-or-nothing.

        Raises:
            PluginLoadError: its hook raised or it registered something invalid (nothing is
                kept), or a plugin of that name is already loaded.
        """
        self.load()
        info = PluginInfo(distribution=name, version=version, status="ok", entry_point=f"<in-process {plugin!r}>")
        with self._lock:
            if info.key in self._plugins:
                raise PluginLoadError(f"a plugin named {name!r} is already loaded")
            self._load_distribution(info, [(name, lambda: plugin)])
            if info.status == "failed":
                raise PluginLoadError(f"plugin {name!r} failed to load: {info.message}") from info.error
            self._plugins[info.key] = info
        return info

    # ----------------------------------------------------------------------- lookup

    def get(self, kind: str, name: str) -> ComponentInfo:
        """The component of ``kind`` called ``name`` (bare, alias, or ``"distribution:name"``).

        Raises:
            ComponentNotFoundError: unknown kind or name (the message suggests close names),
                or the component belongs to a plugin that failed to load (chained to the
                plugin's error).
            AmbiguousComponentError: a bare name claimed by several distributions.
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}")
        self.load()
        kind_c = self._check_kind(kind)
        if ":" in name:
            return self._get_qualified(kind_c, name)
        found = self._index.get((kind_c, _canon(name)), [])
        if len({id(c.factory) for c in found}) == 1:
            return found[0]
        if found:
            names = ", ".join(sorted(c.qualified_name for c in found))
            raise AmbiguousComponentError(
                f"{kind_c} name {name!r} is ambiguous: it is registered as {names}; "
                f"use one of these qualified names"
            )
        self._raise_not_found(kind_c, name, self._available(kind_c))

    def build(self, kind: str, name: str, **params: Any) -> Any:
        """Build the component: ``get(kind, name).factory(**params)``.

        Raises:
            BuildError: ``params`` do not fit the factory's signature (the message lists
                the parameters it accepts).
        """
        info = self.get(kind, name)
        factory = info.factory
        try:
            signature: Optional[inspect.Signature] = inspect.signature(factory)
        except (TypeError, ValueError):
            signature = None
        if signature is not None:
            try:
                signature.bind(**params)
            except TypeError as exc:
                raise self._build_error(info, params, signature, exc) from exc
            return factory(**params)
        try:
            return factory(**params)
        except TypeError as exc:
            raise self._build_error(info, params, None, exc) from exc

    def components(self, kind: Optional[str] = None) -> list[ComponentInfo]:
        """Registered components (of one kind, if given), sorted by kind, name, distribution.

        An unknown kind gives an empty list (so tests can parametrise over any kind).
        """
        self.load()
        kind_c = None if kind is None else _canon(kind)
        with self._lock:
            found = [c for c in self._entries.values() if kind_c is None or c.kind == kind_c]
        return sorted(found, key=lambda c: (c.kind, c.name, c.distribution))

    def kinds(self) -> list[str]:
        """Kinds that have at least one registered component."""
        self.load()
        return sorted({k for k, _, _ in self._entries})

    def plugins(self) -> list[PluginInfo]:
        """What discovery found: one :class:`PluginInfo` per plugin distribution."""
        self.load()
        with self._lock:
            infos = sorted(self._plugins.values(), key=lambda p: p.key)
            return [attrs.evolve(p, components=list(p.components), hooks=list(p.hooks)) for p in infos]

    def resolve_class(self, class_name: str) -> Any:
        """The registered factory whose ``__name__`` is ``class_name`` (``nami.RK4``).

        Raises:
            ComponentAttributeError: nothing matches (an ``AttributeError``, so ``hasattr``
                works); for a first-party name the message says which distribution to
                install, or why that installed plugin is unavailable (chained).
            AmbiguousComponentError: different factories of that name are registered.
        """
        if not class_name or class_name.startswith("_"):
            raise ComponentAttributeError(f"module 'nami' has no attribute {class_name!r}")
        self.load()
        with self._lock:
            matches = {
                id(c.factory): c for c in self._entries.values()
                if getattr(c.factory, "__name__", None) == class_name
            }
        if len(matches) == 1:
            return next(iter(matches.values())).factory
        if matches:
            names = ", ".join(sorted(c.qualified_name for c in matches.values()))
            raise AmbiguousComponentError(
                f"nami.{class_name} is ambiguous: {names} all define it; "
                f"use nami.get(kind, qualified_name).factory"
            )
        dist = FIRST_PARTY_NAMES.get(class_name)
        if dist is not None:
            self._raise_first_party_missing(class_name, dist)
        known = {getattr(c.factory, "__name__", "") for c in self._entries.values()}
        close = difflib.get_close_matches(class_name, sorted(known), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        note, cause = self._failure_note()
        raise ComponentAttributeError(f"module 'nami' has no attribute {class_name!r}{hint}{note}") from cause

    # -------------------------------------------------------------------- discovery

    def load(self) -> None:
        """Discover and load plugins; later calls do nothing. Called on first access.

        Raises:
            PluginLoadError: in strict mode, for the first plugin that failed (chained).
        """
        with self._lock:
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                if self.builtins:
                    self._load_builtins()
                for key, (dist, eps) in self._discover().items():
                    self._plugins[key] = self._load_entry_points(dist, eps)
            finally:
                self._loading, self._loaded = False, True
            failed = [p for p in self._plugins.values() if p.status == "failed"]
        if failed and self.strict:
            first = failed[0]
            raise PluginLoadError(
                f"nami plugin {first.distribution!r} failed to load ({ENV_STRICT} is set): {first.message}"
            ) from first.error
        for info in failed:
            warnings.warn(
                f"nami plugin {info.distribution!r} failed to load and was skipped: {info.message}. "
                "Its components are unavailable; run `nami plugins` for details.",
                NamiPluginWarning,
                stacklevel=_external_stacklevel(),
            )

    def _load_builtins(self) -> None:
        """Register nami-core's own components (data sets) under the distribution ``nami-core``.

        They are part of the core, so allow/block lists and autoload switches don't apply.
        """
        from ._version import __version__

        info = PluginInfo(distribution="nami-core", version=__version__, status="ok",
                          entry_point="(built in) nami_core.builtins")
        self._load_distribution(info, [("builtins", lambda: importlib.import_module("nami_core.builtins"))])
        self._plugins[info.key] = info

    def _discover(self) -> dict[str, tuple[Any, list[Any]]]:
        """Distributions with entry points in our group, the first of each name on the path."""
        kwargs = {} if self._path is None else {"path": self._path}
        found: dict[str, tuple[Any, list[Any]]] = {}
        for dist in importlib_metadata.distributions(**kwargs):
            eps = [ep for ep in dist.entry_points if ep.group == self.group]
            if eps:
                name = dist.metadata["Name"] or eps[0].value.partition(".")[0]
                found.setdefault(normalize_distribution(name), (dist, eps))
        return found

    def _load_entry_points(self, dist: Any, eps: list[Any]) -> PluginInfo:
        info = PluginInfo(
            distribution=dist.metadata["Name"] or eps[0].value.partition(".")[0],
            version=dist.version,
            status="ok",
            entry_point=", ".join(f"{ep.name} = {ep.value}" for ep in eps),
        )
        key = info.key
        if key in self.block:
            info.status, info.message = "blocked", f"listed in {ENV_BLOCK} (or block=)"
        elif self.allow is not None and key not in self.allow:
            info.status, info.message = "blocked", f"not listed in {ENV_ALLOW} (or allow=)"
        elif not self.autoload and not (self.allow and key in self.allow):
            info.status, info.message = "disabled", f"{ENV_DISABLE_AUTOLOAD} is set (or autoload=False)"
        else:
            self._load_distribution(info, [(ep.name, ep.load) for ep in eps])
        return info

    def _load_distribution(self, info: PluginInfo, loaders: list[tuple[str, Callable[[], Any]]]) -> None:
        """Import a plugin's entry points and call its hooks, all-or-nothing."""
        staged: list[ComponentInfo] = []
        problems: list[NamiError] = []
        registered: list[Any] = []

        def register(kind: str, name: str, factory: Any, *, aliases: Sequence[str] = ()) -> Any:
            try:
                component = self._make_component(kind, name, factory, aliases, info.distribution)
                self._check_free(component, staged)
            except NamiError as exc:
                problems.append(exc)
                raise
            staged.append(component)
            return factory

        try:
            for ep_name, load in loaders:
                obj = load()
                self._pm.register(obj, name=f"{info.key}:{ep_name}")
                registered.append(obj)
                impls = [i for i in self._pm.hook.nami_register.get_hookimpls() if i.plugin is obj]
                if not impls:
                    raise PluginLoadError(
                        f"entry point {ep_name!r} of {info.distribution!r} defines no nami_register "
                        "hook (decorate it with nami_core.hookspecs.hookimpl)"
                    )
                for impl in impls:
                    impl.function(**{arg: register for arg in impl.argnames})
                info.hooks.append("nami_register")
            if problems:  # the plugin caught our error itself; it still fails
                raise problems[0]
            self._check_free_all(staged)
        except Exception as exc:
            for obj in registered:
                self._pm.unregister(obj)
            _fail(info, exc)
            return
        for component in staged:
            self._add(component)
        info.components = [(c.kind, c.name) for c in staged]
        info.hooks = sorted(set(info.hooks))

    # -------------------------------------------------------------------- internals

    def _make_component(
        self, kind: str, name: str, factory: Any, aliases: Sequence[str], source: str
    ) -> ComponentInfo:
        if not isinstance(source, str) or not source.strip() or ":" in source:
            raise RegistrationError(f"source must be a non-empty str without ':', got {source!r}")
        who = "local code" if normalize_distribution(source) == LOCAL else f"plugin {source!r}"
        kind_c = normalize_name(kind, what="kind")
        name_c = normalize_name(name)
        if isinstance(aliases, str):
            aliases = (aliases,)
        alias_c = tuple(dict.fromkeys(normalize_name(a, what="alias") for a in aliases))
        alias_c = tuple(a for a in alias_c if a != name_c)
        if not callable(factory):
            raise InvalidComponentError(
                f"{who} cannot register {kind_c} {name_c!r}: the factory must be callable "
                f"(a class or function), got {type(factory).__name__} {factory!r}"
            )
        missing = missing_methods(kind_c, _protocol_target(factory))
        if missing:
            raise InvalidComponentError(
                f"{who} cannot register {kind_c} {name_c!r} ({_describe(factory)}): it lacks "
                f"{', '.join(missing)}, required of a {kind_c} (see nami_core.protocols)"
            )
        return ComponentInfo(kind_c, name_c, f"{source}:{name_c}", factory, source, alias_c)

    def _check_free(self, new: ComponentInfo, existing: Iterable[ComponentInfo]) -> None:
        """Refuse a name or alias that the same source already uses for another factory."""
        src = normalize_distribution(new.distribution)
        taken = {
            n: c for c in existing
            if c.kind == new.kind and normalize_distribution(c.distribution) == src
            for n in (c.name, *c.aliases)
        }
        for n in (new.name, *new.aliases):
            old = taken.get(n)
            if old is None or (old.factory is new.factory and old.name == new.name):
                continue
            raise RegistrationError(
                f"{new.distribution!r} already registers {new.kind} {n!r} ({_describe(old.factory)}); "
                f"cannot register {_describe(new.factory)} under that name too "
                "(unregister the old one first, or pick another name)"
            )

    def _check_free_all(self, staged: list[ComponentInfo]) -> None:
        for component in staged:
            self._check_free(component, self._entries.values())

    def _add(self, component: ComponentInfo) -> None:
        key = (component.kind, normalize_distribution(component.distribution), component.name)
        old = self._entries.get(key)
        if old is not None:
            self._remove(old)
        self._entries[key] = component
        for n in (component.name, *component.aliases):
            self._index.setdefault((component.kind, n), []).append(component)

    def _remove(self, component: ComponentInfo) -> None:
        src = normalize_distribution(component.distribution)
        del self._entries[(component.kind, src, component.name)]
        for n in (component.name, *component.aliases):
            bucket = self._index.get((component.kind, n), [])
            bucket[:] = [c for c in bucket if c is not component]
            if not bucket:
                self._index.pop((component.kind, n), None)
        plugin = self._plugins.get(src)
        if plugin is not None and (component.kind, component.name) in plugin.components:
            plugin.components.remove((component.kind, component.name))

    def _check_kind(self, kind: str) -> str:
        if not isinstance(kind, str):
            raise TypeError(f"kind must be a str, got {type(kind).__name__} {kind!r}")
        kind_c = _canon(kind)
        known = {k for k, _, _ in self._entries}
        if kind_c in known or kind_c in KIND_REQUIREMENTS:
            return kind_c
        close = difflib.get_close_matches(kind_c, sorted(known | set(KIND_REQUIREMENTS)), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "."
        listed = ", ".join(sorted(known)) or "none"
        note, cause = self._failure_note()
        raise ComponentNotFoundError(
            f"unknown component kind {kind!r}{hint} Kinds with registered components: {listed}.{note}"
        ) from cause

    def _available(self, kind: str, source: Optional[str] = None) -> list[str]:
        return sorted(
            c.name for c in self._entries.values()
            if c.kind == kind and (source is None or normalize_distribution(c.distribution) == source)
        )

    def _get_qualified(self, kind: str, qualified: str) -> ComponentInfo:
        source, _, bare = qualified.partition(":")
        src = normalize_distribution(source)
        for c in self._index.get((kind, _canon(bare)), []):
            if normalize_distribution(c.distribution) == src:
                return c
        plugin = self._plugins.get(src)
        if plugin is not None and plugin.status == "failed":
            raise ComponentNotFoundError(
                f"{kind} {qualified!r} is unavailable: plugin {plugin.distribution!r} failed to load "
                f"({plugin.message}); run `nami plugins` for details"
            ) from plugin.error
        if plugin is not None and plugin.status != "ok":
            raise ComponentNotFoundError(
                f"{kind} {qualified!r} is unavailable: plugin {plugin.distribution!r} is "
                f"{plugin.status}, not loaded ({plugin.message})"
            )
        if plugin is None and src != LOCAL:
            sources = sorted({c.distribution for c in self._entries.values() if c.kind == kind})
            raise ComponentNotFoundError(
                f"{kind} {qualified!r}: no plugin named {source!r} is installed; "
                f"sources of {kind} components: {', '.join(sources) or 'none'}"
            )
        self._raise_not_found(kind, qualified, self._available(kind, src), source=source)

    def _raise_not_found(
        self, kind: str, name: str, available: list[str], *, source: Optional[str] = None
    ) -> typing.NoReturn:
        bare = _canon(name.partition(":")[2] if ":" in name else name)
        aliases = {a for c in self._entries.values() if c.kind == kind for a in c.aliases}
        close = difflib.get_close_matches(bare, sorted(set(available) | aliases), n=3)
        where = f" by {source!r}" if source is not None else ""
        msg = f"no {kind} named {name!r} is registered{where}"
        msg += f"; did you mean {', '.join(map(repr, close))}?" if close else "."
        msg += f" Available: {', '.join(available)}." if available else f" No {kind} components are registered."
        note, cause = self._failure_note()
        raise ComponentNotFoundError(msg + note) from cause

    def _failure_note(self) -> tuple[str, Optional[BaseException]]:
        """A sentence on plugins that failed or were not loaded, and the first failure."""
        failed = [p for p in self._plugins.values() if p.status == "failed"]
        skipped = [p for p in self._plugins.values() if p.status in ("blocked", "disabled")]
        note = ""
        if failed:
            listed = "; ".join(f"{p.distribution!r} ({p.message})" for p in failed)
            note += f" Plugins that failed to load, whose components are unavailable: {listed}."
        if skipped:
            listed = ", ".join(f"{p.distribution!r} ({p.status})" for p in skipped)
            note += f" Plugins not loaded: {listed}."
        if note:
            note += " Run `nami plugins` for details."
        return note, (failed[0].error if failed else None)

    def _raise_first_party_missing(self, class_name: str, dist: str) -> typing.NoReturn:
        plugin = self._plugins.get(normalize_distribution(dist))
        if plugin is None:
            raise ComponentAttributeError(
                f"nami.{class_name} is provided by the distribution {dist!r}, which is not "
                f"installed (pip install {dist})"
            )
        if plugin.status == "failed":
            raise ComponentAttributeError(
                f"nami.{class_name} is provided by the plugin {dist!r}, which failed to load: "
                f"{plugin.message}"
            ) from plugin.error
        if plugin.status != "ok":
            raise ComponentAttributeError(
                f"nami.{class_name} is provided by the plugin {dist!r}, which is {plugin.status}, "
                f"not loaded ({plugin.message})"
            )
        raise ComponentAttributeError(
            f"nami.{class_name} should be provided by {dist!r} {plugin.version}, but that version "
            "registers no component of that name"
        )

    @staticmethod
    def _build_error(
        info: ComponentInfo, params: dict[str, Any], signature: Optional[inspect.Signature], exc: TypeError
    ) -> BuildError:
        if signature is not None:
            accepted = [
                p.name if p.default is p.empty else f"{p.name}={p.default!r}"
                for p in signature.parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)
            ]
            if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
                accepted.append("**kwargs")
            takes = f"; it accepts: {', '.join(accepted) or 'no parameters'}"
        else:
            takes = ""
        given = ", ".join(sorted(params)) or "none"
        return BuildError(
            f"cannot build {info.kind} {info.qualified_name!r} ({_describe(info.factory)}) "
            f"with parameters ({given}): {exc}{takes}"
        )


# --------------------------------------------------------------------------- default


_DEFAULT: Optional[Registry] = None
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry, created (reading the environment) on first call."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = Registry()
    return _DEFAULT


def register(kind: str, name: str, factory: Any = None, *, aliases: Sequence[str] = (), source: str = LOCAL) -> Any:
    """:meth:`Registry.register` on the default registry."""
    return default_registry().register(kind, name, factory, aliases=aliases, source=source)


def unregister(kind: str, name: str, *, source: Optional[str] = None) -> None:
    """:meth:`Registry.unregister` on the default registry."""
    default_registry().unregister(kind, name, source=source)


def get(kind: str, name: str) -> ComponentInfo:
    """:meth:`Registry.get` on the default registry."""
    return default_registry().get(kind, name)


def build(kind: str, name: str, **params: Any) -> Any:
    """:meth:`Registry.build` on the default registry."""
    return default_registry().build(kind, name, **params)


def components(kind: Optional[str] = None) -> list[ComponentInfo]:
    """:meth:`Registry.components` on the default registry."""
    return default_registry().components(kind)


def kinds() -> list[str]:
    """:meth:`Registry.kinds` on the default registry."""
    return default_registry().kinds()


def plugins() -> list[PluginInfo]:
    """:meth:`Registry.plugins` on the default registry."""
    return default_registry().plugins()


def registered(kind: str, name: str, factory: Any, **kwargs: Any) -> Any:
    """:meth:`Registry.registered` on the default registry (a context manager)."""
    return default_registry().registered(kind, name, factory, **kwargs)


def resolve(kind: str, obj: Any) -> Any:
    """A component given either as an instance (returned as is) or as a registry name (built
    with its default parameters), e.g. ``resolve("path", "cosine")``; ``None`` stays ``None``."""
    if isinstance(obj, str):
        return build(kind, obj)
    return obj


def resolve_class(class_name: str) -> Any:
    """:meth:`Registry.resolve_class` on the default registry."""
    return default_registry().resolve_class(class_name)
