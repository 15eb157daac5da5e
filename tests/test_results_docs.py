"""docs/RESULTS.md's sweep comparisons (MiniLM: `results/wnut16-tuned/`, MPNet: `results/wnut16-mpnet/`) and the
README's results at a glance quote the committed summaries (rendered by `scripts/fewshot_sweep.py --summary_only`)
exactly: every chosen
rate and grid-edge mark, every score, every paired difference with its bootstrap interval and its bold (survives
Holm), and every interval quoted in prose. The numbers are copied by hand into prose-bearing tables; this is
what keeps a copying slip, or a summary re-rendered after more runs came in, from leaving a stale number.
And every relative link of the README and docs/ points at a file that exists."""

import re
from functools import cache
from pathlib import Path

import pytest

from dwatt.experiments.sweep.config import load_sweep_config
from dwatt.experiments.sweep.runner import plan_slots

ROOT = Path(__file__).resolve().parents[1]
#: docs/RESULTS.md section -> the sweep whose summary it quotes.
COMPARISONS = {"## The tuned comparison": "wnut16-tuned", "## The 12-layer comparison": "wnut16-mpnet"}
RESULTS = ROOT / "docs" / "RESULTS.md"
README = ROOT / "README.md"

NUMBER = r"[+-]?\d+\.\d"
DIFFERENCE = re.compile(rf"({NUMBER}) \[({NUMBER}), ({NUMBER})\]")
#: A summary's paired-difference cell: mean [t-interval] [bootstrap interval], bold where it survives Holm.
SUMMARY_DIFFERENCE = re.compile(rf"\**({NUMBER}) \[({NUMBER}), ({NUMBER})\] \[({NUMBER}), ({NUMBER})\]")
DISPLAY_NAMES = {"DWAtt (√d)": "dwatt_sqrt_d"}


def plain(text: str) -> str:
    return text.replace("−", "-").replace("**", "")


def section(text: str, heading: str) -> str:
    """The text under the first heading that starts with `heading`, up to the next heading of its level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(f"\n{heading}") + 1
    body = text.index("\n", start)
    end = re.search(rf"^#{{1,{level}}} ", text[body:], re.M)
    return text[start : body + end.start()] if end else text[start:]


def tables(text: str) -> list[tuple[str, list[list[str]]]]:
    """Each Markdown table with the last non-blank line before it (its caption): [(caption, rows of cells)]."""
    found, caption, rows = [], "", []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
            continue
        if rows:
            found.append((caption, rows))
            rows = []
        if line.strip():
            caption = line.strip()
    return found


def method_key(display: str) -> str:
    display = display.strip()
    if display in DISPLAY_NAMES:
        return DISPLAY_NAMES[display]
    return re.match(r"`(\w+)`", display).group(1)


def column_ks(header: list[str]) -> list[int | None]:
    return [int(m.group(1)) if (m := re.search(r"K ?= ?(\d+)", cell)) else None for cell in header]


def summary_path(sweep: str) -> Path:
    return ROOT / "results" / sweep / "summary.md"


@cache
def summary_regimes(sweep: str) -> dict[str, str]:
    text = summary_path(sweep).read_text()
    names = re.findall(r"^## Regime `(\w+)`", text, re.M)
    return {name: section(text, f"## Regime `{name}`") for name in names}


def summary_table(sweep: str, regime_text: str, caption_start: str) -> dict[str, dict[int, str]]:
    """{method: {K: cell}} of the regime's first table whose caption starts with `caption_start`."""
    for caption, rows in tables(regime_text):
        if caption.startswith(caption_start):
            ks = column_ks(rows[0])
            return {row[0]: {k: cell for k, cell in zip(ks, row) if k} for row in rows[1:]}
    raise AssertionError(f"{summary_path(sweep)}: no table captioned {caption_start!r}")


def docs_regime_sections() -> list[tuple[str, str, str, str]]:
    """(sweep, subsection heading, summary regime, text) for each ### subsection of each comparison."""
    found = []
    for comparison, sweep in COMPARISONS.items():
        body = section(RESULTS.read_text(), comparison)
        for heading in re.findall(r"^### .*$", body, re.M):
            text = section(body, heading)
            regime = re.search(r"regime `(\w+)`", text)
            assert regime, f'{RESULTS}: {heading!r} does not name its summary regime ("regime `name`")'
            found.append((sweep, heading, regime.group(1), text))
    return found


