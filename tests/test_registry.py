"""The registry: discovery, isolation of broken plugins, lookup, in-process registration.

Installed plugins are faked with temporary ``*.dist-info`` directories (``fake_site``
fixture, ``tests/fakeplugins``); each test builds a fresh :class:`Registry`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import importlib_metadata
import pytest

from fakeplugins import write_distribution
from nami_core import registry as registry_module
from nami_core.errors import (
    AmbiguousComponentError,
    BuildError,
    ComponentAttributeError,
    ComponentNotFoundError,
    InvalidComponentError,
    NamiPluginWarning,
    PluginLoadError,
    RegistrationError,
)
from nami_core.hookspecs import hookimpl
from nami_core.registry import ComponentInfo, Registry

ROOT = Path(__file__).resolve().parents[1]


class Solver:
    def __init__(self, steps: int = 10):
        self.steps = steps

    def integrate(self, fn, y0, t0, t1, *, time_shape=(), trajectory=False):
        raise NotImplementedError


class OtherSolver(Solver):
    pass


def local_registry() -> Registry:
    """A registry that discovers nothing (for in-process registration tests)."""
    return Registry(autoload=False, path=[], builtins=False)


def plugin_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, NamiPluginWarning)]


def load_recording(reg: Registry) -> list[str]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        reg.load()
    return plugin_warnings(record)


def by_dist(reg: Registry) -> dict:
    return {p.distribution: p for p in reg.plugins()}


# ----------------------------------------------------------------- installed plugins


def test_good_plugin_registers_its_components(fake_site):
    fake_site.add("fake-good", version="2.3")
    reg = fake_site.registry(autoload=True)
    assert load_recording(reg) == []
    (info,) = reg.plugins()
    assert (info.distribution, info.version, info.status, info.error) == ("fake-good", "2.3", "ok", None)
    assert info.entry_point == "good = fake_fake_good"
    assert info.hooks == ["nami_register"]
    assert sorted(info.components) == [("loss", "fake_loss"), ("path", "fake_linear"), ("solver", "fake_euler")]

    euler = reg.get("solver", "fake_euler")
    assert isinstance(euler, ComponentInfo)
    assert (euler.qualified_name, euler.distribution, euler.aliases) == (
        "fake-good:fake_euler", "fake-good", ("fake_euler_1",))
    assert euler.factory.__name__ == "FakeEuler"
    assert reg.get("solver", "FAKE-EULER") is euler
    assert reg.get("solver", "fake_euler_1") is euler
    assert reg.get("solver", "fake-good:fake_euler") is euler
    assert reg.get("solver", "Fake_Good:fake_euler_1") is euler  # distribution name normalised
    assert reg.build("solver", "fake_euler", steps=3).steps == 3
    assert reg.kinds() == ["loss", "path", "solver"]
    assert [c.name for c in reg.components("path")] == ["fake_linear"]
    assert len(reg.components()) == 3


def test_discovery_searches_sys_path_by_default(fake_site):
    fake_site.add("fake-onpath")
    reg = Registry(autoload=True, allow=["fake-onpath"], builtins=False)  # allow: ignore real plugins
    assert by_dist(reg)["fake-onpath"].status == "ok"
    assert reg.get("path", "fake-onpath:fake_linear").distribution == "fake-onpath"


def test_plugin_that_fails_to_import_is_isolated(fake_site):
    fake_site.add("fake-good")
    fake_site.add("fake-broken", "import_error")
    reg = fake_site.registry(autoload=True)
    messages = load_recording(reg)
    assert len(messages) == 1 and "fake-broken" in messages[0] and "nami_fake_missing_dependency" in messages[0]
    broken = by_dist(reg)["fake-broken"]
    assert broken.status == "failed"
    assert isinstance(broken.error, ModuleNotFoundError)
    assert "nami_fake_missing_dependency" in broken.message
    assert "Traceback" in broken.traceback and broken.components == []
    assert by_dist(reg)["fake-good"].status == "ok"
    assert reg.get("solver", "fake_euler").distribution == "fake-good"


def test_plugin_whose_hook_raises_keeps_nothing(fake_site):
    fake_site.add("fake-good")
    fake_site.add("fake-raises", "hook_raises")
    reg = fake_site.registry(autoload=True)
    messages = load_recording(reg)
    assert len(messages) == 1 and "fake-raises" in messages[0] and "boom from hook" in messages[0]
    info = by_dist(reg)["fake-raises"]
    assert info.status == "failed" and isinstance(info.error, RuntimeError)
    assert info.components == []
    # transactional: the path it registered before raising is not kept
    assert all(c.distribution != "fake-raises" for c in reg.components())
    with pytest.raises(ComponentNotFoundError) as exc_info:
        reg.get("path", "halfway")
    assert "fake-raises" in str(exc_info.value)
    assert exc_info.value.__cause__ is info.error


def test_plugin_registering_an_invalid_component_fails_whole(fake_site):
    fake_site.add("fake-invalid", "invalid")
    reg = fake_site.registry(autoload=True)
    (message,) = load_recording(reg)
    info = by_dist(reg)["fake-invalid"]
    assert info.status == "failed"
    assert isinstance(info.error, InvalidComponentError)
    for part in ("fake-invalid", "not_a_solver", "NotASolver", "integrate"):
        assert part in str(info.error)
        assert part in message
    assert reg.components() == []  # the valid path registered first is not kept


def test_plugin_without_hook_implementation_fails(fake_site):
    fake_site.add("fake-nohook", "no_hook")
    reg = fake_site.registry(autoload=True)
    (message,) = load_recording(reg)
    info = by_dist(reg)["fake-nohook"]
    assert info.status == "failed" and isinstance(info.error, PluginLoadError)
    assert "hookimpl" in str(info.error) and "fake-nohook" in message


def test_exactly_one_warning_per_failed_plugin(fake_site):
    fake_site.add("fake-good")
    fake_site.add("fake-broken", "import_error")
    fake_site.add("fake-raises", "hook_raises")
    reg = fake_site.registry(autoload=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        reg.components()
        reg.get("solver", "fake_euler")
        reg.plugins()
        with pytest.raises(ComponentNotFoundError):
            reg.get("path", "fake-broken:fake_linear")
    messages = plugin_warnings(record)
    assert len(messages) == 2
    assert sum("fake-broken" in m for m in messages) == 1
    assert sum("fake-raises" in m for m in messages) == 1
    assert all(w.filename == __file__ for w in record)  # attributed to the caller


def test_using_a_failed_plugins_component_is_chained(fake_site):
    fake_site.add("fake-broken", "import_error")
    reg = fake_site.registry(autoload=True)
    with pytest.warns(NamiPluginWarning):
        reg.load()
    original = by_dist(reg)["fake-broken"].error
    with pytest.raises(ComponentNotFoundError) as qualified:
        reg.get("solver", "fake-broken:fake_euler")
    assert "fake-broken" in str(qualified.value) and "failed to load" in str(qualified.value)
    assert qualified.value.__cause__ is original
    with pytest.raises(ComponentNotFoundError) as bare:
        reg.build("solver", "fake_euler")
    assert "fake-broken" in str(bare.value)
    assert bare.value.__cause__ is original


def test_two_distributions_claiming_one_name(fake_site):
    fake_site.add("fake-alpha")
    fake_site.add("fake-beta")
    reg = fake_site.registry(autoload=True)
    with pytest.raises(AmbiguousComponentError) as exc_info:
        reg.get("solver", "fake_euler")
    assert "fake-alpha:fake_euler" in str(exc_info.value)
    assert "fake-beta:fake_euler" in str(exc_info.value)
    with pytest.raises(AmbiguousComponentError):
        reg.get("solver", "fake_euler_1")  # aliases clash too
    alpha = reg.get("solver", "fake-alpha:fake_euler")
    beta = reg.get("solver", "fake-beta:fake_euler")
    assert alpha.factory is not beta.factory
    assert reg.build("solver", "fake-beta:fake_euler", steps=2).steps == 2
    with pytest.raises(AmbiguousComponentError):
        reg.resolve_class("FakeEuler")


def test_distribution_seen_twice_on_the_path_registers_once(fake_site):
    fake_site.add("fake-twice", version="1.0", directory="first")
    fake_site.add("fake-twice", version="2.0", directory="second")
    reg = fake_site.registry(autoload=True)
    assert load_recording(reg) == []
    (info,) = reg.plugins()
    assert (info.status, info.version) == ("ok", "1.0")  # the first on the path wins
    assert reg.get("solver", "fake_euler").qualified_name == "fake-twice:fake_euler"
    assert len(reg.components("solver")) == 1


def test_allow_list_loads_only_listed_distributions(fake_site):
    fake_site.add("fake-kept")
    skipped = fake_site.add("fake-skipped", "import_error")
    reg = fake_site.registry(autoload=True, allow=["FAKE_Kept"])
    assert load_recording(reg) == []
    infos = by_dist(reg)
    assert infos["fake-kept"].status == "ok"
    assert infos["fake-skipped"].status == "blocked"
    assert skipped not in sys.modules  # never imported
    with pytest.raises(ComponentNotFoundError, match="fake-skipped.*blocked"):
        reg.get("solver", "fake-skipped:fake_euler")


def test_block_list_is_applied_before_import(fake_site):
    fake_site.add("fake-good")
    blocked = fake_site.add("fake-blocked", "import_error")
    reg = fake_site.registry(autoload=True, block="fake_blocked, other")
    assert load_recording(reg) == []
    assert by_dist(reg)["fake-blocked"].status == "blocked"
    assert by_dist(reg)["fake-good"].status == "ok"
    assert blocked not in sys.modules


def test_allow_and_block_from_environment(fake_site, monkeypatch):
    fake_site.add("fake-a")
    fake_site.add("fake-b", "import_error")
    fake_site.add("fake-c")
    monkeypatch.setenv("NAMI_PLUGINS_ALLOW", " fake-a , Fake_B")
    monkeypatch.setenv("NAMI_PLUGINS_BLOCK", "fake-b")
    reg = fake_site.registry()
    assert load_recording(reg) == []
    assert {d: p.status for d, p in by_dist(reg).items()} == {
        "fake-a": "ok", "fake-b": "blocked", "fake-c": "blocked"}


def test_autoload_disabled_by_environment(fake_site, monkeypatch):
    module = fake_site.add("fake-good")
    monkeypatch.setenv("NAMI_DISABLE_PLUGIN_AUTOLOAD", "1")
    reg = fake_site.registry()
    assert reg.autoload is False
    assert [(p.distribution, p.status) for p in reg.plugins()] == [("fake-good", "disabled")]
    assert module not in sys.modules
    with pytest.raises(ComponentNotFoundError, match="fake-good.*disabled"):
        reg.get("solver", "fake_euler")
    # in-process registration still works
    reg.register("solver", "mine", Solver)
    assert reg.get("solver", "mine").qualified_name == "local:mine"
    # an explicitly allowed distribution is still loaded (like pytest's -p)
    monkeypatch.setenv("NAMI_PLUGINS_ALLOW", "fake-good")
    assert fake_site.registry().get("solver", "fake_euler").distribution == "fake-good"
    monkeypatch.setenv("NAMI_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert fake_site.registry().autoload is True


def test_strict_mode_raises_the_first_failure(fake_site, monkeypatch):
    fake_site.add("fake-good")
    fake_site.add("fake-broken", "import_error")
    reg = fake_site.registry(autoload=True, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NamiPluginWarning)  # strict raises instead of warning
        with pytest.raises(PluginLoadError, match="fake-broken") as exc_info:
            reg.get("solver", "fake_euler")
    assert isinstance(exc_info.value.__cause__, ModuleNotFoundError)
    assert by_dist(reg)["fake-broken"].status == "failed"

    monkeypatch.setenv("NAMI_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError):
        fake_site.registry(autoload=True).load()


def test_registry_discovers_lazily(fake_site):
    module = fake_site.add("fake-good")
    reg = fake_site.registry(autoload=True)
    reg.register("solver", "mine", Solver)  # registering does not discover
    assert module not in sys.modules
    reg.get("solver", "mine")
    assert module in sys.modules


def test_import_nami_loads_no_plugin(tmp_path):
    write_distribution(tmp_path, "fake-lazy", "1.0", {"lazy": "fake_lazy_plugin"})
    (tmp_path / "fake_lazy_plugin.py").write_text((Path(__file__).parent / "fakeplugins" / "good.py").read_text())
    code = textwrap.dedent("""
        import json, sys
        import nami
        import nami_core.registry as r
        before = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("fake_lazy_plugin", "nami_paths", "nami_solvers", "nami_diffusion"))
        default_before = r._DEFAULT is not None
        r.components()
        print(json.dumps({"before": before, "default_before": default_before,
                          "after": "fake_lazy_plugin" in sys.modules}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAMI_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    env["NAMI_PLUGINS_ALLOW"] = "fake-lazy"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"before": [], "default_before": False, "after": True}


# ------------------------------------------------------------------------ lookup


def test_unknown_name_suggests_close_names():
    reg = local_registry()
    reg.register("solver", "euler", Solver)
    reg.register("solver", "heun", OtherSolver, aliases=("improved_euler",))
    with pytest.raises(ComponentNotFoundError) as exc_info:
        reg.get("solver", "eulr")
    message = str(exc_info.value)
    assert "did you mean 'euler'" in message
    assert "Available: euler, heun" in message
    assert isinstance(exc_info.value, LookupError)
    with pytest.raises(ComponentNotFoundError, match="did you mean 'improved_euler'"):
        reg.get("solver", "improved_eulr")
    with pytest.raises(ComponentNotFoundError, match="no path named 'x'.*No path components"):
        reg.get("path", "x")


def test_unknown_kind_lists_kinds():
    reg = local_registry()
    reg.register("solver", "euler", Solver)
    with pytest.raises(ComponentNotFoundError) as exc_info:
        reg.get("solvr", "euler")
    assert "did you mean 'solver'" in str(exc_info.value)
    assert "Kinds with registered components: solver" in str(exc_info.value)
    assert reg.components("schedule") == []  # a protocol kind with nothing registered


def test_qualified_names():
    reg = local_registry()
    reg.register("solver", "euler", Solver)
    reg.register("solver", "euler", OtherSolver, source="my-lab")
    assert reg.get("solver", "local:euler").factory is Solver
    assert reg.get("solver", "My_Lab:euler").factory is OtherSolver
    with pytest.raises(AmbiguousComponentError, match="local:euler.*my-lab:euler"):
        reg.get("solver", "euler")
    with pytest.raises(ComponentNotFoundError, match="no plugin named 'nope'"):
        reg.get("solver", "nope:euler")
    with pytest.raises(ComponentNotFoundError, match="by 'local'.*did you mean 'euler'"):
        reg.get("solver", "local:eulr")


def test_same_factory_under_two_sources_is_not_ambiguous():
    reg = local_registry()
    reg.register("solver", "euler", Solver)
    reg.register("solver", "euler", Solver, source="other")
    assert reg.get("solver", "euler").factory is Solver


# ------------------------------------------------------------ in-process registration


def test_local_registration_and_unregistration():
    reg = local_registry()
    assert reg.register("Solver", "My-Euler", Solver) is Solver
    info = reg.get("solver", "my_euler")
    assert (info.kind, info.name, info.qualified_name, info.distribution) == (
        "solver", "my_euler", "local:my_euler", "local")
    reg.register("solver", "my_euler", Solver)  # the identical factory again: a no-op
    with pytest.raises(RegistrationError, match="already registers solver 'my_euler'"):
        reg.register("solver", "my_euler", OtherSolver)
    reg.unregister("solver", "my-euler")
    with pytest.raises(ComponentNotFoundError):
        reg.get("solver", "my_euler")
    with pytest.raises(ComponentNotFoundError):
        reg.unregister("solver", "my_euler")


def test_register_as_decorator_and_module_level(monkeypatch):
    monkeypatch.setattr(registry_module, "_DEFAULT", local_registry())

    @registry_module.register("solver", "decorated", aliases=["deco"])
    class Decorated(Solver):
        pass

    assert registry_module.get("solver", "deco").factory is Decorated
    assert registry_module.build("solver", "decorated", steps=5).steps == 5
    assert registry_module.resolve_class("Decorated") is Decorated
    assert [c.name for c in registry_module.components("solver")] == ["decorated"]
    assert registry_module.plugins() == []
    registry_module.unregister("solver", "decorated")
    assert registry_module.components() == []


def test_registered_context_manager():
    reg = local_registry()
    with reg.registered("solver", "temp", Solver) as info:
        assert info.qualified_name == "local:temp"
        assert reg.get("solver", "temp") is info
    with pytest.raises(ComponentNotFoundError):
        reg.get("solver", "temp")


@pytest.mark.parametrize("name", ["1abc", "a b", "", "é", "a.b"])
def test_malformed_names_are_rejected(name):
    reg = local_registry()
    with pytest.raises(RegistrationError, match=r"\[a-z\]\[a-z0-9_\]\*") as exc_info:
        reg.register("solver", name, Solver)
    assert isinstance(exc_info.value, ValueError)
    with pytest.raises(RegistrationError, match="kind"):
        reg.register("9kind", "ok", Solver)


def test_local_invalid_component_names_missing_method():
    reg = local_registry()

    class HalfPath:
        def interpolate(self, x0, x1, t):
            return x0

    with pytest.raises(InvalidComponentError, match="path 'half'.*HalfPath.*lacks velocity"):
        reg.register("path", "half", HalfPath)
    with pytest.raises(InvalidComponentError, match="callable"):
        reg.register("thing", "three", 3)
    reg.register("thing", "anything", object)  # kinds without a protocol are not checked

    def make_solver(steps: int = 3) -> Solver:
        return Solver(steps)

    reg.register("solver", "made", make_solver)  # checked through its return annotation
    with pytest.raises(InvalidComponentError):
        reg.register("path", "made", make_solver)


def test_build_reports_accepted_parameters():
    reg = local_registry()
    reg.register("solver", "euler", Solver)
    with pytest.raises(BuildError) as exc_info:
        reg.build("solver", "euler", step=4)
    message = str(exc_info.value)
    assert "local:euler" in message and "step" in message and "steps=10" in message
    assert isinstance(exc_info.value, TypeError)
    assert isinstance(exc_info.value.__cause__, TypeError)

    class Picky(Solver):
        def __init__(self, steps: int = 1):
            raise TypeError("steps must be an int")

    reg.register("solver", "picky", Picky)
    with pytest.raises(TypeError, match="steps must be an int") as inner:
        reg.build("solver", "picky", steps="x")
    assert not isinstance(inner.value, BuildError)  # errors from the factory body pass through


def test_add_plugin_in_process():
    reg = local_registry()

    class MyPlugin:
        @hookimpl
        def nami_register(self, register):
            register("solver", "plugged", Solver)

    info = reg.add_plugin(MyPlugin(), name="my-plugin", version="0.1")
    assert info.status == "ok" and info.components == [("solver", "plugged")]
    assert reg.get("solver", "my-plugin:plugged").factory is Solver

    class Broken:
        @hookimpl
        def nami_register(self, register):
            register("solver", "half", Solver)
            register("solver", "bad name", Solver)

    with pytest.raises(PluginLoadError, match="broken") as exc_info:
        reg.add_plugin(Broken(), name="broken")
    assert isinstance(exc_info.value.__cause__, RegistrationError)
    assert [c.name for c in reg.components()] == ["plugged"]


# ---------------------------------------------------------------------- nami.<Name>


def test_resolve_class_finds_classes_and_functions(fake_site):
    fake_site.add("fake-good")
    reg = fake_site.registry(autoload=True)
    assert reg.resolve_class("FakeEuler").__name__ == "FakeEuler"
    assert reg.resolve_class("fake_loss").__name__ == "fake_loss"
    with pytest.raises(AttributeError, match="did you mean FakeEuler") as exc_info:
        reg.resolve_class("FakeEulr")
    assert isinstance(exc_info.value, ComponentNotFoundError)
    with pytest.raises(ComponentAttributeError):
        reg.resolve_class("_private")


def test_resolve_class_names_missing_first_party_distribution(fake_site):
    reg = fake_site.registry(autoload=True)
    with pytest.raises(AttributeError) as exc_info:
        reg.resolve_class("VPSchedule")
    assert str(exc_info.value) == (
        "nami.VPSchedule is provided by the distribution 'nami-diffusion', which is not installed "
        "(pip install nami-diffusion)")


def test_resolve_class_chains_failure_of_installed_first_party_plugin(fake_site):
    fake_site.add("nami-diffusion", "import_error", module="fake_nami_diffusion_broken")
    reg = fake_site.registry(autoload=True)
    with pytest.warns(NamiPluginWarning, match="nami-diffusion"):
        reg.load()
    with pytest.raises(ComponentAttributeError, match="plugin 'nami-diffusion', which failed to load") as exc_info:
        reg.resolve_class("EDMSchedule")
    assert exc_info.value.__cause__ is by_dist(reg)["nami-diffusion"].error


def test_nami_facade_getattr(monkeypatch):
    import nami

    monkeypatch.setattr(registry_module, "_DEFAULT", local_registry())
    assert not hasattr(nami, "NoSuchComponent")
    with registry_module.registered("solver", "facade", Solver):
        assert nami.Solver is Solver


# ------------------------------------------------------------ real first-party plugins


def _installed(dist: str) -> bool:
    try:
        importlib_metadata.distribution(dist)
    except importlib_metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(
    not (_installed("nami-paths") and _installed("nami-solvers")),
    reason="first-party plugins nami-paths / nami-solvers not installed",
)
def test_first_party_plugins_load(monkeypatch):
    for var in ("NAMI_DISABLE_PLUGIN_AUTOLOAD", "NAMI_PLUGINS_ALLOW", "NAMI_PLUGINS_BLOCK"):
        monkeypatch.delenv(var, raising=False)
    reg = Registry(autoload=True, allow=["nami-paths", "nami-solvers"])
    infos = by_dist(reg)
    for dist in ("nami-paths", "nami-solvers"):
        assert infos[dist].status == "ok", infos[dist].traceback
        for kind, name in infos[dist].components:
            assert reg.get(kind, f"{dist}:{name}").distribution == dist


def test_core_builtins_always_registered(monkeypatch):
    """nami-core's own data sets are registered even with plugin autoload switched off."""
    monkeypatch.setenv("NAMI_DISABLE_PLUGIN_AUTOLOAD", "1")
    reg = Registry(path=[])
    info = reg.get("dataset", "two_moons")
    assert info.distribution == "nami-core" and info.qualified_name == "nami-core:two_moons"
    assert reg.get("dataset", "nami-core:digits").name == "digits"
    assert [p.distribution for p in reg.plugins()] == ["nami-core"]
    assert Registry(path=[], builtins=False).components("dataset") == []


def test_first_party_hint_table_covers_every_registered_name():
    """Every factory a first-party plugin registers has an install hint for ``nami.<Name>``."""
    from nami_core.registry import FIRST_PARTY_NAMES

    reg = Registry(builtins=False, allow=["nami-paths", "nami-solvers", "nami-diffusion"])
    comps = reg.components()
    if not comps:
        pytest.skip("first-party plugins are not installed")
    for c in comps:
        name = getattr(c.factory, "__name__", None)
        assert FIRST_PARTY_NAMES.get(name) == c.distribution, (name, c.distribution)
