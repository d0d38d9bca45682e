"""The catch-up's decision for one pending raw run, state by state."""

from xfusion_bluesky.orchestration.keys import rerun_key
from xfusion_bluesky.orchestration.recovery import Attempt, next_submission

KEY = "a" * 64


def attempt(n, state, alive=True, key=None):
    return Attempt(f"run-{n}", rerun_key(KEY, n) if key is None else key, state, alive)


def test_a_run_nobody_submitted_is_submitted_under_its_fusion_key():
    assert next_submission(KEY, []) == (KEY, [])


def test_a_queued_or_live_flow_run_is_left_alone():
    for state in ("SCHEDULED", "PENDING", "RUNNING", "PAUSED"):
        assert next_submission(KEY, [attempt(0, state)]) == (None, [])


def test_a_running_flow_run_whose_worker_died_is_crashed_and_rerun_under_a_new_key():
    key, lost = next_submission(KEY, [attempt(0, "RUNNING", alive=False)])
    assert lost == ["run-0"]
    assert key == rerun_key(KEY, 1) != KEY  # the crashed run keeps KEY


def test_finished_attempts_each_take_a_key_and_the_next_one_is_new():
    attempts = [attempt(0, "CRASHED"), attempt(1, "FAILED")]
    assert next_submission(KEY, attempts) == (rerun_key(KEY, 2), [])


def test_a_lost_run_beside_a_live_rerun_is_crashed_without_a_third_run():
    attempts = [attempt(0, "RUNNING", alive=False), attempt(1, "SCHEDULED")]
    assert next_submission(KEY, attempts) == (None, ["run-0"])


def test_a_flow_run_cancelled_by_a_person_is_not_redone():
    assert next_submission(KEY, [attempt(0, "CANCELLED")]) == (None, [])


def test_flow_runs_of_another_fusion_of_the_same_raw_run_do_not_count():
    other = attempt(0, "RUNNING", key="b" * 64)
    assert next_submission(KEY, [other]) == (KEY, [])