@pytest.mark.parametrize("comparison, sweep", COMPARISONS.items())
def test_each_docs_section_names_a_summary_regime_and_calls_it_complete_only_if_it_is(comparison, sweep):
    regimes = summary_regimes(sweep)
    sections = [(heading, regime) for swept, heading, regime, _ in docs_regime_sections() if swept == sweep]
    assert sections, f"{RESULTS}: no regime subsection under {comparison!r}"
    for heading, regime in sections:
        assert regime in regimes, f"{RESULTS} {heading!r}: {summary_path(sweep)} has no regime {regime!r}"
        runs_line = re.search(r"^Runs: .*$", regimes[regime], re.M)[0]
        if "complete" in heading:
            assert "(complete)" in runs_line, f"{RESULTS} {heading!r}: the summary says {runs_line!r}"


@pytest.mark.parametrize("sweep, heading, regime, text", docs_regime_sections(), ids=lambda v: str(v)[:24])
def test_score_table_quotes_the_chosen_rates_and_scores(sweep, heading, regime, text):
    summary = summary_regimes(sweep)[regime]
    rates = summary_table(sweep, summary, "Chosen learning rate")
    scores = summary_table(sweep, summary, "Test F1 at the last eval point")
    (_, rows), *_ = [(c, r) for c, r in tables(text) if r[0][0] == "method"]
    header, checked = rows[0], 0
    for row in rows[1:]:
        method = method_key(row[0])
        for cell, title, k in zip(row, header, column_ks(header)):
            if k is None:
                continue
            where = f"{RESULTS} {heading!r}, {row[0]} at K = {k}"
            if title.startswith("rate"):
                quoted = re.match(r"([\d.e-]+)\s*([↑↓]?)", cell)
                chosen = re.match(r"\*\*([\d.e-]+)\*\*\s*([↑↓]?)", rates[method][k])
                assert float(quoted.group(1)) == float(chosen.group(1)), f"{where}: rate {cell}, summary {chosen[0]}"
                assert quoted.group(2) == chosen.group(2), f"{where}: grid-edge mark {cell!r}, summary {chosen[0]!r}"
            else:
                assert scores[method][k].startswith(cell + " ("), f"{where}: {cell}, summary {scores[method][k]}"
            checked += 1
    assert checked >= 4


@pytest.mark.parametrize("sweep, heading, regime, text", docs_regime_sections(), ids=lambda v: str(v)[:24])
def test_difference_table_quotes_mean_bootstrap_interval_and_holm_bold(sweep, heading, regime, text):
    summary = summary_regimes(sweep)[regime]
    (_, rows), *_ = [(c, r) for c, r in tables(text) if r[0][0] == "difference"]
    header, checked = rows[0], 0
    for row in rows[1:]:
        minuend, subtrahend = (method_key(name) for name in row[0].split(" − "))
        against = summary_table(sweep, summary, f"vs `{subtrahend}`, last eval point")
        for cell, k in zip(row, column_ks(header)):
            if k is None:
                continue
            source = against[minuend][k]
            mean, _, _, boot_lo, boot_hi = SUMMARY_DIFFERENCE.match(source).groups()
            where = f"{RESULTS} {heading!r}, {row[0]} at K = {k}"
            assert DIFFERENCE.fullmatch(plain(cell)).groups() == (mean, boot_lo, boot_hi), (
                f"{where}: {cell}, summary {source}"
            )
            assert cell.startswith("**") == source.startswith("**"), f"{where}: bold {cell!r}, summary {source!r}"
            checked += 1
    assert checked >= 4


def quoted_intervals(text: str) -> set[tuple[str, str, str]]:
    return set(DIFFERENCE.findall(plain(text)))


@cache
def summary_intervals(*sweeps: str) -> frozenset[tuple[str, str, str]]:
    """(mean, low, high) of every t-interval and bootstrap interval in the sweeps' summaries."""
    found = set()
    for m in SUMMARY_DIFFERENCE.finditer("".join(summary_path(sweep).read_text() for sweep in sweeps)):
        found |= {(m[1], m[2], m[3]), (m[1], m[4], m[5])}
    return frozenset(found)


