"""Train time of the demo recipe before and after #17, in one run on this machine.

    python bench/recipe_speed.py             # a tenth of each recipe, A-B-B-A: ~5 min here

Before: batch 16 x 250 steps, lr 3e-4, adamw_torch (foreach). After: the `local` profile
(batch 4 x 940, lr 1.5e-4, fused AdamW). Both train a tenth of their steps from the same
seed with all threads, in A-B-B-A order, so a drift in the machine's speed hits both; the
ratio of the two is the figure to compare across machines.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402  (bench/quality.py: data, recipes, configs)

FRACTION = 10
SEED = 42


def whole_run_tokens(config, settings: dict) -> int:
    """Real tokens a whole run of `settings` trains on: the sum of the lengths of the features
    its sampler serves in max_steps x batch draws (what the Trainer's token counter counts)."""
    from components.qa.sampling import ShuffledLengthSampler

    lengths = [sum(mask) for mask in quality.data(settings)["train"]["attention_mask"]]
    sampler = ShuffledLengthSampler(lengths, settings["batch_size"], config.sampler_chunk_batches,
                                    config.seed)
    draws, tokens = settings["max_steps"] * settings["batch_size"], 0
    while draws > 0:
        served = list(sampler)[:draws]
        tokens += sum(lengths[i] for i in served)
        draws -= len(served)
        sampler.set_epoch(sampler.epoch + 1)
    return tokens


def main() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    recipes = {"before (16 x 250, foreach)": (quality.recipe("issue"), "adamw_torch"),
               "after (local profile, fused)": (quality.recipe("demo"), "auto")}
    totals = {name: [0, 0.0] for name in recipes}
    whole = {}
    for name in [*recipes, *reversed(recipes)]:
        settings, optim = recipes[name]
        steps = settings["max_steps"] // FRACTION
        config = dataclasses.replace(
            quality.train_config("shuffled_length", SEED, steps, settings), optim=optim)
        whole[name] = whole_run_tokens(config, settings)
        result = quality.train_only(config, settings)
        totals[name][0] += result["num_train_tokens"]
        totals[name][1] += result["train_runtime"]
        print(f"  {name:<30} {steps:4d} steps {result['train_runtime']:6.1f} s, "
              f"{result['tokens_per_second']:5.0f} real tokens/s", flush=True)
    (before_tokens, before), (after_tokens, after) = totals.values()
    whole_before, whole_after = whole.values()
    rate = (after_tokens / after) / (before_tokens / before)
    # a tenth of the steps is not a tenth of the tokens (the longest batch comes first), so
    # the whole runs are projected from the rates and the tokens each whole run trains on
    print(f"real tokens/s after / before: {rate:.3f}; whole runs ({whole_after:,} vs "
          f"{whole_before:,} real tokens): train time after / before "
          f"{whole_after / whole_before / rate:.3f}")

if __name__ == "__main__":
    main()
