"""The model card of a run folder, rendered from the template shipped with the package.

Not the Trainer's `create_model_card` (what `trainer.push_to_hub` writes): that card knows the Trainer's
hyper-parameters and last metrics, not the fusion, the data split, the backbone's limits or which file each
number comes from; `run_ner` turns the Trainer's own push off and pushes this card with the run's files.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..assets import ALL_MPNET_BASE_V2, BUNDLED_MINILM_HUB_ID, BUNDLED_MINILM_LICENSE, INSTALLABLE
from ..configuration_dwatt import FUSIONS_OF_RAW_STATES, DWAttConfig, is_pre_ln
from ..experiments.budget import fusion_budget
from ..fusions import CATALOGUE, KNOBS
from .analysis_summary import LayerAnalysisSummary
from .figure import FusionWeightSummary
from .record import (
    NOT_RECORDED,
    RESULT_FILES,
    RUN_ARGUMENTS_FILE,
    DatasetInfo,
    RunFolder,
    _read_json,
    check_scored_data,
    count_checkpoint_parameters,
    describe_dataset,
)

# Shipped inside the package (package data), so a non-editable install renders cards too.
TEMPLATE_PATH = Path(__file__).with_name("card_template.md")
# (metric key suffix, model-index metric type, display name)
CARD_METRICS = (
    ("f1", "f1", "Entity F1 (seqeval, micro)"),
    ("precision", "precision", "Entity precision (seqeval, micro)"),
    ("recall", "recall", "Entity recall (seqeval, micro)"),
    ("accuracy", "accuracy", "Token accuracy"),
)
TAGS = ["dwatt", "layer-fusion", "custom_code", "token-classification", "ner"]
EXAMPLE_TEXT = "Watching the Lakers play in Los Angeles tonight with @john"


def _show(value, digits: int | None = None) -> str:
    """A value for a table cell: metrics rounded to `digits`, settings as given, missing ones "not recorded"."""
    if value is None or value == NOT_RECORDED:
        return NOT_RECORDED
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}f}"
    return str(value)


def parameter_rows(run: RunFolder, config: DWAttConfig) -> tuple[list[tuple[str, str]], str]:
    """Backbone / fusion / head / total counts, and a note on the fusion's overhead."""
    knobs = {name: getattr(config, name) for name in KNOBS if name != "fusion"}  # rebuilds the exact fusion
    budget = fusion_budget(config.backbone_config, config.fusion, **knobs)
    total = count_checkpoint_parameters(run.path)
    rows = [
        ("backbone (pretrained encoder, pooler removed)", f"{budget.backbone_parameters:,}"),
        (f"fusion `{config.fusion}`", f"{budget.fusion_parameters:,}"),
    ]
    if total is not None:
        rows.append(("classification head", f"{total - budget.total_parameters:,}"))
        rows.append(("total (counted in the checkpoint)", f"{total:,}"))
    note = (
        f"The fusion adds {budget.fusion_parameters:,} parameters, {100 * budget.overhead:.2f}% of the backbone "
        "(counted by `dwatt.experiments.budget.fusion_budget` on this config)."
    )
    knob_text = ", ".join(f"`{name}={getattr(config, name)!r}`" for name in CATALOGUE[config.fusion].knobs)
    if knob_text:
        note += f" Settings: {knob_text}."
    return rows, note + layer_norm_sentence(config)


def layer_norm_sentence(config: DWAttConfig) -> str:
    """For a fusion of raw hidden states: whether they are normalised per layer, and whether that is the default
    for this backbone's layer-norm placement. Empty for the other fusions."""
    if config.fusion not in FUSIONS_OF_RAW_STATES:
        return ""
    backbone = config.backbone_config.model_type
    placement = "pre-LN (raw residual stream between layers)" if is_pre_ln(config.backbone_config) else "post-LN"
    normalised = bool(getattr(config, "fusion_layer_norm", False))
    how = "layer-normalised one by one before they are mixed" if normalised else "mixed as the backbone gives them"
    chosen = "the default" if normalised == is_pre_ln(config.backbone_config) else "not the default"
    return f" The fused hidden states are {how}: {chosen} for a {placement} backbone ({backbone})."


