"""`kosov mirror`: a folder built the way mirror() builds it (only the network fetch is replaced, by a fake Hub
serving repo files in the real repos' formats and schemas), copied elsewhere like a USB transfer, then used
offline: lm-eval's own, unchanged Korean tasks and a hub-id model load from it in a fresh process."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from training.errors import KosovError
from training.mirror import PARQUET_EXPORT, mirror
from training.mirror_check import model_path, read_manifest, require, use_mirror, verify

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "hf_kosovTestSecretToken0123456789"
MODEL = "kosov-test/tiny-ko"
TASKS = ["kobest_boolq", "kobest_copa", "kmmlu_accounting", "haerae_history"]

BOOLQ = [
    {"paragraph": "서울은 대한민국의 수도이며 한강이 도시를 가로지른다.", "question": "서울은 대한민국의 수도인가?", "label": 1},
    {"paragraph": "고래는 바다에 살지만 새끼에게 젖을 먹이는 포유류이다.", "question": "고래는 어류인가?", "label": 0},
    {"paragraph": "한글은 세종대왕이 창제하여 1446년에 반포하였다.", "question": "한글은 세종대왕이 만들었는가?", "label": 1},
    {"paragraph": "제주도는 한반도 남쪽 바다에 있는 화산섬이다.", "question": "제주도는 내륙에 있는가?", "label": 0},
]
COPA = [
    {"premise": "물을 오래 끓였다.", "question": "결과", "alternative_1": "물의 양이 줄었다.", "alternative_2": "물이 얼었다.", "label": 0},
    {"premise": "길이 미끄러웠다.", "question": "원인", "alternative_1": "해가 쨍쨍했다.", "alternative_2": "밤새 눈이 내렸다.", "label": 1},
    {"premise": "아이가 울음을 터뜨렸다.", "question": "원인", "alternative_1": "장난감이 부서졌다.", "alternative_2": "선물을 받았다.", "label": 0},
    {"premise": "우산을 챙겼다.", "question": "원인", "alternative_1": "일기예보에서 비 소식을 들었다.", "alternative_2": "날씨가 맑았다.", "label": 0},
]
KMMLU = [  # KMMLU's columns; answer is 1-4 (the task's doc_to_target is answer-1)
    {"question": "복식부기에서 자산의 증가는 어느 쪽에 기록하는가?", "answer": 1, "A": "차변", "B": "대변", "C": "잔액", "D": "비고",
     "Category": "HUMSS", "Human Accuracy": 0.7},
    {"question": "재무상태표의 등식으로 옳은 것은?", "answer": 2, "A": "자산 = 부채 - 자본", "B": "자산 = 부채 + 자본",
     "C": "자본 = 자산 + 부채", "D": "부채 = 자산 + 자본", "Category": "HUMSS", "Human Accuracy": 0.8},
    {"question": "감가상각의 대상이 아닌 것은?", "answer": 3, "A": "건물", "B": "기계장치", "C": "토지", "D": "차량운반구",
     "Category": "HUMSS", "Human Accuracy": 0.6},
    {"question": "현금흐름표에서 배당금 지급은 주로 어느 활동인가?", "answer": 4, "A": "영업활동", "B": "투자활동", "C": "기타활동",
     "D": "재무활동", "Category": "HUMSS", "Human Accuracy": 0.5},
]
HAERAE = [  # HAE-RAE's columns for lm-eval: a query holding the options, and the answer as "(A)".."(E)"
    {"query": "다음 중 조선을 건국한 인물은?\n(A) 이성계 (B) 왕건 (C) 궁예 (D) 견훤 (E) 주몽", "answer": "(A)"},
    {"query": "훈민정음을 반포한 왕은?\n(A) 태종 (B) 세종 (C) 세조 (D) 성종 (E) 정조", "answer": "(B)"},
    {"query": "임진왜란이 일어난 해는?\n(A) 1392년 (B) 1443년 (C) 1592년 (D) 1636년 (E) 1910년", "answer": "(C)"},
    {"query": "고려의 수도는 어디였는가?\n(A) 한양 (B) 경주 (C) 평양 (D) 개경 (E) 공주", "answer": "(D)"},
]


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def csv(rows) -> bytes:
    import pandas as pd

    return pd.DataFrame(rows).to_csv(index=False).encode()


def parquet(rows) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def card(configs: dict[str, dict[str, str]]) -> bytes:
    """A dataset card whose YAML `configs:` maps each config's splits to files, as the real repos declare them."""
    lines = ["---", "license: cc-by-sa-4.0", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: \"{path}\"" for split, path in splits.items()]
    return "\n".join(lines + ["---", "# test card", ""]).encode()


