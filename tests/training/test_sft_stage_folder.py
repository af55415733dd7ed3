"""A chained SFT → GRPO run in a folder Hydra reads only in quotes (Korean letters, spaces): its SFT stage's folder,
output_dir/sft, is composed by kosov itself and must be quoted the same way."""

from __future__ import annotations

import json

import pytest

from training.errors import KosovError
from training.recipes import compose
from training.train import train


def test_a_chained_run_in_a_korean_folder_composes_its_sft_stage(tmp_path):
    prompts = tmp_path / "math.jsonl"
    prompts.write_text(json.dumps({"prompt": "3 더하기 4는?", "answer": "7"}, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    out = tmp_path / "실험 폴더"
    cfg = compose(["experiment=smoke-sft-grpo", f'output_dir="{out}"', "data.eval_ratio=0",
                   f"data.train_files=[{prompts}]"])
    # the stage composes (the Hydra error about letters outside quotes came first) and reaches the prompt check,
    # which refuses one prompt before the stage trains
    with pytest.raises(KosovError, match=r"1 training prompt\(s\) left, but one generation round takes 2"):
        train(cfg)
    assert not (out / "sft").exists()
