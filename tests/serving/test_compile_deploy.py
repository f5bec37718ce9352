"""The deploy step is compiled in only on request: six tasks by default, seven with it."""

from __future__ import annotations

import yaml
from kfp import compiler

from pipeline.qa_pipeline import build_pipeline
from pipeline.settings import CompileSettings
from pipeline.steps import DEPLOY, task_names


def compiled(tmp_path, platform: bool = False, **kwargs) -> dict:
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(build_pipeline(CompileSettings(), **kwargs), str(path))
    return list(yaml.safe_load_all(path.read_text()))[1 if platform else 0]


def test_default_dag_has_six_tasks_and_deploy_adds_a_seventh_never_cached(tmp_path):
    default = compiled(tmp_path)["root"]["dag"]["tasks"]
    assert set(default) == set(task_names()) and len(default) == 6
    spec = compiled(tmp_path, with_deploy=True)
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) - set(default) == set(DEPLOY.tasks) == {"deploy-model"}
    deploy = tasks["deploy-model"]
    assert deploy["cachingOptions"] == {}  # enable_caching=False
    assert set(deploy["dependentTasks"]) >= {"register-model", "evaluate", "fine-tune"}
    assert deploy["inputs"]["parameters"]["deploy"] == {"componentInputParameter": "deploy"}
    assert spec["root"]["inputDefinitions"]["parameters"]["deploy"]["defaultValue"] is False


def test_deploy_reads_the_registry_token_and_s3_endpoint_as_register_does(tmp_path):
    """deploy converts an older record's minio:// URI with the same endpoint register uses."""
    executors = compiled(tmp_path, platform=True, with_deploy=True)[
        "platforms"]["kubernetes"]["deploymentSpec"]["executors"]

    def secret_env(executor):
        return sorted((s["secretName"], k["envVar"]) for s in executors[executor]["secretAsEnv"]
                      for k in s["keyToEnv"])

    assert secret_env("exec-deploy-model") == secret_env("exec-register-model")
    assert ("s3-credentials", "AWS_ENDPOINT_URL") in secret_env("exec-deploy-model")