def fake_hub(model_dir: Path) -> dict:
    """(repo type, id, revision) -> (commit, files): each repo in the format it ships on the Hub."""
    kobest = {f"{c}/{s}.jsonl": jsonl(rows) for c, rows in (("boolq", BOOLQ), ("copa", COPA))
              for s in ("train", "validation", "test")}
    kobest["README.md"] = card({c: {s: f"{c}/{s}.jsonl" for s in ("train", "validation", "test")}
                                for c in ("boolq", "copa")})
    kmmlu = {f"data/{subject}-{s}.csv": csv(KMMLU) for subject in ("Accounting", "Law") for s in ("train", "dev", "test")}
    kmmlu["README.md"] = card({subject: {s: f"data/{subject}-{s}.csv" for s in ("train", "dev", "test")}
                               for subject in ("Accounting", "Law")})
    # The script layout (the Hub could not be reached to check what the real repo ships today): datasets 5 runs
    # no loading scripts, so mirror() must take the rows from the repo's parquet export.
    haerae_main = {"HAE_RAE_BENCH.py": b"raise SystemExit('a loading script is never run')\n", "README.md": card({})}
    haerae_export = {f"{c}/test/0000.parquet": parquet(HAERAE) for c in ("history", "loan_words")}
    model = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}
    return {
        ("model", MODEL, "main"): ("1" * 40, model),
        ("dataset", "skt/kobest_v1", "main"): ("2" * 40, kobest),
        ("dataset", "HAERAE-HUB/KMMLU", "main"): ("3" * 40, kmmlu),
        ("dataset", "HAERAE-HUB/HAE_RAE_BENCH", "main"): ("4" * 40, haerae_main),
        ("dataset", "HAERAE-HUB/HAE_RAE_BENCH", PARQUET_EXPORT): ("5" * 40, haerae_export),
    }


def fake_download(hub: dict, calls: list):
    """hub_download's contract without the network: files written to staging(commit) as snapshot_download(local_dir=)
    writes them, then mirror() moves them into the hub cache and builds the Arrow cache as for real. The whole repo
    whatever configs are asked for (hub_download's answer where the card does not say which files they read)."""

    def download(repo_id, *, repo_type, revision, token, staging, configs=None):
        calls.append((repo_type, repo_id, revision, token))
        commit, files = hub[(repo_type, repo_id, revision)]
        local, out = staging(commit), {}
        for rel, data in files.items():
            (local / rel).parent.mkdir(parents=True, exist_ok=True)
            (local / rel).write_bytes(data)
            out[rel] = local / rel
        return commit, out

    return download


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory, kosov_cache):
    from training.schema import TinyModelConfig
    from training.tiny_ko import tiny_model_dir

    hub, calls = fake_hub(tiny_model_dir(TinyModelConfig())), []
    built = tmp_path_factory.mktemp("connected") / "mirror"
    manifest = mirror(built, model=MODEL, tasks=TASKS, token=SECRET, download=fake_download(hub, calls))
    copy = tmp_path_factory.mktemp("closed") / "mirror"  # rsync / USB: the folder alone travels
    shutil.copytree(built, copy)
    return {"built": built, "folder": copy, "manifest": manifest, "calls": calls, "hub": hub}


OFFLINE_RUN = """
import json, sys
from training.mirror_check import use_mirror
folder, tasks, out = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
use_mirror(folder, model="kosov-test/tiny-ko", tasks=tasks)  # before datasets / lm_eval are imported
import lm_eval
r = lm_eval.simple_evaluate(model="hf", model_args="pretrained=kosov-test/tiny-ko", tasks=tasks, limit=4,
                            device="cpu", batch_size=4, log_samples=True)
docs = {t: [s["doc"] for s in r["samples"][t]] for t in tasks}
json.dump({"results": r["results"], "docs": docs}, open(out, "w"), ensure_ascii=False, default=str)
"""


