"""Every `<file>.md §N` citation in the repository names a file of the repository and a section heading in it."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg"}

# A Markdown file name (optionally as a Markdown link), then one or more section numbers: "§3", "§2–§4, §7".
CITATION = re.compile(r"(?P<file>[\w./-]+\.md)(?:\]\([^)\s]*\))?\s*(?P<sections>§\s?\d+(?:\.\d+)*"
                      r"(?:\s*(?:[–-]|,|and)\s*§\s?\d+(?:\.\d+)*)*)")
SECTION = re.compile(r"§\s?(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
# Notes that once lived outside the repository, in folders its readers cannot see (a citation of any other file
# outside it fails the test above: it does not resolve).
OUTSIDE = re.compile(r"shared/docs|stack[- ]notes|`shared` notes")
THIS_FILE = Path(__file__).resolve()


def repository_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the repository's file list is unknown")
    names = [ROOT / name for name in listed]
    return [path for path in names if path.is_file() and path.resolve() != THIS_FILE
            and (path.suffix in TEXT_SUFFIXES or path.parent.name == ".ci")]


def headings(path: Path) -> set[str]:
    return set(HEADING.findall(path.read_text()))


def citations(files: list[Path]):
    """(citing file, line number, cited file as written, its resolved path or None, section numbers)."""
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for match in CITATION.finditer(line):
                name = match["file"]
                candidates = [(path.parent / name).resolve(), (ROOT / name).resolve()]
                cited = next((c for c in candidates if c.is_file() and c.is_relative_to(ROOT)), None)
                yield path, number, name, cited, SECTION.findall(match["sections"])


def test_citations_name_repository_files_and_existing_sections():
    files = repository_files()
    found = list(citations(files))
    assert len(found) > 25  # the learner's docstrings cite docs/method.md throughout
    problems = []
    for path, number, name, cited, sections in found:
        where = f"{path.relative_to(ROOT)}:{number}"
        if cited is None:
            problems.append(f"{where}: {name} is not a file of the repository")
            continue
        missing = [section for section in sections if section not in headings(cited)]
        if missing:
            problems.append(f"{where}: {name} has no section {', '.join(missing)}")
    assert not problems, "\n".join(problems)


def test_section_references_inside_docs_point_to_their_own_headings():
    problems = []
    for path in (ROOT / "docs").glob("*.md"):
        own = headings(path)
        text = CITATION.sub("", path.read_text())  # references to other files are checked above
        missing = sorted(set(SECTION.findall(text)) - own, key=lambda s: [int(p) for p in s.split(".")])
        if missing:
            problems.append(f"docs/{path.name}: no section {', '.join(missing)}")
    assert not problems, "\n".join(problems)


def test_nothing_cites_notes_outside_the_repository():
    hits = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for path in repository_files()
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if OUTSIDE.search(line)]
    assert not hits, "\n".join(hits)


def test_readme_links_the_method_page():
    assert "(docs/method.md)" in (ROOT / "README.md").read_text()


def test_readme_says_what_the_quickstart_budget_is():
    """The README's 'what the quickstart's numbers mean' paragraph states the spec's and the preset's budgets."""
    import yaml

    from erdiff.presets import PRESETS

    spec = yaml.safe_load((ROOT / "tune" / "configs" / "quickstart.yaml").read_text())
    train, agent = spec["config"]["train"], spec["config"]["agent"]
    preset = PRESETS["toy"]["train"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert (f"networks of {agent['hidden_dim']} units, M = {agent['num_critics']} critics and "
            f"{train['epochs'] * train['steps_per_epoch']} gradient steps per run (the toy preset trains "
            f"{preset['epochs'] * preset['steps_per_epoch']:,})") in readme
    assert "smoke test of the system, not a result" in readme
