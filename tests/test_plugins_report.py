"""The `nami plugins` report, text and JSON."""

from __future__ import annotations

import json
import warnings

from nami_core.errors import NamiPluginWarning
from nami_core.plugins_report import plugins_data, plugins_report


class Solver:
    def integrate(self, fn, y0, t0, t1, *, time_shape=(), trajectory=False):
        raise NotImplementedError


def make_registry(fake_site, **kwargs):
    fake_site.add("fake-good", version="1.2")
    fake_site.add("fake-broken", "import_error", version="0.3")
    fake_site.add("fake-blocked")
    reg = fake_site.registry(autoload=True, block=["fake-blocked"], **kwargs)
    reg.register("solver", "mine", Solver)
    return reg


def test_text_report(fake_site):
    reg = make_registry(fake_site)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NamiPluginWarning)  # the report shows failures instead
        text = plugins_report(reg)
    assert text.startswith("nami plugins: 3 distribution(s) (1 blocked, 1 failed, 1 ok)")
    good = text.split("fake-good 1.2 [ok]")[1].split("\n\n")[0]
    assert "entry point: good = fake_fake_good" in good
    assert "hooks: nami_register" in good
    assert "loss: fake_loss" in good
    assert "path: fake_linear" in good
    assert "solver: fake_euler (aliases: fake_euler_1)" in good
    assert "fake-broken 0.3 [failed: ModuleNotFoundError: No module named 'nami_fake_missing_dependency']" in text
    assert "fake-blocked 1.0 [blocked: listed in NAMI_PLUGINS_BLOCK (or block=)]" in text
    local = text.split("local (registered in this process)")[1]
    assert "solver: mine" in local


def test_json_report(fake_site):
    reg = make_registry(fake_site)
    records = json.loads(plugins_report(reg, as_json=True))
    assert records == plugins_data(reg)
    by_dist = {r["distribution"]: r for r in records}
    assert set(by_dist) == {"fake-good", "fake-broken", "fake-blocked", "local"}
    good = by_dist["fake-good"]
    assert (good["version"], good["status"], good["error"], good["local"]) == ("1.2", "ok", None, False)
    assert good["components"]["solver"] == [{"name": "fake_euler", "aliases": ["fake_euler_1"]}]
    broken = by_dist["fake-broken"]
    assert broken["status"] == "failed" and "nami_fake_missing_dependency" in broken["error"]
    assert "Traceback" in broken["traceback"] and broken["components"] == {}
    assert by_dist["fake-blocked"]["status"] == "blocked"
    assert by_dist["local"]["local"] is True
    assert by_dist["local"]["components"] == {"solver": [{"name": "mine", "aliases": []}]}


def test_report_in_strict_mode_lists_the_failure(fake_site):
    reg = make_registry(fake_site, strict=True)
    statuses = {r["distribution"]: r["status"] for r in plugins_data(reg)}
    assert statuses["fake-broken"] == "failed" and statuses["fake-good"] == "ok"


def test_empty_report(fake_site):
    assert plugins_report(fake_site.registry(autoload=True)) == "No nami plugins installed."
    assert json.loads(plugins_report(fake_site.registry(autoload=True), as_json=True)) == []
