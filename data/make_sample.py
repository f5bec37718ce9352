"""Rebuild data/squad-sample/ from the official SQuAD v1.1 dev set, split by article.

    python data/make_sample.py path/to/dev-v1.1.json

Train: the first 24 articles (4,961 questions). Validation: the last 4 articles
(721 questions), so the demo scores questions on articles it never trained on.
"""

import json
import sys
from pathlib import Path

TRAIN_ARTICLES, EVAL_ARTICLES = slice(0, 24), slice(44, 48)


def main(dev_path: str) -> None:
    official = json.loads(Path(dev_path).read_text(encoding="utf-8"))
    out = Path(__file__).parent / "squad-sample"
    for split, articles in (("train", TRAIN_ARTICLES), ("validation", EVAL_ARTICLES)):
        doc = {"version": official["version"], "data": official["data"][articles]}
        (out / f"{split}.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        questions = sum(len(p["qas"]) for a in doc["data"] for p in a["paragraphs"])
        print(f"{split}: {len(doc['data'])} articles, {questions} questions")


if __name__ == "__main__":
    main(sys.argv[1])
