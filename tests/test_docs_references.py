"""Every test the README and docs/ name exists: `tests/<file>.py::test_name` anywhere, and the letter-tagged names of
docs/RELIABILITY.md's tables (`R `test_...`` is a test of tests/test_reliability.py, per its legend). A test
renamed or removed would otherwise leave a row pointing at nothing (row 36 named a sweep test renamed rounds ago).
A name ending in `...` is an abbreviation: some test of that file must start with it."""

import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELIABILITY = ROOT / "docs" / "RELIABILITY.md"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUALIFIED = re.compile(r"(tests/[\w/]+\.py)::(test_\w+(?:\.\.\.)?)")
TAG_OR_NAME = re.compile(r"\b([A-Z]) (?=`)|`(test_\w+(?:\.\.\.)?)`")


@cache
def defined_tests(path: Path) -> frozenset[str]:
    return frozenset(re.findall(r"^\s*(?:async )?def (test_\w+)\(", path.read_text(), re.M))


def found(path: Path, name: str) -> bool:
    if name.endswith("..."):
        return any(test.startswith(name[:-3]) for test in defined_tests(path))
    return name in defined_tests(path)


def reliability_legend() -> dict[str, Path]:
    """`tests/test_reliability.py` (R), ... -> {"R": path}."""
    legend = dict(re.findall(r"`(tests/\w+\.py)` \(([A-Z])\)", RELIABILITY.read_text()))
    return {letter: ROOT / path for path, letter in legend.items()}


def tagged_names(text: str, legend: dict[str, Path]) -> list[tuple[int, Path, str]]:
    """(line, test file, name) of each test name in a table row's cells, attributed to the last letter before it."""
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            continue
        letter = None
        for tag, name in TAG_OR_NAME.findall(line):
            if tag:
                letter = tag if tag in legend else None
            elif letter:
                names.append((number, legend[letter], name))
    return names


def test_every_qualified_test_name_in_the_docs_exists():
    checked = 0
    for document in DOCUMENTS:
        for number, line in enumerate(document.read_text().splitlines(), 1):
            for path, name in QUALIFIED.findall(line):
                where = f"{document.relative_to(ROOT)}:{number}"
                assert (ROOT / path).is_file(), f"{where}: {path} does not exist"
                assert found(ROOT / path, name), f"{where}: {path} has no test {name}"
                checked += 1
    assert checked >= 10


def test_every_letter_tagged_test_in_reliability_exists():
    legend = reliability_legend()
    assert set(legend) >= {"R", "F", "P", "S", "M", "D", "C"}, f"{RELIABILITY}: legend {sorted(legend)}"
    names = tagged_names(RELIABILITY.read_text(), legend)
    missing = [f"line {number}: {path.name} has no {name}" for number, path, name in names if not found(path, name)]
    assert not missing, f"{RELIABILITY}: " + "; ".join(missing)
    assert len(names) >= 100


def test_the_parsers_find_a_renamed_test():
    legend = reliability_legend()
    row = "| 1 | a case | what happens | R `test_bad_config_arguments_name_the_field`, `test_no_such_test_anywhere` |"
    assert [name for _, _, name in tagged_names(row, legend)] == [
        "test_bad_config_arguments_name_the_field",
        "test_no_such_test_anywhere",
    ]
    assert found(legend["R"], "test_bad_config_arguments_name_the_field")
    assert not found(legend["R"], "test_no_such_test_anywhere")
    assert found(legend["M"], "test_own_1_2_...")
    assert QUALIFIED.findall("see `tests/test_sweep.py::test_x_...`") == [("tests/test_sweep.py", "test_x_...")]
