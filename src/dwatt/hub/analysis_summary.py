"""The layer analysis's findings, read back from its report for the model card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class LayerAnalysisSummary:
    """The findings of `scripts/analyze_layers.py` on this checkpoint, quoted in the card as written."""

    findings: list[str]
    figure_file: str | None
    source: str

    FIGURE = "type_profiles.png"

    @classmethod
    def read(cls, analysis_dir: str | Path) -> LayerAnalysisSummary:
        """Read the "## Findings" bullets of `report.md` in an analysis folder."""
        analysis_dir = Path(analysis_dir)
        report = (analysis_dir / "report.md").read_text(encoding="utf-8")
        if "## Findings" not in report:
            raise ValueError(
                f"{analysis_dir / 'report.md'} has no '## Findings' section; expected analyze_layers output"
            )
        section = report.split("## Findings", 1)[1].split("\n## ", 1)[0]
        findings = [line[2:].strip() for line in section.splitlines() if line.startswith("- ")]
        figure = cls.FIGURE if (analysis_dir / cls.FIGURE).is_file() else None
        return cls(findings=findings, figure_file=figure, source=f"{analysis_dir.name}/report.md")
