"""The layer analysis's Markdown report: tables and findings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..stats import spearman
from .plots import plot_ablation, plot_first_k, plot_sentence_heatmaps, plot_type_profiles
from .probes import FULL, LayerAnalysis, first_k_name, truncation_note
from .profiles import AblationRow, Profile, ablation_rows, correctness_profiles, pick_heatmap_sentences, type_profiles

#: Every figure a report can show, in the order the report shows them. A report folder holds only those its
#: report.md shows: `write_report` removes the others (left by an earlier report of the same checkpoint).
REPORT_FIGURES = ("sentence_heatmaps.png", "type_profiles.png", "ablation.png", "first_k.png")


def _points(value: float) -> str:
    """An F1 difference in points, signed."""
    return f"{value * 100:+.1f}"


def _interval(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f"[{interval[0] * 100:+.1f}, {interval[1] * 100:+.1f}]"


def _weights_table(profiles: Sequence[Profile], layer_indices: Sequence[int], first_column: str) -> list[str]:
    """Markdown table of profiles; the largest weight of each row in bold."""
    header = f"| {first_column} | words | " + " | ".join(str(layer) for layer in layer_indices) + " | peak |"
    lines = [header, "|" + "---|" * (len(layer_indices) + 3)]
    for profile in profiles:
        if not profile.count:
            lines.append(f"| {profile.name} | 0 | " + " | ".join("" for _ in layer_indices) + " | |")
            continue
        peak = int(np.argmax(profile.mean))
        cells = [f"**{value:.3f}**" if i == peak else f"{value:.3f}" for i, value in enumerate(profile.mean)]
        lines.append(f"| {profile.name} | {profile.count} | " + " | ".join(cells) + f" | {layer_indices[peak]} |")
    return lines


def _intervals_said(bootstrap_samples: int) -> str:
    """How the report's intervals were made, with the real number of resamples."""
    if not bootstrap_samples:
        return "No intervals (`--bootstrap_samples 0`)."
    return f"Intervals are 95% paired bootstrap intervals over sentences ({bootstrap_samples:,} resamples)."


def _layer_list(layers: Sequence[int]) -> str:
    return ", ".join(str(layer) for layer in layers) if layers else "none"


def profile_findings(result: LayerAnalysis, profiles: Sequence[Profile], correctness: Sequence[Profile]) -> list[str]:
    """Findings about the weight maps, in words: which layers entity types draw from more than ``O`` does."""
    layers = result.layer_indices
    reference = next(profile for profile in profiles if profile.name == "O")
    entity_profiles = [profile for profile in profiles if profile.name != "O"]
    if not entity_profiles:
        return [f"`O` words draw most from layer {layers[int(np.argmax(reference.mean))]}; no entity words."]
    by_layer: dict[int, list[str]] = {}
    for profile in entity_profiles:
        excess = profile.mean - reference.mean
        by_layer.setdefault(layers[int(np.argmax(excess))], []).append(profile.name)
    parts = [
        f"layer {layer} for {', '.join(names)}"
        for layer, names in sorted(by_layer.items(), key=lambda item: -len(item[1]))
    ]
    entity_weights = result.words.weights[np.array([tag != "O" for tag in result.words.gold])]
    entity_mean = entity_weights.mean(axis=0)
    top = int(np.argmax(entity_mean - reference.mean))
    o_peak = int(np.argmax(reference.mean))
    findings = [
        f"Entity words and `O` words draw from different depths. `O` words ({reference.count}) put most weight on "
        f"layer {layers[o_peak]} ({reference.mean[o_peak]:.3f}); entity words ({len(entity_weights)}) put "
        f"{entity_mean[top]:.3f} on layer {layers[top]} against {reference.mean[top]:.3f} for `O`. The layer each "
        f"type over-weights most relative to `O`: {'; '.join(parts)}."
    ]
    right, wrong, o_right, o_wrong = (profile.mean[top] if profile.count else float("nan") for profile in correctness)
    counts = [profile.count for profile in correctness]
    finding = (
        f"On layer {layers[top]}: entity words tagged right {right:.3f} (n={counts[0]}), tagged wrong "
        f"{wrong:.3f} (n={counts[1]}); `O` words tagged right {o_right:.3f} (n={counts[2]}), tagged as an entity "
        f"{o_wrong:.3f} (n={counts[3]})."
    )
    if counts[3] and counts[2] and abs(o_wrong - right) < abs(o_wrong - o_right):
        finding += (
            f" `O` words the model wrongly tags as entities draw from layer {layers[top]} like entity words do: "
            "the weight follows the predicted tag rather than the gold one."
        )
    findings.append(finding)
    return findings


