"""Same inputs and seed: same features and metrics. Secrets: never in the YAML, the logs or artifacts."""

import json

import pytest

from tests.conftest import PLANTED_SECRETS, REPO, run_tiny_cli

pytestmark = pytest.mark.slow


def metadata(run_dir, task):
    """The output artifacts' metadata that the task reported to KFP."""
    out = json.loads((run_dir / task / "executor_output.json").read_text())
    return {name: arts["artifacts"][0].get("metadata", {}) for name, arts in out["artifacts"].items()}


def test_same_inputs_and_seed_give_identical_features_and_metrics(tiny_cli_run, tmp_path):
    second = run_tiny_cli(tmp_path / "second", "--no-cache")
    for task, output in (("download", "train_data"), ("download", "validation_data"),
                         ("preprocess-train", "train_features"),
                         ("preprocess-validation", "validation_features")):
        first_fp = metadata(tiny_cli_run["run_dir"], task)[output]["fingerprint"]
        assert first_fp == metadata(second["run_dir"], task)[output]["fingerprint"], (task, output)
    for task in ("fine-tune", "evaluate"):
        a = json.loads((tiny_cli_run["run_dir"] / task / "metrics").read_text())
        b = json.loads((second["run_dir"] / task / "metrics").read_text())
        for key in ("train_loss", "exact_match", "f1"):
            if key in a:
                assert a[key] == pytest.approx(b[key], abs=1e-6), (task, key)
    record = next((tiny_cli_run["root"] / "model-registry" / "squad-qa").glob("*.json"))
    assert json.loads(record.read_text())["metadata"]["hyperparameters"]["seed"] == 42


def test_planted_secrets_never_reach_yaml_logs_or_artifacts(tiny_cli_run, tmp_path):
    from pipeline.__main__ import main

    assert main(["compile", "--output", str(tmp_path / "p.yaml")]) == 0
    texts = {"compiled YAML": (tmp_path / "p.yaml").read_text(),
             "committed YAML": (REPO / "pipeline" / "qa_finetune.yaml").read_text(),
             "run log": tiny_cli_run["log"]}
    for path in tiny_cli_run["root"].rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000 and path.suffix not in (".arrow", ".safetensors"):
            texts[str(path)] = path.read_text(errors="ignore")
    assert len(texts) > 20
    for where, text in texts.items():
        for name, secret in PLANTED_SECRETS.items():
            assert secret not in text, f"{name} leaked into {where}"
    # the YAML references secrets by Kubernetes Secret name only
    assert "hf-token" in texts["compiled YAML"] and "secretAsEnv" in texts["compiled YAML"]
