"""Docs link only to files that exist; no file cites an issue or an outside path."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# [text](target) and ![alt](target), target up to whitespace or ')'; [label]: target.
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")

# An issue number in prose ("issue N", "issue-N", "issue #N") or as "(#N)", and
# the sibling folder outside the repository; this file must not match itself.
FORBIDDEN = re.compile(r"[Ii]ssues?[ -]?#?[0-9]|\(#[0-9]+\)|\.\./shared")
CHECKED_SUFFIXES = {".md", ".py", ".toml", ".json"}
SKIPPED_DIRS = {".venv", ".git", "tests/data"}


def markdown_files() -> list[Path]:
    """README.md, models/README.md and every Markdown page under docs/."""
    pages = [REPO / "README.md", REPO / "models" / "README.md"]
    return [*pages, *sorted((REPO / "docs").rglob("*.md"))]


def heading_anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, '-' for ' '."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#{1,6}\s+(.*?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def broken(page: Path, target: str) -> bool:
    """True if ``target`` (relative to ``page``) names no file, or no heading in it."""
    name, _, anchor = target.partition("#")
    path = (page.parent / name).resolve() if name else page
    if not path.exists():
        return True
    return bool(anchor) and path.suffix == ".md" and anchor not in heading_anchors(path)


def relative_targets(text: str) -> list[str]:
    """Link targets of a Markdown text that point into the repository."""
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def repository_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored files; a plain walk without git."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.splitlines()
        paths = [REPO / name for name in listed]
    except (OSError, subprocess.SubprocessError):
        paths = [p for p in REPO.rglob("*") if p.is_file()]
    return [
        p
        for p in paths
        if p.suffix in CHECKED_SUFFIXES
        and p.is_file()
        and not any(
            p.relative_to(REPO).as_posix().startswith(d + "/") for d in SKIPPED_DIRS
        )
    ]


def test_relative_targets_ignore_urls_and_code():
    text = (
        "[a](docs/x.md#part) ![b](img.png) [c](https://example.org) [d](#top)\n"
        "`[e](inline.md)`\n```\n[f](fenced.md)\n```\n[g]: ref.md\n"
    )
    assert relative_targets(text) == ["docs/x.md#part", "img.png", "#top", "ref.md"]


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    targets = relative_targets(page.read_text(encoding="utf-8"))
    missing = [t for t in targets if broken(page, t)]
    assert not missing, f"{page.relative_to(REPO)}: no such file or heading: {missing}"


def test_broken_names_missing_files_and_headings(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Fusion speed and `memory`\n\n```\n# not a heading\n```\n")
    assert not broken(page, "page.md#fusion-speed-and-memory")
    assert not broken(page, "#fusion-speed-and-memory")
    assert broken(page, "#not-a-heading")
    assert broken(page, "other.md")


def test_forbidden_pattern_catches_issue_numbers_and_outside_paths():
    issue, hash_, shared = "issue", "(#", "../" + "shared"
    for text in (
        f"see {issue} 5",
        f"({issue}-4)",
        f"{issue}s #12",
        hash_ + "3)",
        shared,
    ):
        assert FORBIDDEN.search(text), text
    for text in ("nearest HS frame (#4, at UHS frame 64)", "tissue", "shared/"):
        assert not FORBIDDEN.search(text), text


def test_no_file_refers_to_issue_numbers_or_outside_paths():
    hits = []
    for path in repository_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines()):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(REPO)}:{number + 1}: {line.strip()}")
    assert not hits, "\n".join(hits)