@pytest.mark.parametrize("comparison, sweep", COMPARISONS.items())
def test_every_interval_quoted_in_a_comparison_is_one_its_summary_gives(comparison, sweep):
    """A comparison quotes its own summary and, to set results side by side, those of the comparisons before it
    (the 12-layer section quotes MiniLM's); the README quotes any."""
    earlier = tuple(COMPARISONS.values())[: list(COMPARISONS).index(comparison) + 1]
    for where, text, sweeps in (
        (RESULTS, section(RESULTS.read_text(), comparison), earlier),
        (README, section(README.read_text(), "## Results at a glance"), tuple(COMPARISONS.values())),
    ):
        quoted = quoted_intervals(text)
        assert quoted, f"{where}: no interval quoted"
        stray = quoted - summary_intervals(*sweeps)
        assert not stray, f"{where}: intervals not in {[summary_path(s).parent.name for s in sweeps]}: {sorted(stray)}"


@pytest.mark.parametrize("comparison, sweep", COMPARISONS.items())
def test_the_status_line_counts_the_runs_and_run_time_the_summary_has(comparison, sweep):
    """While the sweep runs: "**Status: running** — N of the M" with N the summary's runs and M the config's plan.
    Once it is complete: "**Complete:** all M runs ..., T h of run time", T the summary's total."""
    text, summary = section(RESULTS.read_text(), comparison), summary_path(sweep).read_text()
    done = sum(int(runs) for runs in re.findall(r"^Runs: (\d+) of the \d+ ", summary, re.M))
    planned = len(plan_slots(load_sweep_config(ROOT / "configs" / "sweeps" / f"{sweep}.yaml")))
    running = re.search(r"\*\*Status: running\*\* — (\d+) of the (\d+)", text)
    if running:
        assert int(running[1]) == done, f"{RESULTS}: status says {running[0]}, {sweep} summary has {done}"
        assert int(running[2]) == planned, f"{RESULTS}: status says {running[0]}, {sweep}.yaml plans {planned}"
        return
    complete = re.search(r"\*\*Complete:\*\* all (\d+) runs .*?(\d+\.\d) h of run time", text, re.S)
    assert complete, f'{RESULTS}: neither "**Status: running** — N of the M" nor "**Complete:** all M runs"'
    assert int(complete[1]) == done == planned, f"{RESULTS}: {complete[0]!r}; summary {done}, plan {planned}"
    total = re.search(r"finished runs \((\d+\.\d) h of run time", summary)
    assert complete[2] == total[1], f"{RESULTS}: {complete[2]} h of run time, {sweep} summary {total[1]} h"


def test_every_count_of_the_12_layer_lora_runs_is_the_summarys():
    """A running sweep's LoRA count is quoted in the README and in RESULTS.md: both must move with the summary (the
    README still said 21 of 70 when 37 had landed)."""
    summary = summary_path("wnut16-mpnet").read_text()
    lora = re.search(r"^## Regime `lora`.*?^Runs: (\d+) of the (\d+) ", summary, re.M | re.S)
    for doc in (README, RESULTS):
        for quoted in re.finditer(r"LoRA runs are (\d+) of (\d+)|(\d+) of the (\d+) LoRA runs", doc.read_text()):
            counts = tuple(number for number in quoted.groups() if number)
            assert counts == lora.groups(), f"{doc.name}: {quoted[0]!r}; the summary has {lora[1]} of {lora[2]}"


def test_the_checks_catch_a_copying_slip():
    """The parsers find what they must: an interval end off by 0.1 in prose is flagged as not the summary's.

    The slipped interval is picked in a fixed order (a set's order varies with PYTHONHASHSEED) among those whose
    slip is not, by coincidence, another interval the summary gives."""
    intervals = summary_intervals(*COMPARISONS.values())
    slips = [(mean, low, f"{float(high) + 0.1:+.1f}") for mean, low, high in sorted(intervals)]
    slipped = next(slip for slip in slips if slip not in intervals)
    prose = f"a {slipped[0]} [{slipped[1]}, {slipped[2]}] gap".replace("-", "−")
    assert quoted_intervals(prose) - intervals == {slipped}
    assert quoted_intervals("a −2.9 [−5.6, −0.2] gap") == {("-2.9", "-5.6", "-0.2")}
    assert DIFFERENCE.fullmatch(plain("**+9.8** [+4.5, +14.9]")).groups() == ("+9.8", "+4.5", "+14.9")


def test_every_relative_link_and_image_in_the_docs_resolves():
    checked = 0
    for document in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        targets = re.findall(r"\]\(([^)\s]+)\)", document.read_text())
        relative = [target.split("#")[0] for target in targets if not re.match(r"[a-z]+:|#", target)]
        missing = [target for target in relative if not (document.parent / target).exists()]
        assert not missing, f"{document}: links to missing files {missing}"
        checked += len(relative)
    assert checked > 10