def ablation_findings(result: LayerAnalysis, rows: Sequence[AblationRow]) -> list[str]:
    """Findings about the ablation: the largest drop, which changes are significant, where mass and effect disagree."""
    if not rows:
        return []
    full = result.metrics[FULL]
    full_predicted = int(result.entity_counts[FULL][:, 1].sum())
    worst = max(rows, key=lambda row: -row.delta)
    drops = [row.layer for row in rows if row.significant and row.delta < 0]
    gains = [row.layer for row in rows if row.significant and row.delta > 0]
    text = (
        f"Ablation: the largest F1 drop comes from masking layer {worst.layer} ({_points(worst.delta)} points, "
        f"95% interval {_interval(worst.interval)}). Significant drops (interval below 0): layers "
        f"{_layer_list(drops)}; significant gains (masking helps): layers {_layer_list(gains)}."
    )
    findings = [text]
    for row in rows:
        if row.disagreement:
            text = (
                f"Mass and effect disagree for layer {row.layer} ({row.disagreement}): rank {row.mass_rank} by mass "
                f"on entity words ({row.mass_entity:.3f}), rank {row.drop_rank} by F1 drop "
                f"({_points(row.delta)} {_interval(row.interval)}; precision {full['precision']:.3f} -> "
                f"{row.precision:.3f}, recall {full['recall']:.3f} -> {row.recall:.3f}, "
                f"{full_predicted} -> {row.predicted_entities} predicted entities)."
            )
            if not row.significant:
                text += " The F1 change is within the 95% interval of no change: this may be noise."
            findings.append(text)
    return findings


def first_k_findings(result: LayerAnalysis) -> list[str]:
    """Findings about first-k inference: the shallowest k whose F1 is not significantly below the full model."""
    ks = [k for k in result.first_ks if k < result.num_layers]
    if not ks:
        return []
    full = result.f1(FULL)
    safe = [k for k in ks if result.intervals.get(first_k_name(k), (0.0, 0.0))[1] >= 0]
    speed = (lambda k: f", {result.timing.speedup(k):.2f}x as fast") if result.timing else (lambda k: "")
    if not safe:
        k = max(ks)
        return [
            f"First-k inference: every k < {result.num_layers} loses F1 significantly; the deepest, k={k}, gives "
            f"{result.f1(first_k_name(k)):.3f} ({_points(result.f1(first_k_name(k)) - full)}){speed(k)}."
        ]
    k = min(safe)
    text = (
        f"First-k inference: k={k} is the shallowest whose F1 is not significantly below the full model: "
        f"{result.f1(first_k_name(k)):.3f} ({_points(result.f1(first_k_name(k)) - full)} points, "
        f"{_interval(result.intervals.get(first_k_name(k)))}){speed(k)}."
    )
    if k - 1 in ks:
        shallower = first_k_name(k - 1)
        text += f" One layer fewer (k={k - 1}) costs {_points(result.f1(shallower) - full)} points{speed(k - 1)}."
    return [text]


