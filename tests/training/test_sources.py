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


def _rows(texts: list[str]):
    from data_tools.chat_io import ChatFileReport, ChatRow

    return ChatFileReport(rows=[ChatRow(messages=[{"role": "user", "content": t}, {"role": "assistant",
                                                                                  "content": f"{t}에 답합니다."}],
                                        meta=None, where=f"rows.jsonl:{i + 1}") for i, t in enumerate(texts)])


@pytest.mark.parametrize("seed", range(5))
def test_copies_of_a_row_never_land_on_both_sides_of_the_eval_split(seed):
    """A dataset holding the same conversation several times (merged sources, an unchecked generator): a held-out
    copy of a row that also trains makes eval loss measure memory."""
    from training.data_rows import split_eval

    texts = [f"질문 {i}" for i in range(40)] + [f"질문 {i}" for i in range(12)] * 2  # 12 rows three times over
    train, held = split_eval(_rows(texts), None, 0.2, seed)
    trained = {r.messages[0]["content"] for r in train}
    assert not trained & {r.messages[0]["content"] for r in held}
    assert 0 < len(held) <= round(len(texts) * 0.2) and len(train) + len(held) == len(texts)


def test_without_copies_the_eval_split_is_the_one_earlier_versions_made():
    """A run resumed after upgrading kosov must hold out the same rows it held out before."""
    import random

    from training.data_rows import split_eval

    texts = [f"질문 {i}" for i in range(60)]
    order = list(range(60))
    random.Random(3).shuffle(order)
    _, held = split_eval(_rows(texts), None, 0.1, 3)
    assert [r.where for r in held] == [f"rows.jsonl:{i + 1}" for i in sorted(order[:6])]


def test_eval_files_sharing_rows_with_the_training_data_are_named(caplog):
    from training.data_rows import split_eval

    with caplog.at_level("WARNING", logger="training.data_rows"):
        split_eval(_rows(["가", "나", "다"]), _rows(["나", "라"]), 0.0, 0)
    assert "1 of the 2 eval rows (data.eval_files) are also in the training data" in caplog.text


def test_a_resume_on_a_dataset_folder_whose_rows_changed_is_refused_before_they_render(tmp_path, monkeypatch):
    """A dataset folder (or a Hub dataset without data.hub_revision) recorded no hash a resume compared: a run
    continued on other rows. A changed row is refused as the rows load, before any is rendered; the rows' hash is the
    same in another process and after a copy that changes the files' times (unchanged data resumes)."""
    import os
    import subprocess
    import sys

    import training.sft_data as sft_data
    from data_tools.chat_io import load_chat_hub

    folder = tmp_path / "ko-dataset"
    folder.mkdir()
    rows = [{"messages": [{"role": "user", "content": f"질문 {i}"}, {"role": "assistant", "content": f"답 {i}"}]}
            for i in range(12)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    out = tmp_path / "run"
    common = ["data.train_files=[]", f"data.hub_id={folder}", "data.eval_ratio=0", "method.save_steps=1"]
    train(compose(quick(f"output_dir={out}", *common, "method.max_steps=1")))
    os.utime(folder / "train.jsonl", (1, 1))  # copied without its times: datasets' fingerprint changes, not the rows
    resumed = train(compose(quick(f"output_dir={out}", *common, "method.max_steps=2", "resume=true")))
    assert resumed.metrics["global_step"] == 2  # the same rows: resumed

    rows[5]["messages"][1]["content"] = "완전히 다른 답"
    (folder / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    rendered = []
    real = sft_data.render_conversation
    monkeypatch.setattr(sft_data, "render_conversation", lambda *a, **k: rendered.append(1) or real(*a, **k))
    with pytest.raises(KosovError, match="the data changed") as error:
        train(compose(quick(f"output_dir={out}", *common, "method.max_steps=3", "resume=true")))
    assert f"{folder} (rows_sha256 " in str(error.value) and "overwrite=true" in error.value.fix
    assert not rendered  # refused as the rows loaded

    digest = load_chat_hub(str(folder), split="train").sources[0]["rows_sha256"]
    elsewhere = subprocess.run([sys.executable, "-c", "import sys; from data_tools.chat_io import load_chat_hub; "
                                "print(load_chat_hub(sys.argv[1], split='train').sources[0]['rows_sha256'])",
                                str(folder)], capture_output=True, text=True, check=True, env=os.environ)
    assert elsewhere.stdout.strip() == digest
