"""Shared fixtures: offline, isolated caches, tiny random backbones of eight encoder families."""

import logging
import os
import sys
import tempfile

# Before transformers is imported anywhere: no network, and remote-code modules in a throwaway cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="dwatt-modules-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoConfig  # noqa: E402


def pytest_sessionstart(session):
    """Point log handlers bound to a closed stream at this session's stderr. transformers binds its handler to the
    sys.stderr of its first log call; when pytest runs twice in one interpreter (mutmut: a coverage pass, then the
    clean run), that was the first session's capture, closed since, and every log record prints a
    "--- Logging error ---" traceback into the output the tests read. (Not `setStream`: it flushes the closed
    stream first; transformers also pins the handler's `flush` to that stream's, so that goes too.)"""
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
                handler.stream = sys.stderr
                handler.__dict__.pop("flush", None)


VOCAB = 99
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}

TINY_BACKBONES = {
    "bert": dict(TINY, max_position_embeddings=64),
    "roberta": dict(TINY, max_position_embeddings=66, pad_token_id=1),
    "xlm-roberta": dict(TINY, max_position_embeddings=66, pad_token_id=1),
    "deberta-v2": dict(
        TINY, max_position_embeddings=64, relative_attention=True, position_buckets=8, pos_att_type=["p2c", "c2p"]
    ),
    "electra": dict(TINY, embedding_size=32, max_position_embeddings=64),
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 37, "max_position_embeddings": 64},
    "mpnet": dict(TINY, max_position_embeddings=66),
    "modernbert": dict(
        TINY,
        max_position_embeddings=64,
        global_attn_every_n_layers=1,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        cls_token_id=2,
        sep_token_id=3,
    ),
}


def tiny_backbone_config(model_type: str = "bert"):
    """A random-weight-sized config of the given encoder family (2 layers, hidden 32)."""
    return AutoConfig.for_model(model_type, vocab_size=VOCAB, **TINY_BACKBONES[model_type])


@pytest.fixture(params=sorted(TINY_BACKBONES))
def backbone_type(request):
    return request.param


@pytest.fixture
def batch():
    """Two sequences, the second padded after five tokens."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(4, VOCAB, (2, 7), generator=generator)
    attention_mask = torch.ones(2, 7, dtype=torch.long)
    attention_mask[1, 5:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@pytest.fixture(scope="session")
def minilm_path():
    from dwatt.assets import bundled_minilm_path

    return bundled_minilm_path()


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_path):
    """A tiny random BERT backbone saved with the real MiniLM tokenizer: fast end-to-end runs."""
    import shutil

    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, max_position_embeddings=128, **TINY)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_path / name, folder / name)
    return folder


def parse_run_args(dataclass_types, args):
    """Parse script arguments the way the scripts do (for in-process runs in tests)."""
    from transformers import HfArgumentParser

    return HfArgumentParser(dataclass_types).parse_args_into_dataclasses(args=[str(a) for a in args])
