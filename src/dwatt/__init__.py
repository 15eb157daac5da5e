"""dwatt: layer fusion (Depth-Wise Attention and baselines) for pretrained transformer encoders.

Importing the package registers every DWAtt class with the transformers Auto factories, so an
installed package needs no `trust_remote_code`, and marks the classes for `save_pretrained` to copy
the hub-portable pair (`configuration_dwatt.py`, `modeling_dwatt.py`) next to the weights.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_dwatt import DWATT_AUTO_MAP, FUSIONS, DWAttConfig
from .modeling_dwatt import (
    DWAttForMaskedLM,
    DWAttForMultipleChoice,
    DWAttForQuestionAnswering,
    DWAttForSequenceClassification,
    DWAttForTokenClassification,
    DWAttModel,
    DWAttPreTrainedModel,
)

__version__ = "0.1.0"

AUTO_CLASSES = {
    "AutoModel": (AutoModel, DWAttModel),
    "AutoModelForTokenClassification": (AutoModelForTokenClassification, DWAttForTokenClassification),
    "AutoModelForSequenceClassification": (AutoModelForSequenceClassification, DWAttForSequenceClassification),
    "AutoModelForMaskedLM": (AutoModelForMaskedLM, DWAttForMaskedLM),
    "AutoModelForQuestionAnswering": (AutoModelForQuestionAnswering, DWAttForQuestionAnswering),
    "AutoModelForMultipleChoice": (AutoModelForMultipleChoice, DWAttForMultipleChoice),
}
assert set(AUTO_CLASSES) | {"AutoConfig"} == set(DWATT_AUTO_MAP), "auto_map and registrations disagree"

AutoConfig.register(DWAttConfig.model_type, DWAttConfig, exist_ok=True)
DWAttConfig.register_for_auto_class()
for _auto_name, (_auto_class, _model_class) in AUTO_CLASSES.items():
    _auto_class.register(DWAttConfig, _model_class, exist_ok=True)
    _model_class.register_for_auto_class(_auto_name)

__all__ = [
    "DWAttConfig",
    "DWAttPreTrainedModel",
    "DWAttModel",
    "DWAttForTokenClassification",
    "DWAttForSequenceClassification",
    "DWAttForMaskedLM",
    "DWAttForQuestionAnswering",
    "DWAttForMultipleChoice",
    "FUSIONS",
]
