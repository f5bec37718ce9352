"""The compiled YAML: committed copy is current, and the DAG, caching, resources and scheduling are right."""

import pytest
import yaml
from kfp import compiler

from components.qa.errors import InvalidInputError
from pipeline.__main__ import DEFAULT_YAML, main
from pipeline.qa_pipeline import build_pipeline
from pipeline.settings import CompileSettings, Resources
from pipeline.steps import EVALUATE, FINE_TUNE, STEPS, TRAINJOB_LAUNCHER, task_names

# literal on purpose: renaming a component function renames its task (and the runs' folders)
TASKS = {"download", "preprocess-train", "preprocess-validation", "fine-tune", "evaluate", "register-model"}


def compile_docs(tmp_path, settings=CompileSettings(), with_deploy=False):
    out = tmp_path / "p.yaml"
    compiler.Compiler().compile(build_pipeline(settings, with_deploy=with_deploy), str(out))
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


def test_the_declared_steps_name_the_compiled_tasks(tmp_path):
    """pipeline/steps.py names each task as KFP derives it from its component function."""
    spec, _ = compile_docs(tmp_path)
    assert set(spec["root"]["dag"]["tasks"]) == set(task_names()) == TASKS
    spec, _ = compile_docs(tmp_path, with_deploy=True)
    assert set(spec["root"]["dag"]["tasks"]) == set(task_names(deploy=True)) == TASKS | {"deploy-model"}


@pytest.mark.parametrize("num_nodes", [1, 2])
def test_each_task_gets_its_steps_resources_image_and_claim(tmp_path, num_nodes):
    settings = CompileSettings(pvc_name="qa-hf-cache", num_nodes=num_nodes)
    spec, platform = compile_docs(tmp_path, settings, with_deploy=True)
    executors = spec["deploymentSpec"]["executors"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    unused = FINE_TUNE if num_nodes > 1 else TRAINJOB_LAUNCHER
    for step in (s for s in STEPS if s is not unused):
        res = settings.resources_for(step.key)
        for task in step.tasks:
            container = executors[f"exec-{task}"]["container"]
            sized = container["resources"]
            assert (sized["resourceCpuLimit"], sized["resourceMemoryLimit"]) == (res.cpu, res.memory), task
            assert ("accelerator" in sized) is step.gpu, task
            assert container["image"] == (settings.gpu_image if step.gpu else settings.cpu_image), task
            assert ("pvcMount" in k8s.get(f"exec-{task}", {})) is bool(step.pvc), task


def test_a_step_without_resources_is_refused_before_compiling():
    without_evaluate = tuple(entry for entry in CompileSettings().resources if entry[0] != EVALUATE.key)
    with pytest.raises(InvalidInputError, match="step 'evaluate' has no resources entry") as caught:
        CompileSettings(resources=without_evaluate)
    assert caught.value.field == "resources" and '("evaluate", Resources(cpu, memory))' in caught.value.fix
    with pytest.raises(InvalidInputError, match="entry for 'evaluation', which is no step") as caught:
        CompileSettings(resources=(*without_evaluate, ("evaluation", Resources("4", "16Gi"))))
    assert "evaluate" in caught.value.fix and "pipeline/steps.py" in caught.value.fix


def test_caching_on_except_register(tmp_path):
    spec, _ = compile_docs(tmp_path)
    tasks = spec["root"]["dag"]["tasks"]
    for name, task in tasks.items():
        assert task["cachingOptions"].get("enableCache", False) is (name != "register-model"), name


def test_only_fine_tune_retries(tmp_path):
    """A retry is for preemption; a wrong input (download, preprocess) fails the same way again."""
    spec, _ = compile_docs(tmp_path)
    retries = {name: task.get("retryPolicy") for name, task in spec["root"]["dag"]["tasks"].items()}
    assert {name for name, policy in retries.items() if policy} == {"fine-tune"}
    assert retries["fine-tune"]["maxRetryCount"] == 2


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


def test_one_node_trains_in_the_step_and_num_nodes_is_a_parameter(tmp_path):
    spec, _ = compile_docs(tmp_path)
    assert spec["root"]["inputDefinitions"]["parameters"]["num_nodes"]["defaultValue"] == 1
    inputs = spec["root"]["dag"]["tasks"]["fine-tune"]["inputs"]["parameters"]
    assert inputs["num_nodes"] == {"componentInputParameter": "num_nodes"}
    trainjob = inputs["trainjob"]["runtimeValue"]["constant"]
    assert trainjob["always"] is False and trainjob["image"] == CompileSettings().gpu_image
    fine_tune = spec["deploymentSpec"]["executors"]["exec-fine-tune"]["container"]
    assert fine_tune["image"] == CompileSettings().gpu_image and "accelerator" in fine_tune["resources"]


def test_multinode_compiles_fine_tune_as_a_launcher_without_gpu(tmp_path):
    out = tmp_path / "multi.yaml"
    assert main(["compile", "--output", str(out), "--num-nodes", "4", "--accelerator-count", "8",
                 "--node-selector", "nvidia.com/gpu.present=true",
                 "--toleration", "nvidia.com/gpu:Exists:NoSchedule", "--pvc", "qa-hf-cache",
                 "--trainer-runtime", "qa-torch-distributed"]) == 0
    spec, platform = list(yaml.safe_load_all(out.read_text()))
    defaults = CompileSettings()
    assert spec["root"]["inputDefinitions"]["parameters"]["num_nodes"]["defaultValue"] == 4
    launcher = spec["deploymentSpec"]["executors"]["exec-fine-tune"]["container"]
    assert launcher["image"] == defaults.cpu_image
    assert "accelerator" not in launcher["resources"]
    assert launcher["resources"]["cpuLimit"] == 1 and launcher["resources"]["memoryLimit"] == 2.147483648
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-fine-tune"]
    assert "nodeSelector" not in k8s and "tolerations" not in k8s
    assert k8s["pvcMount"][0]["constant"] == "qa-hf-cache"  # the launcher stages data there
    trainjob = spec["root"]["dag"]["tasks"]["fine-tune"]["inputs"]["parameters"]["trainjob"]
    job = trainjob["runtimeValue"]["constant"]
    assert job["always"] is True and job["image"] == defaults.gpu_image
    assert job["gpus_per_node"] == 8 and (job["cpu"], job["memory"]) == ("8", "32Gi")
    assert job["node_selector"] == {"nvidia.com/gpu.present": "true"}
    assert job["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert (job["pvc_name"], job["mount_path"]) == ("qa-hf-cache", "/mnt/qa")
    assert job["runtime"] == "qa-torch-distributed" and job["secret_env"] == {"HF_TOKEN": "hf-token/HF_TOKEN"}
    evaluate = spec["deploymentSpec"]["executors"]["exec-evaluate"]["container"]
    assert "accelerator" in evaluate["resources"]  # evaluate still runs on one GPU


def test_multinode_needs_shared_storage():
    with pytest.raises(ValueError, match="PVC every node mounts"):
        CompileSettings(num_nodes=2)
    with pytest.raises(ValueError, match="num_nodes"):
        CompileSettings(num_nodes=0)
