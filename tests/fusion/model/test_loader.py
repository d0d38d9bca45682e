import os

import pytest
import torch

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.fusion.model import (
    EDVRSTF,
    edvr_small,
    edvr_stf_small,
    model_id,
    save_model,
)
from xfusion_bluesky.fusion.model.loader import (
    clear_cache,
    default_model_path,
    load_network,
)

TINY = {
    "num_feat": 8,
    "deformable_groups": 1,
    "num_extract_block": 1,
    "num_reconstruct_block": 1,
}


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def stf_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "stf.pth"
    save_model(edvr_stf_small(**TINY), path)
    return path


def test_a_file_is_loaded_once_and_described(stf_file):
    first = load_network("edvr_stf", stf_file)
    again = load_network("edvr_stf", str(stf_file))
    assert again.network is first.network
    assert not first.network.training
    assert first.info == {
        "name": "stf",
        "path": os.fspath(stf_file),
        "sha256": model_id(first.network),
        "config": {"class": "EDVRSTF", **first.network.config},
    }


def test_a_changed_file_is_loaded_again(stf_file):
    first = load_network("edvr_stf", stf_file).network
    torch.manual_seed(1)
    save_model(edvr_stf_small(**TINY), stf_file)
    stat = stf_file.stat()
    os.utime(stf_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = load_network("edvr_stf", stf_file)
    assert second.network is not first
    assert second.info["sha256"] != first.model_id
    clear_cache()
    assert load_network("edvr_stf", stf_file).network is not second.network


def test_shipped_weights_are_the_default():
    loaded = load_network("edvr")
    assert loaded.info["path"] == os.fspath(default_model_path("edvr"))
    assert loaded.info["name"] == "edvr_small"
    assert loaded.info["config"]["class"] == "EDVR"
    assert load_network("edvr", "edvr_small").network is loaded.network


def test_a_module_is_used_as_is_and_hashed():
    network = edvr_small(**TINY)
    loaded = load_network("edvr", network)
    assert loaded.network is network
    assert loaded.info["sha256"] == model_id(network)
    assert loaded.info["name"] is loaded.info["path"] is None


def test_wrong_class_is_refused(stf_file):
    with pytest.raises(InvalidInputError, match=r"holds a EDVRSTF.*method='edvr_stf'"):
        load_network("edvr", stf_file)
    with pytest.raises(
        TypeError, match="needs a EDVRSTF model; got EDVR: use method='edvr'"
    ):
        load_network("edvr_stf", edvr_small(**TINY))
    with pytest.raises(TypeError, match="model must be a checkpoint path"):
        load_network("edvr", 3)
    with pytest.raises(InvalidInputError, match="num_frame=3"):
        load_network("edvr_stf", EDVRSTF(num_frame=5, **TINY))


def test_weight_free_methods_take_no_model(stf_file):
    assert load_network("bicubic") == (
        None,
        {"name": None, "sha256": None, "config": None},
    )
    with pytest.raises(InvalidInputError, match="'bayesian' takes no model"):
        load_network("bayesian", stf_file)
    with pytest.raises(InvalidInputError, match="unknown method 'bayes'"):
        load_network("bayes")


def test_default_paths_follow_the_registry():
    assert default_model_path("edvr_stf").name == "edvr_stf_small.pth"
    with pytest.raises(InvalidInputError, match="'bicubic' has no shipped weights"):
        default_model_path("bicubic")


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.pth"):
        load_network("edvr", tmp_path / "nothing.pth")
