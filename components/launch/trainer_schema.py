"""Validate Kubeflow Trainer objects (TrainJob, TrainingRuntime, ClusterTrainingRuntime) as the
API server would: every field known to the CRD schema, of the right type; unknown fields refused.

    from components.launch.trainer_schema import validate
    validate(trainjob_dict, where="the fine-tune TrainJob")     # SchemaError lists every problem

The schema is `kubeflow_trainer_api`'s models (generated from Trainer's OpenAPI; the installed
version is `API_VERSION`). The models themselves accept and drop unknown keys (no
extra='forbid'), which is how a field Trainer removed slipped through: v2.2.0 moved
`mlPolicy.torch.numProcPerNode` to the TrainJob (`spec.trainer.numProcPerNode`), and its
TrainingRuntime CRD refuses the old field (manifests/base/crds in kubeflow/trainer, v2.2.0 and
v2.3.0). So this walks the model classes itself: field aliases, nested models, lists, maps,
Quantity and IntOrString, then lets the models' own validators check enums.
"""

from __future__ import annotations

import datetime
import types
import typing
from importlib.metadata import version
from typing import Any

from pydantic import BaseModel

from components.qa.errors import InvalidInputError

GROUP_VERSION = "trainer.kubeflow.org/v1alpha1"
API_VERSION = version("kubeflow_trainer_api")  # the Trainer release whose schema we check against


def _kinds() -> dict[str, type[BaseModel]]:
    from kubeflow_trainer_api import models

    return {"TrainJob": models.TrainerV1alpha1TrainJob,
            "TrainingRuntime": models.TrainerV1alpha1TrainingRuntime,
            "ClusterTrainingRuntime": models.TrainerV1alpha1ClusterTrainingRuntime}


class SchemaError(InvalidInputError):
    """An object the Trainer API server would refuse; `problems` holds one 'path: problem' each."""

    def __init__(self, where: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"not a valid Trainer {API_VERSION} object: " + "; ".join(problems),
                         fix="Use only fields of Trainer's v1alpha1 CRDs (docs/multinode.md lists "
                             "the supported Trainer versions).",
                         source=where, field=problems[0].split(":")[0])


# The CRDs' embedded ObjectMeta (pod and job templates, not the object's own metadata) has only
# these properties (controller-gen's embedded-object schema, in every Trainer CRD).
EMBEDDED_METADATA = {"annotations", "finalizers", "labels", "name", "namespace"}


def known_fields(model: type[BaseModel], path: str) -> dict[str, tuple[str, Any, bool]]:
    """JSON key -> (python name, annotation, required) of `model` at `path` ('Kind.a.b')."""
    fields = {(info.alias or name): (name, info.annotation, info.is_required())
              for name, info in model.model_fields.items()}
    if model.__name__ == "IoK8sApimachineryPkgApisMetaV1ObjectMeta" and path.count(".") > 1:
        fields = {key: value for key, value in fields.items() if key in EMBEDDED_METADATA}
    return fields


def _one_of(model: type[BaseModel]) -> Any | None:
    """The value types of a oneOf wrapper (Quantity: float | str; IntOrString: int | str)."""
    if "actual_instance" in model.model_fields and "one_of_schemas" in model.model_fields:
        return model.model_fields["actual_instance"].annotation
    return None


def _check(value: Any, kind: Any, path: str, problems: list[str]) -> None:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Annotated:
        return _check(value, args[0], path, problems)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        tries: list[list[str]] = []
        for option in (a for a in args if a is not type(None)):
            found: list[str] = []
            _check(value, option, path, found)
            if not found:
                return
            tries.append(found)
        if all(len(t) == 1 and t[0].startswith(f"{path}: expected ") for t in tries):
            names = " or ".join(t[0].split(": expected ", 1)[1].split(",")[0] for t in tries)
            problems.append(f"{path}: expected {names}, got {type(value).__name__} {value!r}")
        else:
            problems.extend(min(tries, key=len))
        return
    if kind is Any:
        return
    if origin in (list, typing.List):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(item, args[0], f"{path}[{i}]", problems)
        return
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{path}: key {key!r} is not a string")
            _check(item, args[1], f"{path}.{key}", problems)
        return
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        one_of = _one_of(kind)
        if one_of is not None:
            return _check(value, one_of, path, problems)
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object ({kind.__name__}), got {type(value).__name__}")
            return
        fields = known_fields(kind, path)
        for key, item in value.items():
            if key not in fields:
                problems.append(f"{path}.{key}: unknown field (the API server refuses it; "
                                f"{kind.__name__} has {', '.join(sorted(fields)) or 'no fields'})")
            elif item is not None:
                _check(item, fields[key][1], f"{path}.{key}", problems)
        for key, (_, _, required) in fields.items():
            if required and key not in value:
                problems.append(f"{path}.{key}: required field missing")
        return
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is str:
        ok = isinstance(value, str)
    elif kind is datetime.datetime:
        ok = isinstance(value, (str, datetime.datetime))
    else:
        ok = isinstance(value, kind) if isinstance(kind, type) else True
    if not ok:
        problems.append(f"{path}: expected {getattr(kind, '__name__', kind)}, got {type(value).__name__} "
                        f"{value!r}")


def problems(obj: dict[str, Any]) -> list[str]:
    """Everything the Trainer API server would refuse in `obj`; [] when it is valid."""
    kinds = _kinds()
    if obj.get("apiVersion") != GROUP_VERSION or obj.get("kind") not in kinds:
        return [f"apiVersion/kind: {obj.get('apiVersion')}/{obj.get('kind')} is not a Trainer kind "
                f"({GROUP_VERSION}: {', '.join(kinds)})"]
    model = kinds[obj["kind"]]
    found: list[str] = []
    _check(obj, model, obj["kind"], found)
    if not found:
        try:  # the models' own checks (enums)
            model.from_dict(obj)
        except (ValueError, TypeError) as err:
            found.append(f"{obj['kind']}: {err}".replace("\n", " "))
    return found


def validate(obj: dict[str, Any], where: str = "") -> None:
    """Raise SchemaError naming every field the Trainer API server would refuse."""
    found = problems(obj)
    if found:
        name = obj.get("metadata", {}).get("name", "?")
        raise SchemaError(where or f"{obj.get('kind')} {name}", found)
