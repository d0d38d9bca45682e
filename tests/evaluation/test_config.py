import pytest

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.evaluation.config import (
    METHODS,
    EvaluationConfig,
    fingerprint,
    quick_config,
)
from xfusion_bluesky.fusion.methods import METHOD_NAMES


def test_every_registered_method_is_compared_and_an_unknown_one_refused():
    assert EvaluationConfig().methods == METHODS == METHOD_NAMES
    with pytest.raises(InvalidInputError, match="unknown method 'nearest'"):
        EvaluationConfig(methods=("bicubic", "nearest"))


def test_settings_name_the_validation_radiographs_the_same_on_every_host(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("XFUSION_VALIDATION", str(tmp_path))
    assert EvaluationConfig().settings()["radiographs"] == "$XFUSION_VALIDATION"
    assert EvaluationConfig(radiographs=None).settings()["radiographs"] is None
    plan = EvaluationConfig().settings()["plan"]
    assert plan["hr_separations"] == [2, 10, 20, 0]
    assert plan["base_hr_separation"] == 20


def test_cache_folders_of_earlier_runs_keep_their_names():
    # The fingerprint names DIR/cache/<fingerprint>: renaming settings must not
    # move it, or a rerun would fuse everything again.
    assert fingerprint(EvaluationConfig()) == "4e0a8b8c3e54"
    assert fingerprint(quick_config()) == "d63336cd6aa8"
