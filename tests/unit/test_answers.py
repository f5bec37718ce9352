"""squad_version and check_trainable: the SQuAD version of a dataset, and a training split
that holds no answer."""

import pytest

from components.qa.answers import SQUAD_V1, SQUAD_V2, check_trainable, count_unanswerable, squad_version
from components.qa.errors import InvalidInputError


@pytest.mark.parametrize("unanswerable,declared,expected", [
    (0, None, SQUAD_V1), (0, "1.1", SQUAD_V1), (0, "v1.1", SQUAD_V1),
    (0, "v2.0", SQUAD_V2), (0, "2.0", SQUAD_V2), (0, "V2.0", SQUAD_V2),
    (1, None, SQUAD_V2), (5, "1.1", SQUAD_V2),  # rows win: squad_io refuses such a v1.1 file
])
def test_squad_version(unanswerable, declared, expected):
    assert squad_version(unanswerable, declared) == expected


def test_count_unanswerable():
    answers = [{"text": ["a"], "answer_start": [0]}, {"text": [], "answer_start": []},
               {"text": ["b", "b"], "answer_start": [1, 1]}, {"text": [], "answer_start": []}]
    assert count_unanswerable(answers) == 2


def test_check_trainable_refuses_only_a_split_without_answers():
    check_trainable(10, 9, "train.json")  # one answered question is enough
    check_trainable(0, 0, "train.json")  # empty splits are refused elsewhere, by name
    with pytest.raises(InvalidInputError) as err:
        check_trainable(10, 10, "data/train.json (split 'train')")
    assert str(err.value).startswith("in data/train.json (split 'train'), field 'answers': "
                                     "none of the 10 training questions has an answer")
