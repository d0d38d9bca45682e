import argparse

import pytest

from xfusion_bluesky.cli import options
from xfusion_bluesky.cli.main import build_parser

#: Options several verbs share: each must look the same in every verb.
SHARED = ("--device", "--method", "--methods", "--tiled", "--api-key", "--model")


def _verbs():
    parser = build_parser()
    (commands,) = [
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ]
    return commands.choices


def _options(subparser):
    return {
        flag: action
        for action in subparser._actions
        for flag in action.option_strings
        if not isinstance(action, argparse._HelpAction)
    }


def test_every_option_of_every_verb_has_help():
    for verb, subparser in _verbs().items():
        for action in subparser._actions:
            name = action.option_strings or [action.dest]
            assert action.help, f"{verb} {name[0]} has no help line"


def test_shared_options_have_one_default_metavar_and_choices():
    seen = {}
    for verb, subparser in _verbs().items():
        for flag, action in _options(subparser).items():
            if flag not in SHARED or (verb == "train" and flag == "--method"):
                continue
            if verb == "serve" and flag == "--api-key":
                continue  # the key the server requires, not one to present
            choices = None if action.choices is None else tuple(action.choices)
            looks = (action.default, action.metavar, choices, action.help)
            seen.setdefault(flag, {})[verb] = looks
    assert set(seen["--device"]) == {"demo", "fuse", "worker", "evaluate", "train"}
    assert set(seen["--tiled"]) >= {"fuse", "show", "export", "worker", "evaluate"}
    for flag, by_verb in seen.items():
        looks = {value[:3] for value in by_verb.values()}
        assert len(looks) == 1, f"{flag} differs between verbs: {by_verb}"
    assert seen["--device"]["fuse"][:2] == ("auto", "DEVICE")


def test_method_choices_come_from_the_registry():
    from xfusion_bluesky.fusion.methods import METHOD_NAMES, METHODS

    verbs = _verbs()
    for verb in ("fuse", "worker", "demo"):
        assert tuple(_options(verbs[verb])["--method"].choices) == METHOD_NAMES
    assert tuple(_options(verbs["evaluate"])["--methods"].choices) == METHOD_NAMES
    train = _options(verbs["train"])["--method"]
    trainable = tuple(name for name, spec in METHODS.items() if spec.trainable)
    assert tuple(train.choices) == trainable == ("edvr_stf", "edvr", "edvr_stf_detail")
    assert train.default == "edvr_stf"
    assert train.metavar == "METHOD"


def test_bad_values_are_refused_while_parsing(capsys):
    parser = build_parser()
    for argv in (
        ["fuse", "abc", "--method", "nearest"],
        ["train", "--out", "x", "--method", "bicubic"],
        ["fuse", "abc", "--batch-size", "0"],
        ["worker", "--poll-s", "-1"],
        ["evaluate", "--hr-separation", "0"],
        ["train", "--out", "x", "--iterations", "400"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(argv)
        assert exit_info.value.code == 2, argv
    assert "invalid choice: 'nearest'" in capsys.readouterr().err


def test_evaluate_hr_separation_takes_periods_or_ends():
    args = build_parser().parse_args(["evaluate", "--hr-separation", "4", "ends"])
    assert args.hr_separation == [4, 0]


def test_catch_up_window_is_in_seconds_like_the_library():
    from xfusion_bluesky.callbacks.worker import CATCH_UP_S
    from xfusion_bluesky.cli.worker import DEFAULT_CATCH_UP_S

    assert DEFAULT_CATCH_UP_S == CATCH_UP_S
    parser = build_parser()
    assert parser.parse_args(["worker"]).catch_up_s is None  # the library's
    assert parser.parse_args(["worker", "--catch-up-s", "3600"]).catch_up_s == 3600
    assert parser.parse_args(["worker", "--catch-up-s", "all"]).catch_up_s == float(
        "inf"
    )


def test_export_offers_the_library_formats():
    from xfusion_bluesky.catalog.export import FORMATS
    from xfusion_bluesky.cli.export import FORMATS as OFFERED

    assert tuple(FORMATS) == OFFERED


def test_auto_device_is_cuda_only_where_torch_sees_one():
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert options.resolve_device("auto") == expected
    assert options.resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="--device must be auto, cpu, cuda"):
        options.resolve_device("gpu0")
