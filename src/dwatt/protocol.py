"""The benchmark protocol as typed values, defined once: the shared hyper-parameters, the default NER job
and the sweep's methods, sizes and seeds (docs/DESIGN.md, section 3).

`scripts/run_ner.py` with no arguments runs `DEFAULT_NER_JOB`; every sweep run is `SweepSettings.run_values`
plus its method, K and seed. Both are argument values of `run_ner` (field name -> value), parsed into the
argument dataclasses with `HfArgumentParser.parse_dict`, never through command-line strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .fusions import sweep_methods

#: Method name -> the `ModelArguments` fields it sets (from the fusion catalogue).
METHODS: dict[str, dict[str, Any]] = sweep_methods()
DEFAULT_METHODS = ("last", "deeper", "concat", "scalar_mix", "dwatt", "dwatt_sqrt_d")
#: Every other method is compared with these, seed by seed: the plain top layer, the budget-matched extra
#: layer, and the cheapest fusion (a learned mix of 8 scalars), which a fusion with parameters must beat.
BASELINES = ("last", "deeper", "scalar_mix")
DEFAULT_KS = (50, 100, 200, 500, 1000)
DEFAULT_SEED_COUNT = 5


@dataclass(frozen=True)
class SweepSettings:
    """The hyper-parameters every run of a sweep shares (a config's `settings:`; stored in `sweep.json` and
    checked on resume), and those of the default job.

    Batch 16, eval batch 64, AdamW with linear decay and 10% warm-up, max length 128. `learning_rate` and
    `freeze_backbone` are the default job's (300 steps at lr 1e-4, the best of {5e-5, 1e-4, 2e-4} for `last`
    on dev); a sweep config sets the rate per run from its regime's grid and the regime's way of training
    the backbone (`configs/sweeps/`), so they are not part of a config's settings.
    """

    model_name_or_path: str | None = field(default=None, metadata={"help": "Backbone (default: the bundled MiniLM)."})
    max_steps: int = field(default=300, metadata={"help": "Training steps of every run."})
    eval_every: int = field(default=50, metadata={"help": "Score dev and test every N steps."})
    learning_rate: float = field(
        default=1e-4, metadata={"help": "Learning rate (of the backbone, if the next is set)."}
    )
    fusion_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of fusion and head parameters (default: one rate for all)."}
    )
    train_batch_size: int = 16
    eval_batch_size: int = 64
    warmup_fraction: float = field(default=0.1, metadata={"help": "Linear warm-up over this fraction of the steps."})
    max_seq_length: int = 128
    freeze_backbone: bool = field(default=False, metadata={"help": "Train only the fusion and the head."})
    fusion_init: str = field(
        default="paper",
        metadata={
            "help": "'identity' where the fusion defines it (dwatt, concat, last); other methods keep their init.",
            "choices": ["paper", "identity"],
        },
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Score only the first N dev tweets."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Score only the first N test tweets."})

    @property
    def warmup_steps(self) -> int:
        return round(self.warmup_fraction * self.max_steps)

    def run_values(self) -> dict[str, Any]:
        """The `run_ner` argument values these settings fix; unset optional ones are left out."""
        values = {
            "model_name_or_path": self.model_name_or_path,
            "max_steps": self.max_steps,
            "learning_rate": self.learning_rate,
            "fusion_learning_rate": self.fusion_learning_rate,
            "per_device_train_batch_size": self.train_batch_size,
            "per_device_eval_batch_size": self.eval_batch_size,
            "warmup_steps": self.warmup_steps,
            "lr_scheduler_type": "linear",
            "max_seq_length": self.max_seq_length,
            "freeze_backbone": self.freeze_backbone,
            "max_eval_samples": self.max_eval_samples,
            "max_predict_samples": self.max_predict_samples,
            "logging_steps": 25,
            "report_to": "none",
        }
        return {name: value for name, value in values.items() if value is not None}


#: `scripts/run_ner.py` with no arguments: fine-tune DWAtt (√d) on the bundled MiniLM and K=200 WNUT-16
#: tweets with the protocol"s settings, then score the held-out test split.
DEFAULT_NER_JOB: dict[str, Any] = {
    **SweepSettings().run_values(),
    "output_dir": "outputs/run_ner-dwatt-minilm-wnut16",
    "fusion": "dwatt",
    "dwatt_scale": "sqrt_d",
    "few_shot_k": 200,
    "few_shot_seed": 0,
    "seed": 0,
    "do_train": True,
    "do_eval": True,
    "do_predict": True,
    "eval_strategy": "no",
    "save_strategy": "no",
}
#: `scripts/run_classification.py` with no arguments: fine-tune DWAtt on the bundled MiniLM and the 150
#: training sentences of the bundled Pang-Lee polarity split (about 6 epochs), score the 25 validation and
#: 25 test sentences.
DEFAULT_CLASSIFICATION_JOB: dict[str, Any] = {
    "output_dir": "outputs/run_classification-dwatt-minilm-polarity",
    "fusion": "dwatt",
    "dwatt_scale": "sqrt_d",
    "do_train": True,
    "do_eval": True,
    "do_predict": True,
    "max_steps": 60,
    "learning_rate": 1e-4,
    "fusion_learning_rate": 1e-3,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
    "warmup_steps": 6,
    "lr_scheduler_type": "linear",
    "max_seq_length": 128,
    "eval_strategy": "no",
    "save_strategy": "no",
    "logging_steps": 10,
    "report_to": "none",
    "seed": 0,
}
#: `scripts/run_mlm.py` with no arguments: train DWAtt and the (random) LM head on the bundled MiniLM for 40 steps of
#: 8 blocks of 64 tokens (320 of the 1,152 blocks of the 300 Lee training documents); evaluate on the
#: 78 blocks of the 50 held-out documents. The high fusion rate is for the LM head, which starts from
#: scratch. Every position is scored against the 30,522-word vocabulary: short blocks keep a step cheap.
DEFAULT_MLM_JOB: dict[str, Any] = {
    "output_dir": "outputs/run_mlm-dwatt-minilm-lee",
    "fusion": "dwatt",
    "dwatt_scale": "sqrt_d",
    "do_train": True,
    "do_eval": True,
    "max_seq_length": 64,
    "mlm_probability": 0.15,
    "max_steps": 40,
    "learning_rate": 1e-4,
    "fusion_learning_rate": 1e-3,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 16,
    "warmup_steps": 4,
    "lr_scheduler_type": "linear",
    "eval_strategy": "no",
    "save_strategy": "no",
    "logging_steps": 10,
    "report_to": "none",
    "seed": 0,
}
