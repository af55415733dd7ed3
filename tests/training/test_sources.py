"""Where models and data come from: a local model folder, a hub id (unreachable here: a clear error), a
dataset by hub id or local dataset folder."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import quick
from training.schema import TinyModelConfig
from training.recipes import compose
from training.errors import KosovError
from training.tiny_ko import tiny_model_dir
from training.train import train


def test_a_local_model_folder_trains_like_a_hub_checkpoint(tmp_path):
    folder = tmp_path / "my-base"
    shutil.copytree(tiny_model_dir(TinyModelConfig()), folder)
    result = train(compose(quick(f"output_dir={tmp_path / 'run'}", f"model.name_or_path={folder}")))
    adapter = json.loads((result.run_dir / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(folder)


def test_an_unreachable_hub_model_is_a_clear_error(tmp_path):
    cfg = compose(quick(f"output_dir={tmp_path / 'run'}", "model=qwen3-0.6b", "device=cpu"))
    with pytest.raises(KosovError) as error:
        train(cfg)  # HF_HUB_OFFLINE=1 here, like an air-gapped machine
    assert "Qwen/Qwen3-0.6B" in str(error.value) and "local folder" in str(error.value)


def test_a_path_that_is_neither_folder_nor_hub_id_is_named(tmp_path):
    cfg = compose(quick(f"output_dir={tmp_path / 'run'}", f"model.name_or_path={tmp_path / 'missing'}"))
    with pytest.raises(KosovError, match="no such folder"):
        train(cfg)
    cfg = compose(quick(f"output_dir={tmp_path / 'run'}", "model.name_or_path=not a hub id"))
    with pytest.raises(KosovError, match="neither a local folder nor a hub id"):
        train(cfg)


def test_a_model_folder_without_a_config_says_so(tmp_path):
    (tmp_path / "empty-model").mkdir()
    cfg = compose(quick(f"output_dir={tmp_path / 'run'}", f"model.name_or_path={tmp_path / 'empty-model'}"))
    with pytest.raises(KosovError, match="folder without a config.json"):
        train(cfg)


def test_an_unreachable_hub_dataset_is_a_clear_error(tmp_path):
    cfg = compose(quick(f"output_dir={tmp_path / 'run'}", "data.train_files=[]", "data.hub_id=kosov-test/no-such"))
    with pytest.raises(KosovError) as error:
        train(cfg)
    assert "kosov-test/no-such" in str(error.value) and "data.train_files" in str(error.value)


def test_a_dataset_folder_loads_through_the_hub_path(tmp_path):
    folder = tmp_path / "ko-dataset"
    folder.mkdir()
    row = {"messages": [{"role": "user", "content": "김치는 어떤 음식인가요?"},
                        {"role": "assistant", "content": "배추나 무를 소금에 절여 양념한 한국의 발효 음식입니다."}]}
    (folder / "train.jsonl").write_text((json.dumps(row, ensure_ascii=False) + "\n") * 12, encoding="utf-8")
    result = train(compose(quick(f"output_dir={tmp_path / 'run'}", "data.train_files=[]",
                                 f"data.hub_id={folder}")))
    assert result.metrics["data"]["train_rows"] + result.metrics["data"]["eval_rows"] == 12
    assert result.metrics["data"]["sources"][0]["hub_id"] == str(folder)
