"""One evaluation run: sequences × sweeps × methods → results.csv, figures, report.md.

:func:`run_evaluation` is what ``xfusion-bluesky evaluate`` calls. It renders the
held-out sequences, fuses every (sequence, condition, method) the figures need
(runs already on disk under ``DIR/cache`` are read back, so a rerun resumes),
times every method at the paper's frame size, and writes to DIR:
``results.csv``, ``summary.json``, ``report.md`` and the PNG figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from xfusion_bluesky import __version__
from xfusion_bluesky.evaluation import figures
from xfusion_bluesky.evaluation.datasets import (
    CASES,
    HELD_OUT_SEED,
    Sequence,
    radiograph_sequences,
    synthetic_sequences,
    user_sequence,
)
from xfusion_bluesky.evaluation.report import write_report
from xfusion_bluesky.evaluation.summary import (
    SYNTHETIC,
    attention_samples,
    findings,
    noise_label,
    summarise,
)
from xfusion_bluesky.evaluation.sweeps import Evaluator, SweepPlan
from xfusion_bluesky.evaluation.tables import Table, concat, select, write_csv
from xfusion_bluesky.evaluation.timing import PAPER_SECONDS_PER_FRAME, time_methods
from xfusion_bluesky.fusion.baselines.bayesian import num_clusters
from xfusion_bluesky.fusion.model import default_model_path, load_model, model_id
from xfusion_bluesky.synthetic.scene import SCENE_VERSION

__all__ = ["METHODS", "EvaluationConfig", "UserInput", "quick_config", "run_evaluation"]

logger = logging.getLogger(__name__)

#: Methods compared, in table order.
METHODS = ("edvr_stf", "edvr", "bicubic", "bayesian")
#: Bumped whenever a cached run would no longer match what this code computes.
PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class UserInput:
    """A user's recording to evaluate instead of the built-in sequences.

    Attributes
    ----------
    lr, hr : str
        Frame files (``evaluation.datasets.load_frames``).
    hr_index : list of int or str
        LR frame of each HR frame, or a file holding them.
    truth : str or None
        Optional truth at every LR instant (HR size).
    lr_separations : tuple of int
    """

    lr: str
    hr: str
    hr_index: list[int] | str
    truth: str | None = None
    lr_separations: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate; defaults are the full run (≲ 1 h on a 2-core CPU).

    Attributes
    ----------
    families : tuple of str
        Scene families; the paper's fast "case 1" and slow "case 2" kinds are
        ``additive_manufacturing`` and ``friction_stir``.
    seeds : tuple of int
        Held-out scene seeds (≥ 2**31).
    num_frames : int
        LR instants per sequence (41: HR grids of 2, 10 and 20 all end on the
        last frame).
    hr_shape : (int, int)
        HR frame size of the synthetic sequences (LR is a quarter per axis).
    radiographs : Path or None
        Folder holding ``savu_i13_projections/``; None or missing: skipped.
    radiograph_sequences : int
    methods : tuple of str
    plan : SweepPlan
    timing_lr_shape : (int, int) or None
        LR size of the speed comparison (paper 100×256); None: no timing.
    timing_network_frames, timing_repeats : int
    device : str
    user : UserInput or None
        Evaluate this recording only.
    """

    families: tuple[str, ...] = (
        "additive_manufacturing",
        "friction_stir",
        "fast_front",
    )
    seeds: tuple[int, ...] = (HELD_OUT_SEED + 1, HELD_OUT_SEED + 2, HELD_OUT_SEED + 3)
    num_frames: int = 41
    hr_shape: tuple[int, int] = (128, 192)
    radiographs: Path | None = None
    radiograph_sequences: int = 2
    methods: tuple[str, ...] = METHODS
    plan: SweepPlan = field(default_factory=SweepPlan)
    timing_lr_shape: tuple[int, int] | None = (100, 256)
    timing_network_frames: int = 3
    timing_repeats: int = 3
    device: str = "cpu"
    user: UserInput | None = None

    def settings(self) -> dict[str, Any]:
        """Return the configuration as JSON-serialisable settings."""
        out = _jsonable(dataclasses.asdict(self))
        h, w = (n // 4 for n in self.hr_shape)
        out["bayesian_k"] = num_clusters(h, w)
        out["scene_version"] = SCENE_VERSION
        return out


def quick_config(**overrides: Any) -> EvaluationConfig:
    """Return the ``--quick`` configuration (a few minutes on a 2-core CPU).

    One seed of the fast and the slow family, 21 frames of HR 64×96, one
    radiograph sequence cropped to the same size, and the timing on one run of
    two network frames; every sweep and figure as in the full run.
    """
    quick = EvaluationConfig(
        families=("additive_manufacturing", "friction_stir"),
        seeds=(HELD_OUT_SEED + 1,),
        num_frames=21,
        hr_shape=(64, 96),
        radiograph_sequences=1,
        timing_network_frames=2,
        timing_repeats=1,
    )
    return replace(quick, **overrides)


def _jsonable(value: Any) -> Any:
    """Return ``value`` with paths as str, tuples as lists, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _load_models(methods: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the shipped weights of the network methods once."""
    models, info = {}, {}
    for method in methods:
        if method not in ("edvr_stf", "edvr"):
            continue
        path = default_model_path(method)
        network = load_model(path)
        models[method] = network
        info[method] = {
            "file": os.path.relpath(path, Path.cwd())
            if path.is_absolute()
            else str(path),
            "model_id": model_id(network),
            "parameters": sum(p.numel() for p in network.parameters()),
        }
    return models, info


def _sequences(config: EvaluationConfig) -> list[Sequence]:
    """Build the sequences of this run."""
    if config.user is not None:
        u = config.user
        return [user_sequence(u.lr, u.hr, u.hr_index, truth=u.truth)]
    sequences = synthetic_sequences(
        config.families,
        seeds=config.seeds,
        num_frames=config.num_frames,
        hr_shape=config.hr_shape,
    )
    if config.radiographs is not None and config.radiograph_sequences > 0:
        sequences += radiograph_sequences(
            config.radiographs,
            num_frames=config.num_frames,
            max_sequences=config.radiograph_sequences,
            hr_shape=config.hr_shape,
        )
    return sequences


def _user_plan(seq: Sequence, separations: tuple[int, ...]) -> SweepPlan:
    """Return the one 'sweep' of a user recording: its HR frames, no added noise."""
    index = seq.hr_index if seq.hr_index is not None else np.array([0])
    gap = int(np.diff(index).max()) if index.size > 1 else seq.num_frames - 1
    return SweepPlan(
        noise_db=(None,),
        hr_every=(gap,),
        lr_separations=separations,
        cluster_fractions=(),
        cluster_noise_db=(),
        base_hr_every=gap,
        base_lr_separation=separations[0],
    )


def _fingerprint(config: EvaluationConfig) -> str:
    """Hash of what every cached run depends on besides its condition and weights.

    The weights are not in it: each run file names its method's weights
    (:meth:`Evaluator.run_path`), so new weights of one network recompute only
    that network's runs.
    """
    key: dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "frames": config.num_frames,
        "hr_shape": list(config.hr_shape),
        "scene_version": SCENE_VERSION,
        "metrics": "8-bit; ssim uniform 7x7",
        "radiographs": config.radiograph_sequences,
    }
    if config.user is not None:
        files = [config.user.lr, config.user.hr, config.user.truth]
        key["user"] = [
            [f, os.path.getsize(f), os.path.getmtime(f)] for f in files if f
        ] + [str(config.user.hr_index)]
    text = json.dumps(key, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _groups(sequences: list[Sequence]) -> dict[str, str]:
    """Group → figure column title, in first-seen order."""
    titles: dict[str, str] = {}
    for seq in sequences:
        case = CASES.get(seq.group)
        titles.setdefault(seq.group, f"{seq.group}\n({case})" if case else seq.group)
    return titles


def _fuse_all(
    evaluator: Evaluator,
    sequences: list[Sequence],
    plans: dict[str, SweepPlan],
    methods: tuple[str, ...],
    progress: bool,
) -> Table:
    """Fuse or read back every run; return the per-frame table."""
    total = sum(len(plans[seq.name].jobs(methods)) for seq in sequences)
    parts = []
    with tqdm(total=total, desc="evaluate", unit="run", disable=not progress) as bar:
        for seq in sequences:
            for cond, method in plans[seq.name].jobs(methods):
                bar.set_postfix_str(f"{seq.name} {method} {cond.slug()}", refresh=False)
                parts.append(evaluator.rows(seq, cond, method))
                bar.update(1)
            evaluator.forget(seq)  # its LR frames at every noise level
    return concat(parts)


def _timing(
    config: EvaluationConfig, models: dict[str, Any], cache: Path, progress: bool
) -> tuple[dict[str, Any], bool]:
    """Time every method at the paper's frame size, or read the stored timing.

    Returns the timings and whether they were measured now.
    """
    if config.timing_lr_shape is None:
        return {}, False
    path = cache / "timing.json"
    key = {
        "models": {m: model_id(network) for m, network in models.items()},
        "lr_shape": list(config.timing_lr_shape),
        "frames": config.timing_network_frames,
        "repeats": config.timing_repeats,
        "methods": list(config.methods),
        "device": config.device,
    }
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return dict(stored["timing"]), False
    timing = time_methods(
        config.methods,
        models,
        lr_shape=config.timing_lr_shape,
        network_frames=config.timing_network_frames,
        repeats=config.timing_repeats,
        device=config.device,
        progress=progress,
    )
    path.write_text(json.dumps({"key": key, "timing": timing}, indent=1))
    return timing, True


def _draw(
    out: Path,
    table: Table,
    plan: SweepPlan,
    config: EvaluationConfig,
    groups: dict[str, str],
    summary: dict[str, Any],
) -> dict[str, str]:
    """Draw every figure this run has data for; return key → file name."""
    methods, drawn = config.methods, {}
    no_k = select(table, cluster_fraction=None)
    if len(plan.noise_db) > 1:
        mask = no_k & select(
            table, hr_every=plan.base_hr_every, lr_separation=plan.base_lr_separation
        )
        figures.metric_boxplots(
            out / "fig5_noise.png",
            table,
            mask,
            x_column="noise_db",
            x_values=plan.noise_db,
            x_labels=[noise_label(n).replace(" dB", "") for n in plan.noise_db],
            methods=methods,
            groups=groups,
            xlabel="LR image PSNR (dB)",
            title=f"Fig. 5 type: against LR noise (HR every {plan.base_hr_every}, "
            f"s = {plan.base_lr_separation})",
        )
        drawn["noise"] = "fig5_noise.png"
    names = {1: "fig6", 2: "figS3", 3: "figS4"}
    for sep in plan.lr_separations:
        name = f"{names.get(sep, 'fig6')}_hr_sampling_s{sep}.png"
        figures.metric_boxplots(
            out / name,
            table,
            no_k & select(table, noise_db=None, lr_separation=sep),
            x_column="hr_every",
            x_values=plan.hr_every,
            x_labels=["ends" if p == 0 else str(p) for p in plan.hr_every],
            methods=methods,
            groups=groups,
            xlabel="HR frame every … LR frames",
            title=f"{names.get(sep, 'Fig. 6').replace('fig', 'Fig. ')} type: against "
            f"HR down-sampling (no noise, LR separation s = {sep})",
        )
        drawn[f"hr_sep{sep}"] = name
    if "edvr_stf" in methods:
        samples = {g: attention_samples(table, plan, g) for g in groups}
        title = (
            f"EDVR-STF normalised attention, HR every {plan.base_hr_every}, no noise "
            "(mean, 25–75 % band)"
        )
        for key, draw, name in (
            ("attention", figures.attention_curves, "fig7_attention.png"),
            (
                "attention_hist",
                figures.attention_histograms,
                "figS5_attention_hist.png",
            ),
        ):
            draw(
                out / name,
                samples,
                groups=groups,
                hr_every=plan.base_hr_every,
                title=title,
            )
            drawn[key] = name
    if summary.get("timing"):
        h, w = config.timing_lr_shape or (0, 0)
        figures.timing_bars(
            out / "fig8_timing.png",
            summary["timing"],
            paper=PAPER_SECONDS_PER_FRAME,
            title=f"Fig. 8 type: LR {h}×{w} → HR {4 * h}×{4 * w}, "
            f"{next(iter(summary['timing'].values()))['device']}",
        )
        drawn["timing"] = "fig8_timing.png"
    if summary["clusters"]:
        curves: dict[str, dict[str, Any]] = {}
        for row in summary["clusters"]:
            panel = f"LR {noise_label(row['noise_db'])}"
            group = curves.setdefault(panel, {}).setdefault(row["group"], ([], []))
            group[0].append(row["cluster_fraction"])
            group[1].append(row["psnr_db"])
        figures.cluster_fraction_plot(
            out / "figS2_clusters.png",
            {
                p: {g: (np.array(f), np.array(v)) for g, (f, v) in by.items()}
                for p, by in curves.items()
            },
            groups=groups | {SYNTHETIC: "all synthetic"},
            title=f"Fig. S2 type: Bayesian PSNR (HR every {plan.base_hr_every})",
        )
        drawn["clusters"] = "figS2_clusters.png"
    return drawn


def _log_invocation(out: Path, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Append this invocation to ``out/invocations.json``; return them all.

    A resumed evaluation is several invocations; the report lists each one's
    wall time and how many runs it computed, so the total cost stays visible.
    """
    path = out / "invocations.json"
    entries = json.loads(path.read_text()) if path.is_file() else []
    entries.append(_jsonable(entry))
    path.write_text(json.dumps(entries, indent=1) + "\n")
    return list(entries)


def run_evaluation(
    config: EvaluationConfig,
    out: str | Path,
    *,
    progress: bool = True,
    command: str = "xfusion-bluesky evaluate",
) -> dict[str, Any]:
    """Evaluate, and write results.csv, summary.json, report.md and figures to ``out``.

    Parameters
    ----------
    config : EvaluationConfig
    out : path
        Output folder; its ``cache/`` holds every computed run, so running
        again with the same settings skips what is done.
    progress : bool
        tqdm bars on stderr.
    command : str
        The command line, quoted in the report.

    Returns
    -------
    dict
        ``summary.json``'s content.
    """
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models, model_info = _load_models(config.methods)
    cache = out / "cache" / _fingerprint(config)
    cache.mkdir(parents=True, exist_ok=True)
    sequences = _sequences(config)
    if not sequences:
        raise ValueError("nothing to evaluate: no scene families and no radiographs")
    if config.user is not None:
        plan = _user_plan(sequences[0], config.user.lr_separations)
        config = replace(config, plan=plan)
    plan = config.plan.for_frames(min(s.num_frames for s in sequences))
    plans = {s.name: plan for s in sequences}
    model_ids = {m: info["model_id"] for m, info in model_info.items()}
    evaluator = Evaluator(cache, models, device=config.device, model_ids=model_ids)
    table = _fuse_all(evaluator, sequences, plans, config.methods, progress)
    write_csv(table, out / "results.csv")
    groups = _groups(sequences)
    summary: dict[str, Any] = summarise(table, plan, config.methods, list(groups))
    summary["findings"] = findings(summary, plan, config.methods, list(groups))
    summary["timing"], timed = _timing(config, models, cache, progress)
    summary["figures"] = _draw(out, table, plan, config, groups, summary)
    settings = config.settings() | {"plan": _jsonable(dataclasses.asdict(plan))}
    summary |= {
        "command": command,
        "created": time.strftime("%Y-%m-%d %H:%M %Z"),
        "runtime_s": time.perf_counter() - start,
        "host": {
            "description": f"{platform.machine()}, {os.cpu_count()} CPU(s)",
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "xfusion_bluesky": __version__,
        },
        "settings": settings,
        "models": model_info,
        "sequences": [
            {
                "name": s.name,
                "group": s.group,
                "shape": [s.num_frames, *s.truth.shape[1:]]
                if s.truth is not None
                else [s.num_frames, *(s.hr.shape[1:] if s.hr is not None else [])],
                "source": s.source,
            }
            for s in sequences
        ],
        "rows": int(next(iter(table.values())).size),
        "fuse_seconds": sum(evaluator.run_seconds.values()),
        "runs": len(evaluator.run_seconds),
        "frames_scored": int(
            sum(r["frames"] for r in summary["noise"] if r["group"] == SYNTHETIC)
        ),
    }
    summary["invocations"] = _log_invocation(
        out,
        {
            "created": summary["created"],
            "command": command,
            "runtime_s": summary["runtime_s"],
            "runs_computed": len(evaluator.computed),
            "timing_computed": timed,
        },
    )
    summary = _jsonable(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_report(
        out / "report.md", summary, settings=settings, figures=summary["figures"]
    )
    logger.info("evaluation written to %s in %.0f s", out, summary["runtime_s"])
    return summary
