"""SQuAD v1.1 and v2.0 exact match and F1 as an `evaluate` module that loads offline.

Loaded by path, it stands in for the metrics "squad" and "squad_v2", which `evaluate.load`
would fetch from the Hugging Face Hub:

    import evaluate
    from components.qa.metrics import SQUAD_METRIC_DIR
    squad = evaluate.load(str(SQUAD_METRIC_DIR))  # or config "squad": v1.1
    squad_v2 = evaluate.load(str(SQUAD_METRIC_DIR), "squad_v2")
    squad_v2.compute(predictions=predictions, references=references, no_answer_threshold=0.5)

Inputs and output keys are those of the Hub's metrics; the scoring is components.qa.metrics'
`compute_squad_metrics`, so that package must be importable (evaluate checks it when loading,
and names it if it is not). One difference from the Hub's "squad_v2": no_answer_probability is
stored as float64, not float32, so the probabilities are compared and returned (best_*_thresh)
as given, as the official script reads them from JSON.

evaluate copies this file alone into its module cache, so it imports no sibling file.
"""

import datasets
import evaluate

from components.qa.errors import InvalidInputError
from components.qa.metrics import compute_squad_metrics

_CONFIGS = ("default", "squad", "squad_v2")  # "default" is v1.1, as evaluate.load(path) alone gives

_CITATION = """\
@inproceedings{Rajpurkar2016SQuAD10,
  title={SQuAD: 100,000+ Questions for Machine Comprehension of Text},
  author={Pranav Rajpurkar and Jian Zhang and Konstantin Lopyrev and Percy Liang},
  booktitle={EMNLP},
  year={2016}
}
@inproceedings{Rajpurkar2018SQuAD2,
  title={Know What You Don't Know: Unanswerable Questions for SQuAD},
  author={Pranav Rajpurkar and Robin Jia and Percy Liang},
  booktitle={ACL},
  year={2018}
}
"""

_DESCRIPTION = """\
Exact match and token F1 of extractive answers, equal to the official SQuAD v1.1 ("squad") and
v2.0 ("squad_v2") evaluation scripts, computed without the Hugging Face Hub.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions: list of {'id', 'prediction_text'}; for squad_v2 also 'no_answer_probability'.
    references: list of {'id', 'answers': {'text': [...], 'answer_start': [...]}};
        for squad_v2 an empty 'text' list marks an unanswerable question.
    no_answer_threshold: squad_v2 only (default 1.0): a prediction whose no-answer
        probability is above it counts as "no answer".
Returns:
    squad: 'exact_match', 'f1' (percent).
    squad_v2: 'exact', 'f1', 'total', 'HasAns_*' and 'NoAns_*' for each non-empty subset,
        'best_exact', 'best_exact_thresh', 'best_f1', 'best_f1_thresh'.
"""


def _features(with_probability: bool) -> datasets.Features:
    prediction = {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")}
    if with_probability:
        prediction["no_answer_probability"] = datasets.Value("float64")
    # A dict of lists, as the SQuAD datasets hold answers.
    answers = {
        "text": datasets.Sequence(datasets.Value("string")),
        "answer_start": datasets.Sequence(datasets.Value("int32")),
    }
    return datasets.Features(
        {"predictions": prediction, "references": {"id": datasets.Value("string"), "answers": answers}}
    )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SquadMetric(evaluate.Metric):
    def _info(self):
        if self.config_name not in _CONFIGS:
            raise InvalidInputError(
                f"unknown config {self.config_name!r}", field="config_name",
                fix="Load with 'squad' for SQuAD v1.1 or 'squad_v2' for SQuAD v2.0.",
            )
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_features(self._version_2),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    @property
    def _version_2(self) -> bool:
        return self.config_name == "squad_v2"

    def _compute(self, predictions, references, no_answer_threshold=1.0):
        if not self._version_2 and no_answer_threshold != 1.0:
            raise InvalidInputError(
                "no_answer_threshold applies to SQuAD v2.0 only", field="no_answer_threshold",
                fix="Load the metric with 'squad_v2'.",
            )
        return compute_squad_metrics(predictions, references, version_2_with_negative=self._version_2,
                                     no_answer_threshold=no_answer_threshold)