def training_rows(run: RunFolder, dataset: DatasetInfo) -> list[tuple[str, str]]:
    """The training table: data, K, seed, hyper-parameters, steps, hardware and time, or "not recorded"."""
    args, state = run.arguments, run.trainer_state
    train = run.metrics("train_results.json")

    def arg(name):
        return args.get(name, NOT_RECORDED)

    warmup = NOT_RECORDED
    if args:  # transformers 5 takes a ratio in warmup_steps (a value below 1); older runs recorded warmup_ratio
        steps_or_ratio = args.get("warmup_steps") or 0
        if 0 < steps_or_ratio < 1:
            warmup = f"ratio {steps_or_ratio}"
        elif steps_or_ratio:
            warmup = f"{steps_or_ratio} steps"
        else:
            warmup = f"ratio {args['warmup_ratio']}" if args.get("warmup_ratio") else "none"
    steps = state.get("global_step", NOT_RECORDED)
    if state.get("max_steps") and "global_step" in state:
        steps = f"{steps} of {state['max_steps']}"
    runtime = train.get("train_runtime")
    precision = NOT_RECORDED
    if args:
        precision = "bf16" if args.get("bf16") else "fp16" if args.get("fp16") else "fp32"
    return [
        ("data", dataset.name),
        ("training sentences", _show(train.get("train_samples"))),
        ("few-shot K / sample seed", "no (the whole training set)" if args and args.get("few_shot_k") is None
         else f"{_show(args.get('few_shot_k'))} / {_show(args.get('few_shot_seed'))}"),
        ("seed", _show(arg("seed"))),
        ("optimizer steps", _show(steps)),
        ("epochs", _show(state.get("epoch"), 2)),
        ("batch size per device × accumulation × processes",
         f"{_show(arg('per_device_train_batch_size'))} × {_show(arg('gradient_accumulation_steps'))} × "
         f"{_show(arg('world_size'))}"),
        ("learning rate (backbone)", _show(arg("learning_rate"))),
        ("learning rate (fusion and head)", _show(args.get("fusion_learning_rate") or arg("learning_rate"))),
        ("schedule / warm-up", f"{_show(arg('lr_scheduler_type'))} / {warmup}"),
        ("optimizer / weight decay / max grad norm",
         f"{_show(arg('optim'))} / {_show(arg('weight_decay'))} / {_show(arg('max_grad_norm'))}"),
        # Conditions read args.get (None when a run recorded before the flag existed), not arg's "not recorded".
        ("backbone frozen", "yes, run once per sentence without dropout (cached features)"
         if args.get("cache_backbone_features") else _show(arg("freeze_backbone"))),
        ("LoRA on the backbone (rank / alpha, merged into the saved weights)",
         f"{_show(arg('lora_r'))} / {_show(arg('lora_alpha'))}" if args.get("lora_r")
         else "no" if args else NOT_RECORDED),
        ("max sequence length (sub-words)", _show(arg("max_seq_length"))),
        ("precision", precision),
        ("hardware", _show(arg("hardware"))),
        ("training time", f"{runtime:.1f} s (Trainer's train_runtime)" if runtime is not None else NOT_RECORDED),
        ("mean training loss", _show(train.get("train_loss"), 4)),
        ("transformers version", _show(run.config.get("transformers_version"))),
    ]  # fmt: skip


def loss_rows(run: RunFolder) -> list[tuple[str, str, str]]:
    """Logged (step, loss, learning rate) points from trainer_state.json."""
    return [
        (
            str(entry.get("step")),
            _show(entry["loss"], 4),
            f"{entry['learning_rate']:.3g}" if "learning_rate" in entry else "",
        )
        for entry in run.trainer_state.get("log_history", [])
        if "loss" in entry
    ]


def result_rows(run: RunFolder) -> list[dict]:
    """One row per split with metrics, each naming the file it came from."""
    rows = []
    for split, file_name, prefix in RESULT_FILES:
        metrics = run.metrics(file_name)
        if f"{prefix}_f1" not in metrics:
            continue
        rows.append(
            {
                "split": split,
                "file": file_name,
                "samples": _show(metrics.get(f"{prefix}_samples")),
                **{key: _show(metrics.get(f"{prefix}_{key}"), 4) for key, _, _ in CARD_METRICS},
            }
        )
    return rows


