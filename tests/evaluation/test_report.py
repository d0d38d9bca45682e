import json
from pathlib import Path

from xfusion_bluesky.evaluation.report import write_report

DOCS = Path(__file__).resolve().parents[2] / "docs" / "evaluation"


def _old_keys(summary):
    """The summary as written before the HR separation had one name."""
    old = dict(summary)
    rows = old.pop("hr_separation")
    old["hr_sampling"] = [
        {("hr_every" if k == "hr_separation" else k): v for k, v in row.items()}
        for row in rows
    ]
    plan = dict(old["settings"]["plan"])
    plan["hr_every"] = plan.pop("hr_separations")
    plan["base_hr_every"] = plan.pop("base_hr_separation")
    old["settings"] = {**old["settings"], "plan": plan}
    return old


def test_the_shipped_report_is_what_its_summary_gives(tmp_path):
    summary = json.loads((DOCS / "summary.json").read_text())
    for name in summary["figures"].values():
        assert (DOCS / name).is_file()
    path = write_report(
        tmp_path / "report.md",
        summary,
        settings=summary["settings"],
        figures=summary["figures"],
    )
    assert path.read_text() == (DOCS / "report.md").read_text()


def test_a_summary_with_the_old_keys_gives_the_same_report(tmp_path):
    summary = json.loads((DOCS / "summary.json").read_text())
    old = _old_keys(summary)
    assert "hr_separation" not in old
    assert "hr_separation" not in old["hr_sampling"][0]
    new_path, old_path = tmp_path / "new.md", tmp_path / "old.md"
    write_report(new_path, summary, settings=summary["settings"], figures={})
    write_report(old_path, old, settings=old["settings"], figures={})
    text = old_path.read_text()
    assert text == new_path.read_text()
    assert "| group | HR separation | EDVR-STF | EDVR | bicubic | Bayesian |" in text
    assert "HR separation 20, s = 1" in text
