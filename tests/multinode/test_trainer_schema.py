"""The strict Trainer schema check (components/launch/trainer_schema.py) refuses what Trainer's CRDs refuse.

The CRDs' schemas are shipped in tests/multinode/data (served openAPIV3Schema of kubeflow/trainer's
manifests/base/crds at v2.1.0, v2.2.0 and v2.3.0, descriptions dropped);
`python tests/multinode/data/make_trainer_crds.py --check <kubeflow/trainer clone>` checks that the
shipped copy is what the tags hold.
"""

from __future__ import annotations

import types
import typing

import pytest
import yaml
from pydantic import BaseModel

from components.launch.trainer_schema import API_VERSION, SchemaError, _kinds, _one_of, known_fields, problems, validate
from tests.multinode.data import make_trainer_crds

PLURALS = make_trainer_crds.PLURALS
SHIPPED = make_trainer_crds.load()
RUNTIME_V21 = {  # a torch runtime as Trainer v2.1 accepted it, as our overlay had it
    "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainingRuntime",
    "metadata": {"name": "qa-torch-distributed"},
    "spec": {"mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
             "template": {"spec": {"replicatedJobs": [{"name": "node", "template": {"spec": {
                 "template": {"spec": {"containers": [{"name": "node", "image": "qa:1"}]}}}}}]}}}}


def crd_schema(tag: str, kind: str) -> dict:
    return SHIPPED[f"{tag}/{kind}"]


def _unwrap(kind):
    while True:
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if origin is typing.Annotated:
            kind = args[0]
        elif origin in (typing.Union, types.UnionType) and len([a for a in args if a is not type(None)]) == 1:
            kind = next(a for a in args if a is not type(None))
        else:
            return kind


def schema_differences(node: dict, kind, path: str) -> list[str]:
    """Where the CRD's properties and the validator's known fields differ, all the way down."""
    kind = _unwrap(kind)
    if "properties" in node:
        if not (isinstance(kind, type) and issubclass(kind, BaseModel)) or _one_of(kind):
            return [f"{path}: an object in the CRD, {kind} in the models"]
        fields = known_fields(kind, path)
        crd, ours = set(node["properties"]), set(fields)
        out = [f"{path}: CRD only {sorted(crd - ours)}, models only {sorted(ours - crd)}"] if crd != ours else []
        for key in sorted(crd & ours):
            out += schema_differences(node["properties"][key], fields[key][1], f"{path}.{key}")
        return out
    if node.get("type") == "array" and "items" in node:
        return schema_differences(node["items"], typing.get_args(kind)[0], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        return schema_differences(node["additionalProperties"], typing.get_args(kind)[1], f"{path}{{}}")
    return []


@pytest.mark.parametrize("kind", PLURALS)
def test_the_validator_knows_exactly_the_fields_of_the_v2_3_crds(kind):
    assert API_VERSION == "2.3.0"
    assert schema_differences(crd_schema("v2.3.0", kind), _kinds()[kind], kind) == []


def test_trainer_v2_2_removed_num_proc_per_node_from_the_torch_policy():
    def torch_policy(tag):
        policy = crd_schema(tag, "TrainingRuntime")["properties"]["spec"]["properties"]["mlPolicy"]
        return policy["properties"]["torch"].get("properties", {})

    assert "numProcPerNode" in torch_policy("v2.1.0")
    assert "numProcPerNode" not in torch_policy("v2.2.0") and "numProcPerNode" not in torch_policy("v2.3.0")
    trainer = crd_schema("v2.3.0", "TrainJob")["properties"]["spec"]["properties"]["trainer"]["properties"]
    assert trainer["numProcPerNode"]["type"] == "integer"  # where it moved
    for field in ("runtimePatches", "activeDeadlineSeconds"):  # where our PVC mount and deadline go
        assert field in crd_schema("v2.2.0", "TrainJob")["properties"]["spec"]["properties"]
        assert field not in crd_schema("v2.1.0", "TrainJob")["properties"]["spec"]["properties"]


def test_refuses_the_v2_1_torch_policy_with_the_path_and_the_known_fields():
    with pytest.raises(SchemaError) as err:
        validate(RUNTIME_V21)
    (problem,) = err.value.problems
    assert problem.startswith("TrainingRuntime.spec.mlPolicy.torch.numProcPerNode: unknown field")
    assert "envInjection" in problem
    assert "TrainingRuntime qa-torch-distributed" in str(err.value)


def test_accepts_what_the_v2_3_crd_accepts():
    runtime = yaml.safe_load(yaml.safe_dump(RUNTIME_V21))
    runtime["spec"]["mlPolicy"]["torch"] = {"envInjection": {"targets": [
        {"jobName": "node", "containerNames": ["sidecar"]}]}}
    pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    pod["metadata"] = {"labels": {"a": "b"}, "annotations": {"c": "d"}}
    pod["spec"]["containers"][0].update(
        resources={"limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": 8}},
        ports=[{"containerPort": 29500}], env=[{"name": "X", "value": "1"}],
        readinessProbe={"tcpSocket": {"port": "http"}})  # IntOrString as a name
    assert problems(runtime) == []
    job = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
           "metadata": {"name": "j", "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p",
                                                          "uid": "u"}]},
           "spec": {"runtimeRef": {"name": "torch-distributed"}, "activeDeadlineSeconds": 3600,
                    "trainer": {"numNodes": 4, "numProcPerNode": 8, "image": "qa:1"}}}
    assert problems(job) == []


@pytest.mark.parametrize("change, expected", [
    (lambda j: j["spec"]["trainer"].update(numNodes="4"), "spec.trainer.numNodes: expected int, got str"),
    (lambda j: j["spec"]["trainer"].update(numProcPerNode="auto"), "spec.trainer.numProcPerNode: expected int"),
    (lambda j: j["spec"].update(deadline=60), "TrainJob.spec.deadline: unknown field"),
    (lambda j: j["spec"]["trainer"].update(resourcesPerNode={"limits": {"cpu": ["8"]}}),
     "resourcesPerNode.limits.cpu: expected float or str"),
    (lambda j: j["spec"].pop("runtimeRef"), "TrainJob.spec.runtimeRef: required field missing"),
    (lambda j: j["spec"].update(runtimePatches=[{"manager": "m", "trainingRuntimeSpec": {"template": {
        "metadata": {"uid": "x"}}}}]), "template.metadata.uid: unknown field"),  # embedded ObjectMeta
    (lambda j: j.update(kind="PyTorchJob"), "is not a Trainer kind"),
])
def test_refuses_wrong_fields_and_types(change, expected):
    job = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "j"},
           "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 4}}}
    assert problems(job) == []
    change(job)
    found = problems(job)
    assert len(found) == 1 and expected in found[0], found


def test_refuses_a_bad_enum_through_the_models_validators():
    runtime = yaml.safe_load(yaml.safe_dump(RUNTIME_V21))
    runtime["spec"]["mlPolicy"]["torch"] = {}
    pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "exists", "effect": "NoSchedule"}]
    (problem,) = problems(runtime)
    assert "'Equal', 'Exists'" in problem, problem