def per_type_rows(run: RunFolder) -> tuple[str | None, list[dict]]:
    """Per-entity-type scores of the first split that has them (test before validation)."""
    for split, file_name, prefix in RESULT_FILES:
        metrics = run.metrics(file_name)
        types = sorted(
            key[len(prefix) + 1 : -len("_number")]
            for key in metrics
            if key.endswith("_number")
            and key.startswith(prefix + "_")
            # Runs before dwatt 0.2 listed every type of the label list, zeros for types absent from the split: a
            # type with no gold entity has no true positive, so its scores are all 0 and its row says nothing.
            and metrics[key] != 0
        )
        if types:
            return split, [
                {
                    "type": name,
                    **{
                        part: _show(metrics.get(f"{prefix}_{name}_{part}"), 4) for part in ("precision", "recall", "f1")
                    },
                    "number": _show(metrics.get(f"{prefix}_{name}_number")),
                }
                for name in types
            ]
    return None, []


def eval_results(run: RunFolder, dataset: DatasetInfo) -> list[EvalResult]:
    """The run's measured overall scores as model-index entries, values exactly as in the metrics files."""
    results = []
    for split, file_name, prefix in RESULT_FILES:
        metrics = run.metrics(file_name)
        for key, metric_type, metric_name in CARD_METRICS:
            if f"{prefix}_{key}" not in metrics:
                continue
            results.append(
                EvalResult(
                    task_type="token-classification",
                    task_name="Named entity recognition",
                    dataset_type=dataset.type,
                    dataset_name=dataset.name,
                    dataset_split=split,
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=metrics[f"{prefix}_{key}"],
                )
            )
    return results


def limitations(run: RunFolder, dataset: DatasetInfo, base_model: str | None) -> list[str]:
    """What a reader must know before trusting the numbers."""
    arguments = run.arguments
    predict = run.metrics("predict_results.json")
    test_size = predict.get("predict_samples")
    test_slice = f"{test_size}-tweet slice" if test_size is not None else "slice"
    if predict.get("predict_max_samples") is not None:  # only the first tweets of the split were scored
        test_slice = f"slice (scored on its first {test_size} tweets only)"
    items = []
    if base_model == BUNDLED_MINILM_HUB_ID:
        items.append(
            "The backbone is all-MiniLM-L6-v2: a small (6 layers × 384), **uncased** sentence-embedding model, not "
            "an encoder tuned for NER. Casing, a strong cue for names, is lost; a cased or larger encoder would score "
            "differently."
        )
    elif base_model == ALL_MPNET_BASE_V2.hub_id:
        items.append(
            "The backbone is all-mpnet-base-v2: MPNet-base (12 layers × 768) tuned for **uncased** sentence "
            "embeddings, not an encoder tuned for NER. Casing, a strong cue for names, is lost."
        )
    if dataset.bundled_wnut16:
        items += [
            "Trained and scored on **Twitter NER (WNUT-16, 10 entity types)**: noisy 2016 English tweets. "
            "Performance on other domains, later tweets or other languages is unknown.",
            f"The test split is a **fixed {test_slice} of the WNUT-16 training file** "
            "(`dwatt.data.corpora.load_wnut16`; the official dev/test files are not bundled), so the scores are not "
            "comparable with published "
            "WNUT-16 results.",
            "The WNUT-16 data come from the WNUT 2016 shared task; treat their use as research use.",
        ]
    if arguments.get("few_shot_k"):
        items.append(
            f"Few-shot: trained on {arguments['few_shot_k']} sentences, one sample and one seed. Scores of such "
            "runs move by several F1 points between seeds and samples; compare methods over several seeds."
        )
    if not arguments:
        items.append(f"The run's arguments were {NOT_RECORDED} (no `{RUN_ARGUMENTS_FILE}`): see the training table.")
    items.append(
        "Loading runs the repository's Python code (`trust_remote_code=True`); review it and pin a revision. "
        "Not evaluated for bias or for robustness to adversarial input."
    )
    return items


#: Language names the card writes out; any other code is shown as given.
LANGUAGE_NAMES = {"en": "English"}


def card_language(dataset: DatasetInfo, language: str | None = None) -> str | None:
    """The card's language code: the one given (`dwatt push --language`), else English for data known to be English
    (the bundled WNUT-16 tweets), else None: the card leaves the field out rather than guess."""
    if language is not None:
        return language
    return "en" if dataset.bundled_wnut16 else None


def language_text(run_dir: Path, language: str | None = "en") -> str:
    """The language (`language_text(folder, None)`: not known, and how to state it), and whether the tokenizer
    lower-cases (as its saved config says)."""
    lower = _read_json(run_dir / "tokenizer_config.json").get("do_lower_case")
    if language is None:
        named = f"{NOT_RECORDED} (the run's data do not say; `dwatt push --language <code>` states it)"
    else:
        named = LANGUAGE_NAMES.get(language, f"`{language}`")
    return named + {True: ", uncased (the tokenizer lower-cases)", False: ", cased"}.get(lower, "")


