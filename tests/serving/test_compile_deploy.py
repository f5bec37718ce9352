"""The deploy step is compiled in only on request: six tasks by default, seven with it."""

from __future__ import annotations

import yaml
from kfp import compiler

from pipeline.qa_pipeline import build_pipeline
from pipeline.settings import CompileSettings


def compiled(tmp_path, **kwargs) -> dict:
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(build_pipeline(CompileSettings(), **kwargs), str(path))
    return next(yaml.safe_load_all(path.read_text()))


def test_default_dag_has_six_tasks_and_deploy_adds_a_seventh_never_cached(tmp_path):
    default = compiled(tmp_path)["root"]["dag"]["tasks"]
    assert len(default) == 6 and "deploy-model" not in default
    spec = compiled(tmp_path, with_deploy=True)
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) - set(default) == {"deploy-model"}
    deploy = tasks["deploy-model"]
    assert deploy["cachingOptions"] == {}  # enable_caching=False
    assert set(deploy["dependentTasks"]) >= {"register-model", "evaluate", "fine-tune"}
    assert deploy["inputs"]["parameters"]["deploy"] == {"componentInputParameter": "deploy"}
    assert spec["root"]["inputDefinitions"]["parameters"]["deploy"]["defaultValue"] is False
