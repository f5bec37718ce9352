"""evaluate: predict on the validation features, post-process, score SQuAD EM/F1, write a report.

SQuAD v1.1 or v2.0 comes from the download step (the validation data's `squad_version`
metadata), never from the rows at hand. With v2.0, `f1`/`exact` (the figures the register
step gates on) use `null_score_diff_threshold`, which the metrics record; `best_f1`,
`best_exact` and their `*_thresh` are the official script's sweep over every threshold.
"""

from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output


def evaluate(
    model: Input[Model],
    validation_data: Input[Dataset],
    validation_features: Input[Dataset],
    n_best: int,
    max_answer_length: int,
    batch_size: int,
    null_score_diff_threshold: float,
    metrics: Output[Metrics],
    predictions: Output[Dataset],
    report: Output[Markdown],
):
    import json

    import datasets

    from components.io.artifacts import write_metrics
    from components.io.report import evaluation_report
    from components.qa.answers import SQUAD_V2, count_unanswerable, squad_version
    from components.qa.inference import evaluate_qa_model
    from components.qa.progress import Progress
    from components.qa.training import load_qa_model

    examples = datasets.load_from_disk(validation_data.path)
    features = datasets.load_from_disk(validation_features.path)
    qa_model = load_qa_model(model.path)
    version = validation_data.metadata.get("squad_version")
    if version is None:  # data downloaded before the version was recorded
        version = squad_version(count_unanswerable(examples["answers"]))
        print(f"validation data has no squad_version: taken as SQuAD {version} from its rows",
              flush=True)
    scores, answers = evaluate_qa_model(qa_model, examples, features, batch_size=batch_size,
                                        n_best=n_best, max_answer_length=max_answer_length,
                                        version_2_with_negative=version == SQUAD_V2,
                                        null_score_diff_threshold=null_score_diff_threshold,
                                        progress=Progress("evaluate", len(features)))
    write_metrics(metrics, scores)
    metrics.metadata["squad_version"] = version
    with open(predictions.path, "w", encoding="utf-8") as f:
        for example_id, answer in answers.items():
            f.write(json.dumps({"id": example_id, **answer}, ensure_ascii=False) + "\n")
    predictions.metadata.update({"format": "jsonl", "rows": len(answers)})
    with open(report.path, "w", encoding="utf-8") as f:
        f.write(evaluation_report(scores, examples, answers))
    print(json.dumps(scores, indent=2), flush=True)
