"""The documentation holds: every name it shows resolves, every link points at a page,
and nothing in the repository refers to files outside it."""

import importlib
import re
from pathlib import Path

import pytest

import fastsnn

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
# dotted names, not commands (`python -m fastsnn.train`) and not private (`fastsnn._C`)
NAME = re.compile(r"(?<![-\w./])(?<!-m )(fastsnn(?:\.[A-Za-z][A-Za-z0-9_]*)+)")


def _names(text: str) -> list[str]:
    return sorted({m.group(1).rstrip(".") for m in NAME.finditer(text)})


def _attribute_chain(name: str):
    obj = fastsnn
    for part in name.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def _imported(name: str):
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(name)


def test_every_readme_name_resolves_after_import_fastsnn():
    names = _names((ROOT / "README.md").read_text())
    assert "fastsnn.energy.count_ops" in names and len(names) > 10
    missing = []
    for name in names:
        try:
            _attribute_chain(name)
        except AttributeError:
            missing.append(name)
    assert not missing, f"README names that `import fastsnn` does not provide: {missing}"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_name_in_the_docs_exists(page):
    missing = []
    for name in _names(page.read_text()):
        try:
            _imported(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"{page.name} names what does not exist: {missing}"


@pytest.mark.parametrize("page", DOCS + [ROOT / "README.md"], ids=lambda p: p.name)
def test_links_between_pages_resolve(page):
    for target in re.findall(r"\]\(([^)#:]+\.md)\)", page.read_text()):
        assert (page.parent / target).is_file(), f"{page.name} links to missing {target}"


def test_index_lists_every_page():
    index = (ROOT / "docs" / "index.md").read_text()
    for page in DOCS:
        if page.name != "index.md":
            assert f"]({page.name})" in index, page.name


def test_no_reference_to_files_outside_the_repository():
    offenders = []
    for folder in ("fastsnn", "kernels", "csrc", "tests", "docs", "examples", "bench"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".md", ".h", ".cpp", ".cu") or path == Path(
                    __file__):
                continue
            text = path.read_text(errors="replace")
            for word in ("SPEC.md", "DESIGN.md", "PAPERS_", "shared/background"):
                if word in text:
                    offenders.append(f"{path.relative_to(ROOT)}: {word}")
    for doc in ("README.md", "DEVELOPERS.md"):
        if "SPEC.md" in (ROOT / doc).read_text():
            offenders.append(doc)
    assert not offenders, offenders


def test_docstrings_point_at_pages_that_exist():
    for folder in ("fastsnn", "kernels", "csrc", "tests"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".h", ".cpp", ".cu"):
                for page in re.findall(r"docs/(\w+\.md)", path.read_text(errors="replace")):
                    assert (ROOT / "docs" / page).is_file(), f"{path}: docs/{page}"