def render_model_card(
    run_dir: str | Path,
    repo_id: str,
    revision: str = "main",
    revision_is_commit: bool = False,
    figure: FusionWeightSummary | None = None,
    license: str | None = None,
    base_model: str | None = None,
    template_path: str | Path = TEMPLATE_PATH,
    analysis: LayerAnalysisSummary | None = None,
    language: str | None = None,
) -> ModelCard:
    """Render the card of a `run_ner` output folder (metadata + body); nothing is written to disk.

    `analysis` adds the layer-analysis findings of `scripts/analyze_layers.py` and its per-type figure.

    `base_model` and `license` override what the run recorded (the bundled MiniLM is named by its Hub id
    and Apache-2.0 licence); without either, the metadata leaves the field out and the text says so. `language`
    (an ISO 639 code) overrides the language the data imply (English for the bundled WNUT-16; unknown otherwise,
    and then left out).
    """
    run = RunFolder.read(run_dir)
    check_scored_data(run)
    config = run.dwatt_config()
    dataset = describe_dataset(run)
    base_model = base_model or run.arguments.get("base_model")
    known_licences = {BUNDLED_MINILM_HUB_ID: BUNDLED_MINILM_LICENSE,
                      **{asset.hub_id: asset.license for asset in INSTALLABLE.values()}}  # fmt: skip
    if license is None and base_model in known_licences:
        license = known_licences[base_model]  # the fine-tuned weights inherit the base model's licence
    model_name = repo_id.split("/")[-1]
    language = card_language(dataset, language)
    card_data = ModelCardData(
        model_name=model_name,
        language=language,
        license=license,
        library_name="transformers",
        pipeline_tag="token-classification",
        tags=list(TAGS),
        base_model=base_model,
        datasets=[dataset.hub_id] if dataset.hub_id else None,
        metrics=sorted({metric_type for _, metric_type, _ in CARD_METRICS}),
        eval_results=eval_results(run, dataset) or None,
    )
    rows, budget_note = parameter_rows(run, config)
    split, type_rows = per_type_rows(run)
    test_f1 = run.metrics("predict_results.json").get("predict_f1")
    trained = bool(run.metrics("train_results.json") or run.trainer_state.get("global_step"))
    if trained:
        summary = (
            f"{base_model or 'A pretrained encoder'} fine-tuned for named-entity recognition on {dataset.name}, "
            f"with the layer fusion `{config.fusion}` ({CATALOGUE[config.fusion].title})."
        )
    else:  # e.g. a folder saved by from_backbone(...).save_pretrained(...): nothing was trained
        summary = (
            f"**Not fine-tuned**: {base_model or 'a pretrained encoder'} with the layer fusion `{config.fusion}` "
            f"({CATALOGUE[config.fusion].title}) and a token-classification head that are newly initialised "
            "(this folder records no training run: no train_results.json, no trainer_state.json). Train it "
            "before use."
        )
    if test_f1 is not None:
        summary += f" Entity F1 on the test split: **{test_f1:.4f}** (`predict_results.json`)."
    if revision_is_commit:
        revision_comment = "the commit that holds these weights and this code"
    else:
        revision_comment = "pin a commit hash from this repo's history to fix the code you run"
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        summary=summary,
        task_description="named-entity recognition (token classification, IOB2 tags)",
        base_model_text=f"[{base_model}](https://huggingface.co/{base_model})" if base_model else NOT_RECORDED,
        fusion=config.fusion,
        fusion_title=CATALOGUE[config.fusion].title,
        license_text=license or NOT_RECORDED,
        fusion_description=CATALOGUE[config.fusion].description,
        parameter_rows=rows,
        budget_note=budget_note,
        repo_id=repo_id,
        revision=revision,
        revision_comment=revision_comment,
        example_text=EXAMPLE_TEXT,
        data_description=dataset.description,
        training_rows=training_rows(run, dataset),
        loss_rows=loss_rows(run),
        result_rows=result_rows(run),
        per_type_split=split,
        per_type_rows=type_rows,
        figure=figure.for_template() if figure else None,
        analysis=analysis,
        limitations=limitations(run, dataset, base_model),
        language_text=language_text(run.path, language),
    )


def usage_snippet(card_text: str) -> str:
    """The first ```python block of a card (what users copy)."""
    start = card_text.index("```python\n") + len("```python\n")
    return card_text[start : card_text.index("```", start)]
