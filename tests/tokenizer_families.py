"""Offline tokenizer families, each saved with a tiny random QA model, for tests.

The Hub is unreachable here, and the MiniLM tokenizer the profiles use is one family
(uncased WordPiece). Bugs that depend on the tokenizer (padding side, offsets that
include the space before a word) need the others, so they are trained here with the
`tokenizers` library on the SQuAD contexts shipped in data/squad-sample:

- ``roberta``: byte-level BPE, <s> </s> specials, trimmed offsets (RoBERTa style);
- ``roberta-left``: the same, saved with ``padding_side="left"``;
- ``xlmr``: SentencePiece Unigram with Metaspace (XLM-R style): the offsets of a
  "▁word" token include the space before the word;
- ``bert-cased``: cased WordPiece with [CLS] [SEP] and token type ids.

Each is a `PreTrainedTokenizerFast` saved with `save_pretrained` next to a random
2-layer, hidden-32 model of the matching QA class, so `AutoTokenizer` and
`AutoModelForQuestionAnswering` load the folder as they load a Hub checkpoint.

    from tests.tokenizer_families import build_family
    path = build_family("xlmr", tmp_dir)        # a model directory

Pytest: the session-scoped `tokenizer_family_dirs` fixture (tests/conftest.py) builds
all of them once and maps each family to its folder.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "squad-sample" / "train.json"

FAMILIES = ("roberta", "roberta-left", "xlmr", "bert-cased")
VOCAB_SIZE = 3000
NUM_CONTEXTS = 1500  # texts: contexts and their questions


def sample_contexts(limit: int = NUM_CONTEXTS) -> list[str]:
    """The first `limit` distinct contexts (and their questions) of the shipped sample."""
    texts: list[str] = []
    for article in json.loads(SAMPLE.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            texts.append(paragraph["context"])
            texts.extend(qa["question"] for qa in paragraph["qas"])
            if len(texts) >= limit:
                return texts
    return texts


# RoBERTa and XLM-R share their special tokens and model inputs
_ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
_ROBERTA_KWARGS = dict(bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
                       pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                       model_input_names=["input_ids", "attention_mask"])


def _roberta_tokenizer(texts: list[str]):
    from tokenizers import ByteLevelBPETokenizer, processors

    tok = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    tok.train_from_iterator(texts, vocab_size=VOCAB_SIZE, min_frequency=2,
                            special_tokens=_ROBERTA_SPECIALS)
    tok._tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")),
        trim_offsets=True, add_prefix_space=False)
    return tok._tokenizer, _ROBERTA_KWARGS


def _templated(tok, cls: str, sep: str, pair: str):
    """The backend of `tok` with a [cls] $A [sep] post-processor and the given pair template."""
    from tokenizers import processors

    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=pair,
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return tok._tokenizer


def _xlmr_tokenizer(texts: list[str]):
    from tokenizers import SentencePieceUnigramTokenizer

    tok = SentencePieceUnigramTokenizer(replacement="▁", add_prefix_space=True)
    tok.train_from_iterator(texts, vocab_size=VOCAB_SIZE, unk_token="<unk>",
                            special_tokens=_ROBERTA_SPECIALS)
    return _templated(tok, "<s>", "</s>", "<s> $A </s> </s> $B </s>"), _ROBERTA_KWARGS


def _bert_cased_tokenizer(texts: list[str]):
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    tok.train_from_iterator(texts, vocab_size=VOCAB_SIZE, min_frequency=2,
                            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return _templated(tok, "[CLS]", "[SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"), dict(
        cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
        mask_token="[MASK]", model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def _model(family: str, tokenizer):
    """A random QA model of the family's class (hidden 32, 2 layers), seeded."""
    import torch
    from transformers import (
        BertConfig,
        BertForQuestionAnswering,
        RobertaConfig,
        RobertaForQuestionAnswering,
        XLMRobertaConfig,
        XLMRobertaForQuestionAnswering,
    )

    torch.manual_seed(0)
    size = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                num_attention_heads=2, intermediate_size=64,
                pad_token_id=tokenizer.pad_token_id)
    if family == "bert-cased":
        return BertForQuestionAnswering(BertConfig(max_position_embeddings=512, **size))
    config, model = ((XLMRobertaConfig, XLMRobertaForQuestionAnswering) if family == "xlmr"
                     else (RobertaConfig, RobertaForQuestionAnswering))
    # RoBERTa and XLM-R count positions from pad_token_id + 1
    return model(config(max_position_embeddings=512 + tokenizer.pad_token_id + 1,
                        type_vocab_size=1, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, **size))


_BUILDERS = {"roberta": _roberta_tokenizer, "roberta-left": _roberta_tokenizer,
             "xlmr": _xlmr_tokenizer, "bert-cased": _bert_cased_tokenizer}


def build_tokenizer(family: str, texts: list[str] | None = None):
    """The family's `PreTrainedTokenizerFast`, trained on `texts` (default: the sample)."""
    from transformers import PreTrainedTokenizerFast

    if family not in _BUILDERS:
        raise ValueError(f"unknown tokenizer family {family!r}; use one of {FAMILIES}")
    backend, specials = _BUILDERS[family](texts or sample_contexts())
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=512,
        padding_side="left" if family.endswith("-left") else "right", **specials)


def build_family(family: str, out_dir: Path | str) -> str:
    """Save the family's tokenizer and tiny QA model into out_dir/family; return the path.

    A folder already holding both is reused (a cache across tests of one session).
    """
    path = Path(out_dir) / family
    if (path / "config.json").exists() and (path / "tokenizer.json").exists():
        return str(path)
    tokenizer = build_tokenizer(family)
    model = _model(family, tokenizer)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
