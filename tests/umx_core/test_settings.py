"""SeparationSettings (umx_core/settings.py): defaults, validation, each command's flag names."""

import pytest

from umx_core import SeparationSettings
from umx_core.errors import UMXError


def test_settings_validate_and_name_each_commands_flag():
    """One home for a setting: defaults, validation, and errors that say the flag the command uses."""
    defaults = SeparationSettings()
    assert (defaults.niter, defaults.wiener_win_len, defaults.codec, defaults.batch_frames) == (1, 300, "wav", None)
    assert SeparationSettings.from_flags("beam").codec == "flac"  # the catalog job's own default
    parsed = SeparationSettings(targets="vocals, drums", aggregate='{"band": ["drums"]}', codec=".FLAC")
    assert parsed.targets == ("vocals", "drums") and parsed.aggregate == {"band": ["drums"]} and parsed.codec == "flac"
    for style, flag in (("umx", "--ext"), ("beam", "--codec")):
        with pytest.raises(UMXError, match=f"^{flag} must be one of"):
            SeparationSettings.from_flags(style, codec="aiff")
    for style, flag in (("umx", "--wiener-win-len"), ("beam", "--wiener_win_len")):
        with pytest.raises(UMXError, match=f"^{flag} must be a positive"):
            SeparationSettings.from_flags(style, wiener_win_len=0)
    for bad in ('{"x": "vocals"}', "[1]", "{not json", '{"x": []}'):
        with pytest.raises(UMXError, match="^--aggregate"):
            SeparationSettings(aggregate=bad)
    with pytest.raises(UMXError, match="twice"):
        SeparationSettings(targets=["vocals", "vocals"])
    assert "batch_frames" not in defaults.output_fields()  # a run knob changes no stem


def test_precision_is_validated_and_recorded_only_when_it_is_not_float32():
    """bfloat16 changes the stems, so a record must hold it; float32 is left out, so records written
    before the setting existed still match a default run."""
    assert "precision" not in SeparationSettings().output_fields()
    assert SeparationSettings(precision="bfloat16").output_fields()["precision"] == "bfloat16"
    assert SeparationSettings(precision="bfloat16").separator_overrides()["precision"] == "bfloat16"
    with pytest.raises(UMXError, match="--precision must be one of float32, bfloat16"):
        SeparationSettings.from_flags("umx", precision="half")
