"""Make a run folder push-ready (scrub local paths, write the card) and push it to the Hub."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..configuration_dwatt import DWATT_AUTO_MAP
from ..modeling_dwatt import UNMERGED_ADAPTER_PARTS
from ..validation import ArgumentError
from .analysis_summary import LayerAnalysisSummary
from .card import render_model_card
from .figure import FIGURE_FILE, fusion_weight_figure
from .record import RUN_ARGUMENTS_FILE, RunFolder, check_scored_data
from .serving import CUSTOM_PIPELINES, SERVING_FILES
from .space import check_token_classifier

logger = logging.getLogger(__name__)

# What a push contains (file-name patterns at the top of the run folder); everything else stays local:
# checkpoint-*/ and optimizer states (resume-only), training_args.bin (a pickle), predictions.conll
# (the test tweets themselves), logs.
WEIGHT_FILES = ("model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json")
CODE_FILES = ("configuration_dwatt.py", "modeling_dwatt.py")
CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "spm.model",
)
RECORD_FILES = (
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "predict_results.json",
    "trainer_state.json",
    RUN_ARGUMENTS_FILE,
)
PUSHED_PATTERNS = WEIGHT_FILES + CODE_FILES + CONFIG_FILES + TOKENIZER_FILES + RECORD_FILES
# Small JSON files whose path-valued fields are scrubbed (tokenizer.json is large and holds only vocabulary).
SCRUBBED_JSON = CONFIG_FILES + ("tokenizer_config.json", "special_tokens_map.json", "trainer_state.json")
# Fields that legitimately hold a local path when saved; they mean nothing on the Hub.
PATH_FIELDS = {"_name_or_path", "name_or_path", "tokenizer_file", "best_model_checkpoint", "logging_dir"}
README = "README.md"
DEFAULT_EXPORT_SUBDIR = "hub"
_ABSOLUTE_PATH = re.compile(r"^(?:/|~/|[A-Za-z]:[\\/]|\\\\)")
_COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")


def is_local_path(value) -> bool:
    """True for strings that look like an absolute (or home-relative) file-system path."""
    return isinstance(value, str) and bool(_ABSOLUTE_PATH.match(value))


def scrub_local_paths(value, where: str = ""):
    """A copy of a JSON value without local paths: `PATH_FIELDS` are dropped; any other absolute path raises.

    Raising rather than dropping: an unknown field holding a path is a bug worth seeing before it is public.
    """
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            if key in PATH_FIELDS and (is_local_path(item) or key in ("_name_or_path", "name_or_path")):
                continue  # `_name_or_path` is dropped even when relative: it names the machine's folder
            cleaned[key] = scrub_local_paths(item, f"{where}.{key}" if where else key)
        return cleaned
    if isinstance(value, list):
        return [scrub_local_paths(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if is_local_path(value):
        raise ValueError(f"{where} holds the local path {value!r}; refusing to publish it")
    return value


def pushed_files(run_dir: str | Path) -> list[Path]:
    """The files of a run folder that belong on the Hub (top level only, sorted)."""
    run_dir = Path(run_dir)
    return sorted(
        path
        for path in run_dir.iterdir()
        if path.is_file() and any(fnmatch.fnmatch(path.name, pattern) for pattern in PUSHED_PATTERNS)
    )


def _leak_needles(run_dir: Path) -> list[str]:
    """Local folders whose names must not appear in any pushed text file."""
    candidates = {str(run_dir.resolve()), str(run_dir.resolve().parent), sys.prefix, os.getcwd()}
    # Two components at least: "/tmp" or "/usr" alone would match innocent text.
    return sorted(path for path in candidates if len(Path(path).parts) > 2)


def check_no_local_paths(folder: Path, needles: list[str]) -> None:
    """Raise if a text file of the folder mentions one of the given local folders."""
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".json", ".md", ".py", ".txt") or path.stat().st_size > 5_000_000:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for needle in needles:
            if needle in text:
                raise ValueError(f"{path.name} mentions the local path {needle!r}; refusing to publish it")


def check_adapters_merged(sources: list[Path]) -> None:
    """Refuse weights saved with LoRA adapters not merged into the backbone: pushed, they would load with the
    adapted layers randomly initialised (`from_pretrained` refuses them for the same reason)."""
    from safetensors import safe_open

    for path in sources:
        if path.suffix != ".safetensors":
            continue
        with safe_open(path, framework="pt") as weights:
            unmerged = [key for key in weights.keys() if any(part in key for part in UNMERGED_ADAPTER_PARTS)]
        if unmerged:
            raise ValueError(
                f"{path} holds LoRA adapters that were never merged into the backbone (e.g. {unmerged[0]}): a training-"
                "time save, not a model to share. Push the run's final folder (merged at the end of training)."
            )


def check_publishable_head(config_path: Path) -> None:
    """Only token classifiers are exported: the card (pipeline tag, entity scores, usage snippet) and the serving files
    are a NER model's. A sentence classifier's or a masked LM's run is refused, by the check `dwatt tag` and
    `dwatt space` use, rather than published under a NER card."""
    try:
        check_token_classifier(json.loads(config_path.read_text()), str(config_path))
    except ValueError as error:
        raise ValueError(
            f"{error}; `dwatt push` publishes NER runs only (its model card, usage snippet and serving files are a "
            "token classifier's)"
        ) from None


_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def check_language(language: str | None) -> None:
    """`--language` is the card's metadata field: an ISO 639 code (en, de, pt-BR), not a language's name."""
    if language is not None and not _LANGUAGE_CODE.match(language):
        raise ArgumentError(f"--language {language!r}: expected an ISO 639 language code such as en, de or pt-BR")


def clear_previous_export(export_dir: Path) -> None:
    """Create `export_dir`, or empty it when it holds an earlier export (so stale files are not pushed).

    Anything else in it (a sub-folder, a file an export never writes) stops the export: a mistyped
    `--export_dir` must not delete someone's files.
    """
    export_dir.mkdir(parents=True, exist_ok=True)
    entries = list(export_dir.iterdir())
    ours = PUSHED_PATTERNS + (README, FIGURE_FILE, LayerAnalysisSummary.FIGURE)
    strangers = [p.name for p in entries if not p.is_file() or not any(fnmatch.fnmatch(p.name, o) for o in ours)]
    if strangers:
        raise FileExistsError(f"{export_dir} holds files an export does not write ({strangers[:5]}); choose another")
    for path in entries:
        path.unlink()


@dataclass
class ExportedRun:
    """A push-ready folder and what went into it."""

    folder: Path
    files: list[str]  # paths in the repo, sorted
    figure: object | None = None  # dwatt.hub.figure.FusionWeightSummary
    card_kwargs: dict = field(default_factory=dict)


def export_push_ready(
    run_dir: str | Path,
    export_dir: str | Path | None = None,
    repo_id: str | None = None,
    revision: str = "main",
    license: str | None = None,
    base_model: str | None = None,
    figure: bool = True,
    figure_sentences: int = 100,
    analysis_dir: str | Path | None = None,
    language: str | None = None,
) -> ExportedRun:
    """Copy the Hub-worthy files of `run_dir` into `export_dir` (default `<run_dir>/hub`), scrubbed, with the card.

    `revision` is what the card's usage snippet loads; `figure` draws the fusion weights (DWAtt and scalar
    mix, when the run wrote predictions.conll) on up to `figure_sentences` test sentences. `analysis_dir`
    (an `analyze_layers.py` output folder for this checkpoint) adds its findings and figure to the card.
    `language` (an ISO 639 code) is the card's language; without it the card says English only for data known to
    be English (the bundled WNUT-16) and leaves the field out otherwise. Only token classifiers are exported.
    """
    run_dir = Path(run_dir)
    export_dir = Path(export_dir) if export_dir is not None else run_dir / DEFAULT_EXPORT_SUBDIR
    repo_id = repo_id or run_dir.resolve().name
    if export_dir.resolve() == run_dir.resolve():
        raise ValueError("export_dir must differ from the run folder: the export leaves files out")
    sources = pushed_files(run_dir)
    missing = [name for name in ("config.json", *CODE_FILES) if not (run_dir / name).is_file()]
    if missing or not any(fnmatch.fnmatch(p.name, "model*.safetensors") for p in sources):
        raise FileNotFoundError(
            f"{run_dir} is not a saved DWAtt checkpoint: missing {missing or 'model.safetensors'}. Save it with "
            "save_pretrained after `import dwatt` (which registers the classes so the .py files are copied)."
        )
    check_language(language)
    check_publishable_head(run_dir / "config.json")
    check_adapters_merged(sources)
    check_scored_data(RunFolder.read(run_dir))  # before the figure, which reads the same predictions
    clear_previous_export(export_dir)

    for source in sources:
        target = export_dir / source.name
        if source.name in SCRUBBED_JSON:
            payload = scrub_local_paths(json.loads(source.read_text()), source.name)
            if source.name == "config.json":
                # Every Auto class must open the checkpoint, whichever head saved it (docs/HF_RULES.md, rule 2).
                payload["auto_map"] = dict(DWATT_AUTO_MAP)
                payload["custom_pipelines"] = CUSTOM_PIPELINES  # the layer-map pipeline shipped below
            target.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        else:
            shutil.copy2(source, target)

    for serving_file in SERVING_FILES:  # the layer-map pipeline and the Inference Endpoints handler
        shutil.copy2(serving_file, export_dir / serving_file.name)
    summary = fusion_weight_figure(run_dir, export_dir, figure_sentences) if figure else None
    card_kwargs = {"repo_id": repo_id, "license": license, "base_model": base_model, "language": language}
    if analysis_dir is not None:
        card_kwargs["analysis"] = LayerAnalysisSummary.read(analysis_dir)
        if card_kwargs["analysis"].figure_file:
            shutil.copy2(Path(analysis_dir) / LayerAnalysisSummary.FIGURE, export_dir / LayerAnalysisSummary.FIGURE)
    card = render_model_card(run_dir, revision=revision, figure=summary, **card_kwargs)
    card.save(export_dir / README)
    check_no_local_paths(export_dir, _leak_needles(run_dir))
    files = sorted(path.name for path in export_dir.iterdir() if path.is_file())
    return ExportedRun(folder=export_dir, files=files, figure=summary, card_kwargs=card_kwargs)


@dataclass
class PushResult:
    """Where a run went: the exported folder, the files committed and the pinned commit (None on dry run)."""

    repo_id: str
    revision: str
    folder: Path
    files: list[str]
    commit: str | None = None
    url: str | None = None


def create_repo_and_branch(api: HfApi, repo_id: str, private: bool, branch: str) -> str:
    """Make sure the repo and the branch exist; returns the full repo id (a bare name gets the user's namespace)."""
    created = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    full_id = getattr(created, "repo_id", None)
    repo_id = full_id if isinstance(full_id, str) and full_id else repo_id
    if branch != "main":
        api.create_branch(repo_id, branch=branch, exist_ok=True, repo_type="model")
    return repo_id


def commit_export(
    api: HfApi,
    exported: ExportedRun,
    run_dir: Path,
    repo_id: str,
    branch: str,
    commit_message: str | None = None,
    pin_revision: bool = True,
) -> PushResult:
    """Commit the exported folder, then pin the card's usage snippet to that commit.

    Pinning is a second, README-only commit: the snippet names the first commit, which holds the same
    weights and code, so users load exactly what the card describes.
    """
    # The Hub's metadata check, before anything is uploaded (a bad card fails the push, not the page).
    ModelCard((exported.folder / README).read_text(encoding="utf-8")).validate()
    # create_commit with our own file list rather than upload_folder: the list is exactly the export, and
    # upload_folder would validate the README a second time.
    commit = api.create_commit(
        repo_id=repo_id,
        repo_type="model",
        revision=branch,
        operations=[
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(exported.folder / name))
            for name in exported.files
        ],
        commit_message=commit_message or f"Upload {run_dir.name} (dwatt)",
    )
    commit_oid = getattr(commit, "oid", None)
    commit_oid = commit_oid if isinstance(commit_oid, str) and _COMMIT_HASH.match(commit_oid) else None
    if pin_revision and commit_oid:
        pinned = render_model_card(
            run_dir, revision=commit_oid, revision_is_commit=True, figure=exported.figure, **exported.card_kwargs
        )
        pinned.save(exported.folder / README)
        api.create_commit(
            repo_id=repo_id,
            repo_type="model",
            revision=branch,
            operations=[CommitOperationAdd(path_in_repo=README, path_or_fileobj=str(exported.folder / README))],
            commit_message=f"Pin the card's usage snippet to {commit_oid[:10]}",
        )
    url = getattr(commit, "commit_url", None)
    return PushResult(
        repo_id=repo_id,
        revision=branch,
        folder=exported.folder,
        files=exported.files,
        commit=commit_oid,
        url=url if isinstance(url, str) else None,
    )


