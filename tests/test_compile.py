"""torch.compile works for every fusion and head: the same outputs as eager.

transformers 5 installs its hidden-state hooks on a model's first call, under a lock that dynamo cannot
trace; after one eager call the whole forward compiles as one graph (`fullgraph=True`). The AOT-eager
backend traces exactly what inductor would compile, without its C++ build; one inductor test is slow.
"""

import pytest
import torch
from conftest import tiny_backbone_config

from dwatt import (
    FUSIONS,
    DWAttConfig,
    DWAttForMaskedLM,
    DWAttForMultipleChoice,
    DWAttForQuestionAnswering,
    DWAttForSequenceClassification,
    DWAttForTokenClassification,
)

HEADS = [DWAttForTokenClassification, DWAttForSequenceClassification, DWAttForMaskedLM, DWAttForQuestionAnswering]


def first_output(output) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output.start_logits


def compiled_and_eager(model, inputs, **compile_kwargs):
    model.eval()
    with torch.no_grad():
        eager = first_output(model(**inputs))  # also installs transformers' output hooks
        compiled = first_output(torch.compile(model, **compile_kwargs)(**inputs))
    return compiled, eager


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_compiles_as_one_graph(fusion, batch):
    torch.manual_seed(0)
    model = DWAttForTokenClassification(
        DWAttConfig(backbone_config=tiny_backbone_config(), fusion=fusion, num_labels=3)
    )
    compiled, eager = compiled_and_eager(model, batch, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("head", HEADS + [DWAttForMultipleChoice])
def test_every_head_compiles(head, batch):
    torch.manual_seed(0)
    model = head(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3))
    inputs = {name: value.unsqueeze(0) for name, value in batch.items()} if head is DWAttForMultipleChoice else batch
    compiled, eager = compiled_and_eager(model, inputs, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_inductor_compiles_dwatt_to_the_same_logits(batch):
    torch.manual_seed(0)
    model = DWAttForTokenClassification(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3))
    compiled, eager = compiled_and_eager(model, batch)  # the default backend: inductor, C++ on CPU
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5 * float(eager.abs().max()))
