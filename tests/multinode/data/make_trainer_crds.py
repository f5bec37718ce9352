"""Regenerate trainer-crd-schemas.json.gz: the served openAPIV3Schema of Kubeflow Trainer's CRDs
(TrainJob, TrainingRuntime, ClusterTrainingRuntime) at the tags the tests compare against,
descriptions dropped. Shipped so the schema tests run on a fresh clone with no mirror.

    python tests/multinode/data/make_trainer_crds.py /path/to/kubeflow/trainer          # a git clone
    python tests/multinode/data/make_trainer_crds.py --check /path/to/kubeflow/trainer  # unchanged?

Source: github.com/kubeflow/trainer, manifests/base/crds at each tag (Apache License 2.0).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import yaml

TAGS = ("v2.1.0", "v2.2.0", "v2.3.0")
PLURALS = {"TrainJob": "trainjobs", "TrainingRuntime": "trainingruntimes",
           "ClusterTrainingRuntime": "clustertrainingruntimes"}
OUTPUT = Path(__file__).with_name("trainer-crd-schemas.json.gz")


def without_descriptions(node):
    if isinstance(node, dict):
        return {k: without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    return node


def served_schema(repo: Path, tag: str, kind: str) -> dict:
    """The one served version's openAPIV3Schema of `kind`'s CRD at `tag`."""
    path = f"{tag}:manifests/base/crds/trainer.kubeflow.org_{PLURALS[kind]}.yaml"
    text = subprocess.run(["git", "-C", str(repo), "show", path],
                          capture_output=True, text=True, check=True).stdout
    (served,) = yaml.safe_load(text)["spec"]["versions"]
    return without_descriptions(served["schema"]["openAPIV3Schema"])


def build(repo: Path) -> dict:
    return {f"{tag}/{kind}": served_schema(repo, tag, kind) for tag in TAGS for kind in PLURALS}


def load() -> dict:
    return json.loads(gzip.decompress(OUTPUT.read_bytes()))


if __name__ == "__main__":
    check = sys.argv[1] == "--check"
    schemas = build(Path(sys.argv[-1]))
    if check:
        sys.exit(0 if schemas == load() else f"{OUTPUT} differs from the tags: regenerate it")
    OUTPUT.write_bytes(gzip.compress(json.dumps(schemas, sort_keys=True, separators=(",", ":")).encode(),
                                     9, mtime=0))
    print(f"wrote {OUTPUT}")