def push_run(
    output_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run: bool = False,
    export_dir: str | Path | None = None,
    token: str | None = None,
    license: str | None = None,
    base_model: str | None = None,
    language: str | None = None,
) -> PushResult:
    """Export `output_dir` push-ready (card included) and commit it to `repo_id`; with `dry_run`, only export.

    `revision` is the branch to push to (created when new; default main). The card states the
    hyper-parameters, seed and hardware from the run's `run_arguments.json` (written by the run).
    """
    try:  # a bad id would otherwise pass a dry run and fail only at the real push
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"--repo_id {repo_id!r} is not a valid Hub repo id: {error}") from None
    check_language(language)
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise FileNotFoundError(f"{output_dir}: no such folder; expected a run folder (run_ner.py's --output_dir)")
    branch = revision or "main"
    card_options = {"revision": branch, "license": license, "base_model": base_model, "language": language}
    if dry_run:
        exported = export_push_ready(output_dir, export_dir, repo_id=repo_id, **card_options)
        return PushResult(repo_id=repo_id, revision=branch, folder=exported.folder, files=exported.files)
    api = HfApi(token=token)
    # The repo first: the card must name the full repo id the Hub gives a bare name.
    repo_id = create_repo_and_branch(api, repo_id, private, branch)
    exported = export_push_ready(output_dir, export_dir, repo_id=repo_id, **card_options)
    result = commit_export(api, exported, output_dir, repo_id, branch, commit_message)
    logger.info("Pushed %d files to %s@%s (commit %s)", len(result.files), repo_id, branch, result.commit)
    return result


def push_trained_run(training_args) -> PushResult | None:
    """`push_run` with the Trainer's hub arguments (`--hub_model_id`, `--hub_private_repo`, `--hub_revision`,
    `--hub_token`); runs on the saving process only and returns None elsewhere.

    Call it after training instead of `trainer.push_to_hub()`, and keep `push_to_hub` off while the Trainer
    runs: `Trainer.save_model` pushes its own stub card and `training_args.bin` when it is on. The repo id
    is `--hub_model_id`, else the output folder's name, as the Trainer would choose.
    """
    if not training_args.should_save:
        return None
    return push_run(
        training_args.output_dir,
        training_args.hub_model_id or Path(training_args.output_dir).resolve().name,
        private=bool(training_args.hub_private_repo),
        revision=getattr(training_args, "hub_revision", None),
        token=training_args.hub_token,
    )