def test_builtin_korean_tasks_run_offline_from_the_copied_mirror(mirrored, tmp_path):
    import lm_eval.tasks

    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}  # use_mirror() sets them
    env.update(HF_HOME=str(tmp_path / "empty-hf-home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-c", OFFLINE_RUN, str(mirrored["folder"]), ",".join(TASKS), str(out)],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    for task in TASKS:
        assert "acc,none" in result["results"][task], result["results"][task]
        assert len(result["docs"][task]) == 4
    # The rows evaluated are the mirrored ones, read through the tasks' own unchanged dataset_path/dataset_name.
    assert {d["paragraph"] for d in result["docs"]["kobest_boolq"]} == {r["paragraph"] for r in BOOLQ}
    assert {d["premise"] for d in result["docs"]["kobest_copa"]} == {r["premise"] for r in COPA}
    assert {d["question"] for d in result["docs"]["kmmlu_accounting"]} == {r["question"] for r in KMMLU}
    assert {d["query"] for d in result["docs"]["haerae_history"]} == {r["query"] for r in HAERAE}
    boolq_yaml = Path(lm_eval.tasks.__file__).parent / "kobest" / "kobest_boolq.yaml"
    assert "dataset_path: skt/kobest_v1" in boolq_yaml.read_text(encoding="utf-8")


def test_suite_datasets_come_from_lm_evals_task_files():
    from training.mirror import SUITE_DATASETS

    assert SUITE_DATASETS["kobest"] == {"skt/kobest_v1": ("boolq", "copa", "hellaswag", "sentineg", "wic")}
    (kmmlu,) = SUITE_DATASETS["kmmlu"].items()
    assert kmmlu[0] == "HAERAE-HUB/KMMLU" and len(kmmlu[1]) == 45 and "Accounting" in kmmlu[1]
    assert SUITE_DATASETS["haerae"] == {"HAERAE-HUB/HAE_RAE_BENCH": (
        "general_knowledge", "history", "loan_words", "rare_words", "standard_nomenclature")}
    assert SUITE_DATASETS["click"] == {"EunsuKim/CLIcK": (None,)}  # no dataset_name: the repo's default config
    assert SUITE_DATASETS["hrm8k"] == {"HAERAE-HUB/HRM8K": ("GSM8K", "KSM", "MATH", "MMMLU", "OMNI_MATH")}
    assert list(SUITE_DATASETS["kormedmcqa"]) == ["sean0042/KorMedMCQA"]


def test_manifest_round_trips_and_records_what_was_mirrored(mirrored):
    manifest = read_manifest(mirrored["folder"])
    assert manifest == mirrored["manifest"]
    model = manifest["models"][MODEL]
    assert model["commit"] == "1" * 40 and model["revision"] == "main"
    assert model["bytes"] == sum(f["size"] for f in model["files"].values()) > 0
    assert (model_path(mirrored["folder"], MODEL) / "config.json").is_file()
    kobest = manifest["datasets"]["skt/kobest_v1"]
    assert kobest["configs"] == {"boolq": {"train": 4, "validation": 4, "test": 4},
                                 "copa": {"train": 4, "validation": 4, "test": 4}}
    assert manifest["datasets"]["HAERAE-HUB/KMMLU"]["configs"] == {"Accounting": {"train": 4, "dev": 4, "test": 4}}
    haerae = manifest["datasets"]["HAERAE-HUB/HAE_RAE_BENCH"]
    assert haerae["parquet_export"]["commit"] == "5" * 40 and haerae["configs"] == {"history": {"test": 4}}
    assert manifest["tasks"]["kobest_copa"] == ["skt/kobest_v1", "copa"]
    assert manifest["libraries"]["datasets"] and manifest["created"] <= manifest["updated"]
    assert verify(mirrored["folder"]) == []


def test_mirroring_again_adds_to_the_folder(mirrored, tmp_path):
    calls = []
    folder = tmp_path / "m"
    first = mirror(folder, tasks=["kobest_boolq"], download=fake_download(mirrored["hub"], calls))
    second = mirror(folder, datasets=["skt/kobest_v1:copa"], download=fake_download(mirrored["hub"], calls))
    assert list(second["datasets"]["skt/kobest_v1"]["configs"]) == ["boolq", "copa"]
    assert second["created"] == first["created"] and "kobest_boolq" in second["tasks"]
    require(folder, tasks=["kobest_boolq"], datasets=["skt/kobest_v1:copa"])


def test_what_the_mirror_lacks_is_a_clear_error(mirrored):
    folder = mirrored["folder"]
    with pytest.raises(KosovError) as error:
        require(folder, tasks=["kobest_wic"])
    message = str(error.value)
    assert f"not in the mirror at {folder}" in message and "skt/kobest_v1" in message and "wic" in message
    assert "kosov mirror" in message and "--task kobest_wic" in message
    with pytest.raises(KosovError, match="Qwen/Qwen3-8B"):
        require(folder, model="Qwen/Qwen3-8B")
    with pytest.raises(KosovError, match="HAERAE-HUB/KMMLU:Law"):
        require(folder, datasets=["HAERAE-HUB/KMMLU:Law"])  # in the repo, but not prepared
    with pytest.raises(KosovError, match="no kosov mirror"):
        require(folder.parent / "nothing-here")


def test_the_token_is_passed_to_the_hub_but_written_nowhere(mirrored):
    assert {call[3] for call in mirrored["calls"]} == {SECRET}
    secret = SECRET.encode()
    files = [p for p in mirrored["built"].rglob("*") if p.is_file()]
    assert files and not [p for p in files if secret in p.read_bytes()]


def test_the_layout_is_huggingface_hubs_cache_and_survives_checks(mirrored):
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    hub = mirrored["folder"] / "hf_home" / "hub"
    found = try_to_load_from_cache(MODEL, "config.json", cache_dir=hub)
    assert found and Path(found) == model_path(mirrored["folder"], MODEL) / "config.json"
    assert not [p for p in mirrored["folder"].rglob("*") if p.is_symlink()]  # copies to any file system
    repos = {r.repo_id: r for r in scan_cache_dir(hub).repos}
    assert {"skt/kobest_v1", "HAERAE-HUB/KMMLU", MODEL} <= set(repos)


def test_verify_finds_a_damaged_copy_and_use_mirror_refuses_to_come_too_late(mirrored, tmp_path):
    __import__("huggingface_hub")  # imported here, so this process is past redirecting

    damaged = tmp_path / "damaged"
    shutil.copytree(mirrored["folder"], damaged)
    (model_path(damaged, MODEL) / "config.json").write_text("{}")
    assert verify(damaged) == [f"model {MODEL}: config.json is missing or differs"]
    # what offline loads read besides the snapshots: the prepared Arrow cache and the refs naming the commit
    from training.mirror import dataset_cache_dir
    from training.mirror_check import hf_home, repo_dir

    arrow = next(dataset_cache_dir(damaged, "skt/kobest_v1").rglob("*.arrow"))
    data = arrow.read_bytes()
    arrow.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])  # one flipped byte
    (repo_dir(damaged, "dataset", "skt/kobest_v1") / "refs" / "main").unlink()
    problems = verify(damaged)
    assert f"dataset skt/kobest_v1: the prepared cache file {arrow.relative_to(hf_home(damaged)).as_posix()} is " \
           "missing or differs" in problems
    assert "dataset skt/kobest_v1: refs/main is missing or no longer 222222222222" in problems
    with pytest.raises(KosovError, match="too late"):
        use_mirror(mirrored["folder"], model=MODEL)


