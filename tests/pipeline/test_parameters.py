"""pipeline/parameters.py: the one declaration of the run parameters drives the DAG signature,
the task arguments, `--set`, the notebook's and the docs' tables; the training knobs reuse
TrainConfig's defaults and value checks; machine checks wait until training starts.

    python -m pytest tests/pipeline/test_parameters.py -q
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml
from kfp import compiler

from components.deploy import deploy_model
from components.download import download
from components.evaluate import evaluate
from components.fine_tune import fine_tune
from components.launch import entry
from components.preprocess import preprocess_train, preprocess_validation
from components.qa import train_config
from components.qa.errors import InvalidInputError
from components.qa.train_config import TrainConfig
from components.register import register_model
from pipeline import parameters
from pipeline.parameters import (
    BY_NAME,
    DEFAULTS,
    PARAMETERS,
    markdown_table,
    profile_parameters,
    step_args,
)
from pipeline.qa_pipeline import build_pipeline
from pipeline.settings import CompileSettings
from pipeline.steps import EVALUATE, FINE_TUNE

COMPONENTS = {"download": download, "preprocess-train": preprocess_train,
              "preprocess-validation": preprocess_validation, "fine-tune": fine_tune,
              "evaluate": evaluate, "register-model": register_model, "deploy-model": deploy_model}


def test_the_dag_signature_is_the_declaration_with_num_nodes_from_the_compile_settings():
    for nodes in (1, 4):
        dag = build_pipeline(CompileSettings(num_nodes=nodes, pvc_name="x"))
        declared = inspect.signature(dag.pipeline_func).parameters
        assert [(p.name, p.annotation, p.default) for p in declared.values()] == [
            (p.name, p.type, nodes if p.name == "num_nodes" else p.default) for p in PARAMETERS]
        assert list(dag.component_spec.inputs) == list(DEFAULTS)


def test_every_feed_is_an_argument_of_its_component_with_the_same_type():
    for p in PARAMETERS:
        assert p.feeds, f"{p.name} feeds no step"
        for step, argument in p.feeds:
            for task in step.tasks:
                component = inspect.signature(COMPONENTS[task]).parameters
                assert argument in component, f"{p.name}: {task} has no argument {argument!r}"
                assert component[argument].annotation in (p.type, p.type.__name__), (p.name, task)
    assert step_args(EVALUATE, DEFAULTS)["batch_size"] == DEFAULTS["eval_batch_size"]
    assert step_args(FINE_TUNE, DEFAULTS)["batch_size"] == DEFAULTS["batch_size"]


def test_the_compiled_tasks_read_the_declared_parameters(tmp_path):
    """Each declared feed is wired in the YAML: the task's argument reads the run parameter."""
    package = tmp_path / "qa.yaml"
    compiler.Compiler().compile(build_pipeline(CompileSettings(), with_deploy=True), str(package))
    spec = next(yaml.safe_load_all(package.read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    wired = {(task, argument): source["componentInputParameter"]
             for task, body in tasks.items()
             for argument, source in body["inputs"].get("parameters", {}).items()
             if "componentInputParameter" in source}
    assert wired == {(task, argument): p.name
                     for p in PARAMETERS for step, argument in p.feeds for task in step.tasks}
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == set(DEFAULTS)


def test_set_values_are_coerced_to_the_declared_type_and_unknown_names_listed():
    params = profile_parameters("tiny", {"batch_size": "16", "learning_rate": "1e-4",
                                         "deploy": "true", "model_version": "7"})
    assert (params["batch_size"], params["learning_rate"], params["deploy"],
            params["model_version"]) == (16, 1e-4, True, "7")
    assert profile_parameters("tiny", {"deploy": "0"})["deploy"] is False
    with pytest.raises(InvalidInputError, match="'many' is not a valid int") as caught:
        profile_parameters("tiny", {"max_steps": "many"})
    assert caught.value.field == "max_steps"
    with pytest.raises(InvalidInputError, match="unknown parameter 'epochs'") as caught:
        profile_parameters("tiny", {"epochs": "3"})
    assert caught.value.fix == f"Known parameters: {', '.join(p.name for p in PARAMETERS)}."


def test_training_knobs_take_default_help_and_check_from_train_config():
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    renamed = {"batch_size": "per_device_train_batch_size"}
    for p in PARAMETERS:
        if p.feeds != ((FINE_TUNE, p.name),) or renamed.get(p.name, p.name) not in fields:
            continue
        f = fields[renamed.get(p.name, p.name)]
        assert (p.help, p.check) == (f.metadata["help"], f.metadata["check"]), p.name
        if p.name != "save_minutes":  # the pipeline checkpoints by time too (parameters.py)
            assert p.default == f.default, p.name
    assert BY_NAME["save_minutes"].default == 30.0 and TrainConfig().save_minutes == 0.0


@pytest.mark.parametrize("name, field, value", [
    ("batch_size", "per_device_train_batch_size", 0), ("learning_rate", "learning_rate", 1.5),
    ("warmup_fraction", "warmup_fraction", 1.0), ("weight_decay", "weight_decay", -0.1),
    ("precision", "precision", "fp8"), ("save_minutes", "save_minutes", -1.0),
])
def test_a_training_value_check_fires_with_train_configs_message_under_the_pipeline_name(
        name, field, value):
    with pytest.raises(InvalidInputError) as in_config:
        TrainConfig(**{field: value})
    with pytest.raises(InvalidInputError) as in_pipeline:
        profile_parameters("tiny", {name: value})
    assert in_pipeline.value.field == name and in_pipeline.value.source is None
    assert in_pipeline.value.problem == in_config.value.problem.replace(field, name)
    assert in_pipeline.value.fix == in_config.value.fix.replace(field, name)


def test_the_training_length_check_is_train_configs():
    with pytest.raises(InvalidInputError) as in_config:
        TrainConfig(num_train_epochs=0.0, max_steps=0)
    with pytest.raises(InvalidInputError) as in_pipeline:
        profile_parameters("tiny", {"num_train_epochs": "0", "max_steps": "0"})
    assert str(in_pipeline.value) == str(in_config.value).replace("in TrainConfig, ", "")
    assert profile_parameters("tiny", {"num_train_epochs": "0", "max_steps": "3"})["max_steps"] == 3


def test_machine_checks_wait_until_training_starts(monkeypatch):
    """A laptop without CUDA builds an fp16 run for a GPU cluster; the GPU step checks it."""
    monkeypatch.setattr(train_config, "_cuda", lambda: False)
    assert profile_parameters("tiny", {"precision": "fp16"})["precision"] == "fp16"
    config = TrainConfig(precision="fp16")
    with pytest.raises(InvalidInputError) as caught:
        config.check_machine()
    assert str(caught.value) == ("in TrainConfig, field 'precision': fp16 mixed precision needs a "
                                 "CUDA GPU and none is visible. Use precision='auto' (fp32 on CPU) "
                                 "or 'bf16'.")
    # the fine-tune step checks once before it spawns torchrun ranks (or trains in-process)
    monkeypatch.setattr(entry.subprocess, "run", lambda *a, **k: pytest.fail("spawned ranks"))
    for processes in (1, 2):
        with pytest.raises(InvalidInputError, match="fp16 mixed precision needs a CUDA GPU"):
            entry.launch(processes, "no-features", "no-model", "no-output", config)
    monkeypatch.setattr(train_config, "_cuda", lambda: True)
    monkeypatch.setattr(train_config, "_cuda_capability", lambda: (7, 0))
    TrainConfig(precision="fp16").check_machine()
    with pytest.raises(InvalidInputError, match="bf16 needs an Ampere or newer GPU; this one has "
                                                r"compute capability 7\.0"):
        TrainConfig(precision="bf16").check_machine()


def test_the_docs_table_is_current():
    text = parameters.DOCS.read_text(encoding="utf-8")
    assert parameters.docs_with_table(text) == text, (
        "README.md's parameter table is stale: run `python -m pipeline.parameters --write-docs`")
    table = markdown_table()
    assert table.count("\n") == len(PARAMETERS) + 2
    assert "| `batch_size` | int | `48` | Features per batch on each device. |" in table


def test_the_notebook_table_lists_what_differs_from_the_defaults():
    tiny = profile_parameters("tiny")
    rows = markdown_table(tiny).splitlines()[2:]
    assert rows == [f"| `{name}` | `{value}` | `{DEFAULTS[name]}` |"
                    for name, value in tiny.items() if value != DEFAULTS[name]]
    assert "| `max_steps` | `4` | `-1` |" in rows