def write_report(
    result: LayerAnalysis,
    output_dir: str | Path,
    title: str,
    description: Sequence[str] = (),
    num_heatmaps: int = 4,
) -> Path:
    """Write ``report.md`` and the figures of a `LayerAnalysis` into `output_dir`; return the report's path.

    `description`: Markdown lines that say what was analysed and how it was produced (put under the title).
    Figures of `REPORT_FIGURES` this report does not show are removed from `output_dir`, so none is left over
    from an earlier report there; `report_figures(output_dir)` then lists the ones written.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    layers = result.layer_indices
    full = result.metrics[FULL]
    lines = [f"# Layer analysis: {title}", "", *description, ""]
    written: set[str] = set()  # figures, by name
    lines.append(
        f"Full model: entity F1 **{full['f1']:.4f}** (precision {full['precision']:.4f}, recall "
        f"{full['recall']:.4f}) on {len(result.gold_tags)} sentences, {len(result.words.words)} words."
    )
    if result.words_truncated:
        lines.append(f"**Not all words scored:** {truncation_note(result)}.")
    has_weights = result.words.weights is not None
    profiles = type_profiles(result) if has_weights else []
    correctness = correctness_profiles(result) if has_weights else []
    rows = ablation_rows(result)
    findings = []
    if has_weights:
        findings += profile_findings(result, profiles, correctness)
    findings += ablation_findings(result, rows) + first_k_findings(result)
    lines += ["", "## Findings", "", *[f"- {finding}" for finding in findings]]

    lines += ["", "## 1. Where each word draws from", ""]
    if not has_weights:
        lines.append("This fusion has no per-token weights (`fusion_weights` is None): no weight maps.")
    else:
        lines.append(
            "The fusion weights of each sub-word token (`output_fusion_weights=True`) are averaged over the pieces "
            "of each word (the tokenizer's `word_ids`), so each word's weights still sum to 1. Columns are the fused "
            "hidden states (0 = embedding output, L = last layer); the largest weight of each row is in bold."
            + (f" The weights multiply {result.weighted}." if result.weighted else "")
        )
        sentences = pick_heatmap_sentences(result, num_heatmaps)
        if sentences:
            written.add(plot_sentence_heatmaps(result, sentences, output_dir / "sentence_heatmaps.png").name)
            lines += ["", "![Per-word fusion weights of a few sentences](sentence_heatmaps.png)"]
        written.add(plot_type_profiles(profiles, layers, output_dir / "type_profiles.png").name)
        lines += ["", "Mean weight per layer by gold entity type (B- and I- words together):", ""]
        lines += _weights_table(profiles, layers, "gold type")
        lines += ["", "![Mean fusion weight per layer for each entity type](type_profiles.png)", ""]
        lines += ["By whether the model tags the word right (its tag at the word's first piece):", ""]
        lines += _weights_table(correctness, layers, "group")

    if rows:
        lines += ["", "## 2. Layer ablation", ""]
        lines.append(
            "Each fused layer is masked out in turn (`fusion_layer_mask`; the other weights renormalise) and the "
            "test set is scored again. *Mass* is the layer's mean weight over the words that are or are predicted "
            "to be (part of) an entity, the words entity F1 is decided on (over all words in the next column). "
            f"{_intervals_said(result.bootstrap_samples)} Rule: mass and F1 drop "
            f"are each ranked (1 = largest); where the ranks differ by {max(2, math.ceil(len(rows) / 3))} or more "
            "(a third of the layers), the layer is flagged."
        )
        lines += [
            "",
            "| masked layer | mass (entity words) | mass (all words) | F1 without it | change | 95% interval "
            "| precision | recall | predicted entities | mass rank | drop rank | mass vs effect |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| none (full model) | | | {full['f1']:.4f} | | | {full['precision']:.3f} "
            f"| {full['recall']:.3f} | {int(result.entity_counts[FULL][:, 1].sum())} | | | |",
        ]
        for row in rows:
            lines.append(
                f"| {row.layer} | {row.mass_entity:.3f} | {row.mass_all:.3f} | {row.f1:.4f} | {_points(row.delta)} "
                f"| {_interval(row.interval)} | {row.precision:.3f} | {row.recall:.3f} | {row.predicted_entities} "
                f"| {row.mass_rank} | {row.drop_rank} | {row.disagreement or 'agree'} |"
            )
        drops = [-row.delta for row in rows]
        rho_entity = spearman([row.mass_entity for row in rows], drops)
        rho_all = spearman([row.mass_all for row in rows], drops)
        lines += [
            "",
            f"Spearman rank correlation with the F1 drop: {rho_entity:+.2f} for the mass on entity words, "
            f"{rho_all:+.2f} for the mass on all words.",
        ]
        written.add(plot_ablation(rows, output_dir / "ablation.png").name)
        lines += ["", "![Layer ablation: mass and F1 change](ablation.png)"]

    ks = result.first_ks
    if len(ks) > 1:
        lines += ["", "## 3. First-k-layer inference", ""]
        how = (
            "taken from layers 0..k of the full pass, which was checked to equal the truncated run bit for bit "
            "on the first batch"
            if result.first_k_from_full_pass
            else "from truncated runs"
        )
        lines.append(
            "The backbone runs only its first k layers (`dwatt.experiments.analysis.probes.truncated_backbone`); "
            "the hidden states are "
            "padded to L+1 with z_k (so z_k is the fusion's last state: query and residual), the layers above k are "
            f"masked out, and the fusion and head run as usual. k = L is the full model. Scores are {how}."
        )
        timing = result.timing
        if timing is not None:
            repeats = len(next(iter(timing.seconds.values())))
            lines.append(
                f"Speed: forward passes over the first {timing.num_sentences} sentences ({timing.num_tokens} tokens), "
                f"{repeats} repeats, each running every k once, in an order rotated per repeat. Speed-up is the "
                "median over repeats of the full model's time divided by the first-k time of the same repeat "
                "(paired, so changes in the load of a shared machine cancel), with its interquartile range. The "
                "fusion skips the value MLPs of the masked layers above k, so its cost shrinks with k too."
            )
        lines += [
            "",
            "| k | fused states used | F1 | change | 95% interval | median time (s) | speed-up | speed-up IQR |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for k in ks:
            name = FULL if k == result.num_layers else first_k_name(k)
            used = [layer for layer in layers if layer <= k] if layers else []
            time_cells = "| | | |"
            if timing is not None and k in timing.seconds:
                low, high = np.percentile(timing.speedups(k), [25, 75])
                time_cells = f"| {timing.median(k):.3f} | {timing.speedup(k):.2f}x | {low:.2f}-{high:.2f} |"
            change = "" if name == FULL else _points(result.f1(name) - result.f1(FULL))
            lines.append(
                f"| {k} | {_layer_list(used)} | {result.f1(name):.4f} | {change} "
                f"| {_interval(result.intervals.get(name))} {time_cells}"
            )
        written.add(plot_first_k(result, output_dir / "first_k.png").name)
        lines += ["", "![First-k-layer inference: F1 and speed-up](first_k.png)"]

    path = output_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    for name in REPORT_FIGURES:
        if name not in written:
            (output_dir / name).unlink(missing_ok=True)
    return path


def report_figures(output_dir: str | Path) -> list[str]:
    """The figures of the report in `output_dir` (after `write_report`: the ones it wrote), by name."""
    return [name for name in REPORT_FIGURES if (Path(output_dir) / name).is_file()]
