"""Step parameters: core defaults, instrument TOML, command line; one clear line on error."""

from __future__ import annotations

import pytest

from potpyri_core.params import CosmicRayParams, ParameterError, Parameters, overrides_from_cli, resolve
from potpyri_core.plugins import PluginManager


def test_later_layers_win_and_untouched_values_keep_the_core_default():
    params = resolve([("toml", {"cosmic_rays": {"sigclip": 5.0, "niter": 3}}),
                      ("-p", overrides_from_cli(["cosmic_rays.sigclip=4.5", "sky.box=64"]))])
    assert params.cosmic_rays == CosmicRayParams(sigclip=4.5, niter=3)
    assert params.sky.box == 64 and params.sky.filter_size == Parameters().sky.filter_size


def test_command_line_values_are_typed():
    layer = overrides_from_cli(["stack.method=median", "photometry.sn_min=20", "sky.method=dither"])
    params = resolve([("-p", layer)])
    assert params.stack.method == "median" and params.photometry.sn_min == 20.0 and params.sky.method == "dither"


@pytest.mark.parametrize(("text", "message"), [
    ("cosmic_rays.sigclip", "expected STEP.NAME=VALUE"),
    ("sigclip=4", "expected STEP.NAME=VALUE"),
])
def test_malformed_override(text, message):
    with pytest.raises(ParameterError, match=message):
        overrides_from_cli([text])


@pytest.mark.parametrize(("layer", "message"), [
    ({"cosmic": {"sigclip": 4}}, "unknown step 'cosmic'"),
    ({"stack": {"methd": "median"}}, "step stack has no parameter 'methd'"),
    ({"stack": {"method": "mean"}}, "stack.method='mean'"),
    ({"sky": {"box": 2}}, "sky.box=2: Input should be greater than or equal to 8"),
])
def test_invalid_values_name_the_layer_step_and_parameter(layer, message):
    with pytest.raises(ParameterError, match=message) as info:
        resolve([("-p", layer)])
    assert str(info.value).startswith("-p: ") and "\n" not in str(info.value)


def test_instrument_params_are_validated_when_the_plugin_loads():
    import potpyri_gemini

    from potpyri_core.settings import settings_from_package

    class Bad:
        from potpyri_core import hookimpl

        @hookimpl
        def potpyri_instruments(self):
            raw = next(r for r in settings_from_package("potpyri_gemini") if r["name"] == "GMOS-N")
            return [{**raw, "name": "BADCAM", "aliases": [], "params": {"cosmic_rays": {"sigclp": 4}}}]

    pm = PluginManager(extra_plugins=[potpyri_gemini, Bad()], use_entry_points=False)
    assert "BADCAM" not in pm.instruments()
    assert any("BADCAM" in p and "sigclp" in p for p in pm.problems), pm.problems


def test_nir_instruments_take_the_sky_from_the_dithers():
    pm = PluginManager()
    for name in ("MOSFIRE", "F2", "MMIRS", "FOURSTAR"):
        instrument = pm.instrument(name)
        assert resolve([("toml", instrument.params)]).sky.method == "dither", name
    assert resolve([("toml", pm.instrument("GMOS-N").params)]).sky.method == "2d"
