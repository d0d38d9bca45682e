import numpy as np
import pytest

from xfusion_bluesky.errors import InvalidInputError
from xfusion_bluesky.evaluation.datasets import Sequence, synthetic_sequences
from xfusion_bluesky.evaluation.sweeps import (
    HR_ENDS,
    Condition,
    Evaluator,
    SweepPlan,
    hr_grid,
)
from xfusion_bluesky.evaluation.tables import pooled, scored, select


def test_hr_grid_is_the_papers_or_both_ends():
    assert hr_grid(41, 20).tolist() == [0, 20, 40]
    assert hr_grid(41, 10).tolist() == [0, 10, 20, 30, 40]
    assert hr_grid(41, HR_ENDS).tolist() == [0, 40]


def test_runs_drop_what_a_method_does_not_depend_on():
    cond = Condition(30.0, 20, 2)
    assert cond.for_method("bicubic") == Condition(30.0, -1, 0)
    assert cond.for_method("edvr") == Condition(30.0, -1, 2)
    assert cond.for_method("edvr_stf") == Condition(30.0, 20, 2)
    assert cond.for_method("bayesian") == Condition(30.0, 20, 0, 0.05)
    # The default cluster fraction is the noise sweep's Bayesian run: one file.
    assert Condition(None, 20, 1, 0.05).for_method("bayesian") == Condition(
        None, 20, 0, 0.05
    )
    assert Condition(None, 20, 3).for_method("bayesian") == Condition(None, 20, 0, 0.05)
    assert Condition(None, HR_ENDS).slug() == "noise-none_hr-ends_sep-1"
    # Run files keep their names, so caches written before the rename still load.
    assert Condition(None, 20, 2).for_method("edvr_stf").slug() == (
        "noise-none_hr-20_sep-2"
    )


def test_an_unknown_method_is_refused_with_the_choices():
    with pytest.raises(InvalidInputError, match="edvr_stf, edvr, bicubic, bayesian"):
        Condition(None, 20).for_method("nearest")


def test_plan_lists_each_condition_once():
    plan = SweepPlan(
        noise_db=(30.0, None), hr_separations=(10, 20), lr_separations=(1, 2)
    )
    jobs = plan.jobs(("edvr_stf", "bicubic", "bayesian"))
    assert len(jobs) == len(set(jobs))
    # noise 2 + HR 4 − 1 shared (no noise, HR separation 20, s = 1), × 3; clusters 12
    assert len(jobs) == 5 * 3 + 12
    short = SweepPlan().for_frames(9)
    assert short.hr_separations == (2, HR_ENDS)
    assert short.base_hr_separation == 8


def test_evaluator_scores_frames_and_reads_runs_back(tmp_path):
    (seq,) = synthetic_sequences(
        ("friction_stir",), seeds=(2**31 + 5,), num_frames=9, hr_shape=(32, 48)
    )
    evaluator = Evaluator(tmp_path, {})
    cond = Condition(40.0, 4)
    rows = evaluator.rows(seq, cond, "bayesian")
    assert rows["offset"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert rows["at_hr"].tolist() == [True, False, False, False] * 2 + [True]
    assert np.isinf(rows["psnr_db"][rows["at_hr"]]).all()  # the HR frame itself
    assert abs(rows["lr_psnr_db"][0] - 40) < 0.2
    assert set(rows["hr_separation"].tolist()) == {4}
    path = evaluator.run_path(seq, cond, "bayesian")
    assert path.is_file()
    assert evaluator.run_path(seq, Condition(40.0, 4, 3), "bayesian") == path
    again = Evaluator(tmp_path, {}).rows(seq, cond, "bayesian")
    np.testing.assert_array_equal(again["psnr_db"], rows["psnr_db"])
    summary = pooled(rows, select(rows, method="bayesian", noise_db=40.0))
    assert summary["frames"] == int(scored(rows).sum()) == 6


def test_sequences_need_held_out_seeds_and_something_to_fuse(tmp_path):
    with pytest.raises(ValueError, match="2\\*\\*31"):
        synthetic_sequences(("fast_front",), seeds=(3,), num_frames=3, hr_shape=(8, 8))
    empty = Sequence("empty", "user", None, 0)
    with pytest.raises(ValueError, match="neither LR frames nor truth"):
        Evaluator(tmp_path, {}).rows(empty, Condition(None, 2), "bicubic")
