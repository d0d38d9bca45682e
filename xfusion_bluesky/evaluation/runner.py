"""One evaluation run: sequences × sweeps × methods → results.csv, figures, report.md.

:func:`run_evaluation` is what ``xfusion-bluesky evaluate`` calls. It renders the
held-out sequences, fuses every (sequence, condition, method) the figures need
(runs already on disk under ``DIR/cache`` are read back, so a rerun resumes),
times every method at the paper's frame size, and writes to DIR:
``results.csv``, ``summary.json``, ``report.md`` and the PNG figures. What it
covers is an :class:`~xfusion_bluesky.evaluation.config.EvaluationConfig`; which
figures it draws, :mod:`xfusion_bluesky.evaluation.drawing`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from xfusion_bluesky import __version__
from xfusion_bluesky.evaluation.config import EvaluationConfig, fingerprint, jsonable
from xfusion_bluesky.evaluation.datasets import (
    CASES,
    Sequence,
    radiograph_sequences,
    shown_path,
    synthetic_sequences,
    user_sequence,
)
from xfusion_bluesky.evaluation.drawing import draw_figures
from xfusion_bluesky.evaluation.findings import findings
from xfusion_bluesky.evaluation.report import write_report
from xfusion_bluesky.evaluation.summary import SYNTHETIC, summarise
from xfusion_bluesky.evaluation.sweeps import Evaluator, SweepPlan
from xfusion_bluesky.evaluation.tables import Table, concat, write_csv
from xfusion_bluesky.evaluation.timing import time_methods
from xfusion_bluesky.fusion.methods import method_spec
from xfusion_bluesky.fusion.model.loader import load_network

__all__ = ["run_evaluation"]

logger = logging.getLogger(__name__)


def _load_models(methods: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the shipped weights of the methods that have a network, once."""
    models, info = {}, {}
    for method in methods:
        if not method_spec(method).trainable:
            continue
        network, loaded = load_network(method)
        if network is None:  # a method with a network always loads one
            raise RuntimeError(f"no network loaded for method {method!r}")
        models[method] = network
        info[method] = {
            "file": shown_path(loaded["path"]),
            "model_id": loaded["sha256"],
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
    if config.radiographs is None or config.radiograph_sequences == 0:
        logger.info("real radiographs not asked for: skipped")
    else:
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
    widest = int(np.diff(index).max()) if index.size > 1 else seq.num_frames - 1
    return SweepPlan(
        noise_db=(None,),
        hr_separations=(widest,),
        lr_separations=separations,
        cluster_fractions=(),
        cluster_noise_db=(),
        base_hr_separation=widest,
        base_lr_separation=separations[0],
    )


def _plan(
    config: EvaluationConfig, sequences: list[Sequence]
) -> tuple[EvaluationConfig, SweepPlan]:
    """Return the config (a user recording's plan in place) and the plan to run."""
    if not sequences:
        raise ValueError("nothing to evaluate: no scene families and no radiographs")
    if config.user is not None:
        plan = _user_plan(sequences[0], config.user.lr_separations)
        config = replace(config, plan=plan)
    return config, config.plan.for_frames(min(s.num_frames for s in sequences))


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
    config: EvaluationConfig,
    models: dict[str, Any],
    model_ids: dict[str, str],
    cache: Path,
    progress: bool,
) -> tuple[dict[str, Any], bool]:
    """Time every method at the paper's frame size, or read the stored timing.

    Returns the timings and whether they were measured now.
    """
    if config.timing_lr_shape is None:
        return {}, False
    path = cache / "timing.json"
    key = {
        "models": dict(model_ids),
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


def _log_invocation(
    out: Path, summary: dict[str, Any], *, runs_computed: int, timing_computed: bool
) -> list[dict[str, Any]]:
    """Append this invocation to ``out/invocations.json``; return them all.

    A resumed evaluation is several invocations; the report lists each one's
    wall time and how many runs it computed, so the total cost stays visible.
    """
    entry = {
        "created": summary["created"],
        "command": summary["command"],
        "runtime_s": summary["runtime_s"],
        "runs_computed": runs_computed,
        "timing_computed": timing_computed,
    }
    path = out / "invocations.json"
    entries = json.loads(path.read_text()) if path.is_file() else []
    entries.append(jsonable(entry))
    path.write_text(json.dumps(entries, indent=1) + "\n")
    return list(entries)


def _host() -> dict[str, Any]:
    """Describe the machine and software versions of this invocation."""
    return {
        "description": f"{platform.machine()}, {os.cpu_count()} CPU(s)",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "xfusion_bluesky": __version__,
    }


def _describe(sequences: list[Sequence]) -> list[dict[str, Any]]:
    """Name, group, (t, h, w) shape and source of every sequence."""
    return [
        {
            "name": s.name,
            "group": s.group,
            "shape": [s.num_frames, *s.truth.shape[1:]]
            if s.truth is not None
            else [s.num_frames, *(s.hr.shape[1:] if s.hr is not None else [])],
            "source": s.source,
        }
        for s in sequences
    ]


def _provenance(
    command: str,
    start: float,
    settings: dict[str, Any],
    model_info: dict[str, Any],
    sequences: list[Sequence],
) -> dict[str, Any]:
    """Command, time, host, settings, weights and sequences of this invocation."""
    return {
        "command": command,
        "created": time.strftime("%Y-%m-%d %H:%M %Z"),
        "runtime_s": time.perf_counter() - start,
        "host": _host(),
        "settings": settings,
        "models": model_info,
        "sequences": _describe(sequences),
    }


def _counts(
    table: Table, evaluator: Evaluator, summary: dict[str, Any]
) -> dict[str, Any]:
    """Rows, fusion time, runs and scored synthetic frames of this evaluation."""
    return {
        "rows": int(next(iter(table.values())).size),
        "fuse_seconds": sum(evaluator.run_seconds.values()),
        "runs": len(evaluator.run_seconds),
        "frames_scored": int(
            sum(r["frames"] for r in summary["noise"] if r["group"] == SYNTHETIC)
        ),
    }


def _write_outputs(
    out: Path, summary: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    """Write ``summary.json`` and ``report.md``; return the summary as written."""
    summary = jsonable(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_report(
        out / "report.md", summary, settings=settings, figures=summary["figures"]
    )
    return summary


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
    cache = out / "cache" / fingerprint(config)
    cache.mkdir(parents=True, exist_ok=True)
    sequences = _sequences(config)
    config, plan = _plan(config, sequences)
    model_ids = {m: info["model_id"] for m, info in model_info.items()}
    evaluator = Evaluator(cache, models, device=config.device, model_ids=model_ids)
    plans = {s.name: plan for s in sequences}
    table = _fuse_all(evaluator, sequences, plans, config.methods, progress)
    write_csv(table, out / "results.csv")
    groups = _groups(sequences)
    summary: dict[str, Any] = summarise(table, plan, config.methods, list(groups))
    summary["findings"] = findings(summary, plan, config.methods, list(groups))
    summary["timing"], timed = _timing(config, models, model_ids, cache, progress)
    summary["figures"] = draw_figures(
        out,
        table,
        plan,
        summary,
        methods=config.methods,
        groups=groups,
        timing_lr_shape=config.timing_lr_shape,
    )
    settings = config.settings() | {"plan": jsonable(dataclasses.asdict(plan))}
    summary |= _provenance(command, start, settings, model_info, sequences)
    summary |= _counts(table, evaluator, summary)
    summary["invocations"] = _log_invocation(
        out, summary, runs_computed=len(evaluator.computed), timing_computed=timed
    )
    summary = _write_outputs(out, summary, settings)
    logger.info("evaluation written to %s in %.0f s", out, summary["runtime_s"])
    return summary