def test_kosov_eval_runs_a_recipe_from_the_mirror(mirrored, tmp_path):
    """The same recipe on the closed network: `mirror=FOLDER`, a hub-id model and built-in tasks, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "empty-hf-home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = tmp_path / "eval"
    run = subprocess.run([sys.executable, "-m", "training.cli", "eval", "experiment=smoke-eval",
                          f"mirror={mirrored['folder']}", f"model.name_or_path={MODEL}",
                          "eval.tasks=[kobest_boolq,kobest_copa]", "eval.limit=4", "eval.math.enabled=false",
                          "eval.language.enabled=false", f"output_dir={out}"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    rows = {r["task"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    assert rows["kobest_boolq"]["n"] == 4 and 0 <= rows["kobest_copa"]["base"] <= 1
    missing = subprocess.run([sys.executable, "-m", "training.cli", "eval", "experiment=smoke-eval",
                              f"mirror={tmp_path / 'not-a-mirror'}", f"output_dir={tmp_path / 'x'}"],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no kosov mirror" in missing.stderr and "Traceback" not in missing.stderr


def test_eval_scores_of_a_hub_model_are_cached_per_commit(mirrored):
    """A hub id's `main` moves: the eval cache keys scores by the commit it names (here read from the mirror)."""
    from training.evaluation.identity import hub_commit
    from training.mirror_check import hf_home

    hub = hf_home(mirrored["folder"]) / "hub"
    assert hub_commit(MODEL, None, cache_dir=hub) == "1" * 40 == hub_commit(MODEL, "main", cache_dir=hub)
    assert hub_commit(MODEL, "a" * 40, cache_dir=hub) == "a" * 40  # a pinned commit is its own answer
    assert hub_commit("kosov-test/not-mirrored", None, cache_dir=hub) is None


def test_mirror_null_turns_off_the_kosov_mirror_environment_variable(tmp_path, monkeypatch):
    from training.cli import apply_mirror

    monkeypatch.setenv("KOSOV_MIRROR", str(tmp_path / "no-mirror-here"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(KosovError):
        apply_mirror([])  # the variable names a folder that is not a mirror: said clearly
    apply_mirror(["mirror=null"])  # the command line turns it off: the hub (or its cache), no error
    assert "HF_HUB_CACHE" not in os.environ


@pytest.mark.parametrize("argv, message", [
    ([], "nothing to mirror"),
    (["--revision", "main"], "--revision is the model's revision, and no --model was given"),
])
def test_a_mirror_call_with_nothing_to_do_is_refused_and_writes_nothing(tmp_path, capsys, argv, message):
    """Both exited 0 and wrote an empty manifest, which mirror=FOLDER then accepted as a mirror."""
    from training.mirror import main

    assert main([str(tmp_path / "m"), *argv]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "m").exists()
