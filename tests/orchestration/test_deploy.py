"""Deploying: what is refused before Prefect is asked, and the worker commands."""

import pytest

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.orchestration.deploy import deploy, worker_commands


def test_a_tiled_uri_with_its_api_key_is_not_deployed():
    # Deployment parameters are shown in the Prefect UI.
    with pytest.raises(InvalidInputError, match="XFUSION_FUSION_API_KEY"):
        deploy("http://tiled:8000/api/v1?api_key=secret")


def test_heartbeats_faster_than_prefect_allows_are_refused():
    with pytest.raises(InvalidInputError, match="30"):
        deploy("http://tiled:8000/api/v1", heartbeat_s=5)


def test_one_worker_per_gpu_each_on_its_own_gpu_with_one_run_at_a_time():
    commands = worker_commands("pool-a", gpus=3)
    assert len(commands) == 3
    for n, command in enumerate(commands):
        assert command.startswith(f"CUDA_VISIBLE_DEVICES={n} XFUSION_DEVICE=cuda ")
        assert "--pool pool-a --limit 1" in command
        assert f'"$(hostname -s)-gpu{n}"' in command  # unique across nodes
    assert worker_commands("pool-a", gpus=0) == [
        "XFUSION_DEVICE=cpu prefect worker start --pool pool-a --limit 1"
    ]
