"""Rebuild the samples in data/squad-sample/ from the official SQuAD dev sets, by article.

    python data/make_sample.py path/to/dev-v1.1.json [path/to/dev-v2.0.json]

v1.1, for the demo: train.json, the first 24 articles (4,961 questions); validation.json, the
last 4 articles (721 questions), so the demo scores questions on articles it never trained on.
train.json is a prefix of dev-v1.1, so the tests read it as the dev set's first questions.

v2.0, for the tests of unanswerable questions: dev-v2.0-2articles.json, articles 3 and 4 of
dev-v2.0 (534 questions, 246 of them unanswerable). The first five articles of dev-v2.0.json
are the whole of ../shared/squad/dev-v2.0-5articles.json, so either file rebuilds it.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).parent / "squad-sample"
V1_FILES = {"train.json": slice(0, 24), "validation.json": slice(44, 48)}
V2_FILES = {"dev-v2.0-2articles.json": slice(2, 4)}


def write_articles(official_path: str, files: dict[str, slice]) -> None:
    official = json.loads(Path(official_path).read_text(encoding="utf-8"))
    for name, articles in files.items():
        doc = {"version": official["version"], "data": official["data"][articles]}
        (OUT / name).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        questions = [q for a in doc["data"] for p in a["paragraphs"] for q in p["qas"]]
        unanswerable = sum(not q["answers"] for q in questions)
        print(f"{name}: {len(doc['data'])} articles, {len(questions)} questions"
              + (f" ({unanswerable} unanswerable)" if unanswerable else ""))


def main(dev_v1_path: str, dev_v2_path: str | None = None) -> None:
    write_articles(dev_v1_path, V1_FILES)
    if dev_v2_path:
        write_articles(dev_v2_path, V2_FILES)


if __name__ == "__main__":
    main(*sys.argv[1:3])
