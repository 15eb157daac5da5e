"""Parameter budgets of every fusion on a backbone, so parity with DWAtt is checked, not asserted."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from transformers import AutoConfig, PretrainedConfig

from ..configuration_dwatt import FUSIONS, DWAttConfig
from ..modeling_dwatt import DWAttModel, count_parameters


@dataclass(frozen=True)
class FusionBudget:
    """Parameter count of one fusion on one backbone (the heads excluded: they are the same for all)."""

    fusion: str
    backbone_parameters: int
    fusion_parameters: int
    deeper_num_layers: int | None = None
    deeper_intermediate_size: int | None = None

    @property
    def total_parameters(self) -> int:
        return self.backbone_parameters + self.fusion_parameters

    @property
    def overhead(self) -> float:
        """Added parameters as a fraction of the bare backbone."""
        return self.fusion_parameters / self.backbone_parameters


def fusion_budget(backbone_config: PretrainedConfig, fusion: str, **config_kwargs) -> FusionBudget:
    """Count the parameters `fusion` adds on top of a backbone built from `backbone_config`."""
    config = DWAttConfig(backbone_config=backbone_config, fusion=fusion, **config_kwargs)
    with torch.device("meta"):
        model = DWAttModel(config)
    backbone = count_parameters(model.backbone)
    return FusionBudget(
        fusion=fusion,
        backbone_parameters=backbone,
        fusion_parameters=count_parameters(model) - backbone,
        deeper_num_layers=config.deeper_num_layers if fusion == "deeper" else None,
        deeper_intermediate_size=config.deeper_intermediate_size if fusion == "deeper" else None,
    )


def all_fusion_budgets(backbone_config: PretrainedConfig, fusions=FUSIONS, **config_kwargs) -> list[FusionBudget]:
    """`fusion_budget` for every fusion, with the same DWAtt knobs (the deeper baseline matches them)."""
    return [fusion_budget(backbone_config, fusion, **config_kwargs) for fusion in fusions]


def budget_table(budgets: list[FusionBudget]) -> str:
    """A Markdown table of the budgets, with each fusion's size relative to DWAtt's where DWAtt is listed."""
    reference = next((b.fusion_parameters for b in budgets if b.fusion == "dwatt"), None)
    lines = [
        "| fusion | added parameters | overhead vs backbone | vs DWAtt | deeper shape |",
        "|---|---:|---:|---:|---|",
    ]
    for b in budgets:
        relative = f"{b.fusion_parameters / reference:.2f}x" if reference else "-"
        shape = f"{b.deeper_num_layers} x FFN {b.deeper_intermediate_size}" if b.fusion == "deeper" else ""
        lines.append(f"| {b.fusion} | {b.fusion_parameters:,} | {100 * b.overhead:.2f}% | {relative} | {shape} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("backbone", nargs="?", help="backbone name or path (default: the bundled MiniLM)")
    args = parser.parse_args(argv)
    if args.backbone is None:
        from ..assets import bundled_minilm_path

        args.backbone = str(bundled_minilm_path())
    budgets = all_fusion_budgets(AutoConfig.from_pretrained(args.backbone))
    print(f"backbone: {args.backbone} ({budgets[0].backbone_parameters:,} parameters)")
    print(budget_table(budgets))


if __name__ == "__main__":
    main()
