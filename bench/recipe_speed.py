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
WHOLE_RUN_TOKENS = {"before": 676_603, "after": 640_220}  # seed 42's whole runs (RESULTS.md)


def main() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    recipes = {"before (16 x 250, foreach)": (quality.recipe("issue"), "adamw_torch"),
               "after (local profile, fused)": (quality.recipe("demo"), "auto")}
    totals = {name: [0.0, 0] for name in recipes}
    for name in [*recipes, *reversed(recipes)]:
        settings, optim = recipes[name]
        steps = settings["max_steps"] // FRACTION
        config = dataclasses.replace(
            quality.train_config("shuffled_length", 42, steps, settings), optim=optim)
        result = quality.train_only(config, settings)
        totals[name][0] += result["train_runtime"]
        totals[name][1] += result["num_train_tokens"]
        print(f"  {name:<30} {steps:4d} steps {result['train_runtime']:6.1f} s, "
              f"{result['tokens_per_second']:5.0f} real tokens/s", flush=True)
    (before, before_tokens), (after, after_tokens) = totals.values()
    rate = (after_tokens / after) / (before_tokens / before)
    # a tenth of the steps is not a tenth of the tokens (the longest batch comes first), so
    # the whole runs are projected from the rates and their real tokens (seed 42)
    print(f"real tokens/s after / before: {rate:.3f}; whole runs ({WHOLE_RUN_TOKENS['after']:,} "
          f"vs {WHOLE_RUN_TOKENS['before']:,} real tokens): train time after / before "
          f"{WHOLE_RUN_TOKENS['after'] / WHOLE_RUN_TOKENS['before'] / rate:.3f}")


if __name__ == "__main__":
    main()
