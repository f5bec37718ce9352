"""The compiled YAML: committed copy is current, and the DAG, caching, resources and scheduling are right."""

import yaml
import pytest
from kfp import compiler

from pipeline.__main__ import DEFAULT_YAML, main
from pipeline.qa_pipeline import build_pipeline
from pipeline.settings import CompileSettings

TASKS = {"download", "preprocess-train", "preprocess-validation", "fine-tune", "evaluate", "register-model"}


def compile_docs(tmp_path, settings=CompileSettings()):
    out = tmp_path / "p.yaml"
    compiler.Compiler().compile(build_pipeline(settings), str(out))
    docs = list(yaml.safe_load_all(out.read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


def strip_sdk(doc):
    doc = dict(doc)
    doc.pop("sdkVersion", None)
    return doc


def test_committed_yaml_is_current(tmp_path):
    """Fails when pipeline/qa_finetune.yaml is stale: run `python -m pipeline compile`."""
    fresh = tmp_path / "fresh.yaml"
    assert main(["compile", "--output", str(fresh)]) == 0
    committed = [strip_sdk(d) for d in yaml.safe_load_all(DEFAULT_YAML.read_text())]
    assert committed == [strip_sdk(d) for d in yaml.safe_load_all(fresh.read_text())], \
        "pipeline/qa_finetune.yaml is stale: run `python -m pipeline compile` and commit it"


def test_six_tasks_and_their_edges(tmp_path):
    spec, _ = compile_docs(tmp_path)
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == TASKS
    deps = {name: set(t.get("dependentTasks", [])) for name, t in tasks.items()}
    assert deps == {
        "download": set(),
        "preprocess-train": {"download"},
        "preprocess-validation": {"download"},
        "fine-tune": {"download", "preprocess-train"},
        "evaluate": {"download", "fine-tune", "preprocess-validation"},
        "register-model": {"download", "evaluate", "fine-tune"},
    }


def test_caching_on_except_register(tmp_path):
    spec, _ = compile_docs(tmp_path)
    tasks = spec["root"]["dag"]["tasks"]
    for name, task in tasks.items():
        assert task["cachingOptions"].get("enableCache", False) is (name != "register-model"), name


def test_images_accelerator_and_resources(tmp_path):
    settings = CompileSettings(cpu_image="reg.example/qa-cpu:1.2.3", gpu_image="reg.example/qa-cuda:1.2.3",
                               accelerator_type="nvidia.com/gpu", accelerator_count=2)
    spec, _ = compile_docs(tmp_path, settings)
    executors = spec["deploymentSpec"]["executors"]
    images = {name: ex["container"]["image"] for name, ex in executors.items()}
    assert images["exec-fine-tune"] == "reg.example/qa-cuda:1.2.3"
    assert images["exec-download"] == "reg.example/qa-cpu:1.2.3"
    assert not any(i.endswith(":latest") for i in images.values())
    fine_tune = executors["exec-fine-tune"]["container"]["resources"]
    assert fine_tune["accelerator"]["resourceCount"] == "2"
    assert fine_tune["accelerator"]["resourceType"] == "nvidia.com/gpu"
    for name, ex in executors.items():
        res = ex["container"]["resources"]
        assert res["cpuRequest"] and res["cpuLimit"] and res["memoryRequest"] and res["memoryLimit"], name
    assert "accelerator" not in executors["exec-download"]["container"]["resources"]


def test_node_selector_tolerations_pvc_and_secrets_in_platform_spec(tmp_path):
    settings = CompileSettings(node_selector=(("nvidia.com/gpu.present", "true"),),
                               tolerations=(("nvidia.com/gpu", "Exists", "NoSchedule"),),
                               pvc_name="qa-hf-cache")
    _, platform = compile_docs(tmp_path, settings)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    ft = executors["exec-fine-tune"]
    assert ft["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert ft["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    assert ft["pvcMount"][0]["constant"] == "qa-hf-cache"
    assert "nodeSelector" not in executors["exec-download"]
    secrets = {s["secretName"] for s in executors["exec-download"]["secretAsEnv"]}
    assert secrets == {"hf-token", "s3-credentials"}


def test_unpinned_image_is_rejected():
    with pytest.raises(ValueError, match="pinned"):
        CompileSettings(cpu_image="reg.example/qa-cpu:latest")
    with pytest.raises(ValueError, match="pinned"):
        CompileSettings(gpu_image="reg.example/qa-cuda")
