"""`kosov convert kormo`: a tiny checkpoint in KORMo's layout (norms named pre_attention_layernorm /
pre_mlp_layernorm, model_type kormo with an auto_map, two shards and an index) becomes a Llama checkpoint that
plain `from_pretrained` loads, with exactly the logits of the Llama model the weights came from."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from training.convert import INDEX, RECORD, convert_kormo, main, read_header, rewrite_shard
from training.errors import KosovError

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"
TO_KORMO = {"input_layernorm": "pre_attention_layernorm", "post_attention_layernorm": "pre_mlp_layernorm"}
KORMO_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "hidden_act", "max_position_embeddings", "initializer_range", "rms_norm_eps",
              "use_cache", "pad_token_id", "bos_token_id", "eos_token_id", "pretraining_tp", "tie_word_embeddings",
              "attention_bias", "attention_dropout", "mlp_bias", "head_dim")


def write_kormo_layout(model, tokenizer, out):
    """Save a Llama model as KORMo ships: renamed norms, two shards + index, a KORMo config with remote code."""
    state = {".".join(TO_KORMO.get(p, p) for p in k.split(".")): v.contiguous() for k, v in model.state_dict().items()}
    names = sorted(state)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    out.mkdir(parents=True)
    for shard, keys in halves.items():
        save_file({k: state[k] for k in keys}, str(out / shard), metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(v.numel() * 4 for v in state.values())},
             "weight_map": {k: shard for shard, keys in halves.items() for k in keys}}
    (out / INDEX).write_text(json.dumps(index))
    c = model.config
    config = {"architectures": ["KORMoForCausalLM"], "model_type": "kormo",
              "auto_map": {"AutoConfig": "_configuration_kormo.KORMoConfig",
                           "AutoModelForCausalLM": "_modeling_kormo.KORMoForCausalLM"},
              **{k: getattr(c, k) for k in KORMO_KEYS}, "rope_theta": 500000.0, "rope_scaling": None,
              "mask_type": None, "torch_dtype": "float32", "transformers_version": "4.57.1"}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "_modeling_kormo.py").write_text("raise RuntimeError('remote code must never run')\n")
    (out / "_configuration_kormo.py").write_text("raise RuntimeError('remote code must never run')\n")
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def llama():
    """A tiny random Llama (fp32) with random norm weights, so a swapped or missed norm changes the logits."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from training.tiny_ko import load_tiny_tokenizer

    tokenizer = load_tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, rope_theta=500000.0,
                         tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1 + 0.5 * torch.randn_like(param))
    model.generation_config = GenerationConfig(eos_token_id=[tokenizer.eos_token_id], pad_token_id=0)
    return model, tokenizer


@pytest.fixture(scope="module")
def kormo_src(llama, tmp_path_factory):
    # A Hugging Face cache snapshot path, so the record can name the repo and commit.
    root = tmp_path_factory.mktemp("hub") / "models--KORMo-Team--KORMo-10B-sft" / "snapshots" / SNAPSHOT
    return write_kormo_layout(*llama, root)


@pytest.fixture(scope="module")
def converted(kormo_src, tmp_path_factory):
    dst = tmp_path_factory.mktemp("out") / "kormo-llama"
    assert main(["kormo", str(kormo_src), str(dst)]) == 0
    return dst


def test_the_converted_checkpoint_is_a_llama_with_the_same_logits(llama, converted):
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    model, tokenizer = llama
    loaded = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32).eval()  # no trust_remote_code
    assert type(loaded) is LlamaForCausalLM
    ids = tokenizer(["서울의 날씨는 맑고 따뜻합니다.", "한국어 문장을 두 개 넣어요"], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected, got = model(**ids).logits, loaded(**ids).logits
    assert torch.equal(got, expected)


def test_weights_are_renamed_bit_identical_and_indexed(llama, converted):
    state = llama[0].state_dict()
    index = json.loads((converted / INDEX).read_text())
    assert set(index["weight_map"]) == set(state)
    assert not any("pre_attention_layernorm" in k or "pre_mlp_layernorm" in k for k in index["weight_map"])
    for key, shard in index["weight_map"].items():
        with safe_open(str(converted / shard), framework="pt") as f:
            assert torch.equal(f.get_tensor(key), state[key]), key


def test_config_is_llama_with_every_kormo_value(kormo_src, converted):
    source = json.loads((kormo_src / "config.json").read_text())
    config = json.loads((converted / "config.json").read_text())
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert "auto_map" not in config
    assert {k: v for k, v in source.items() if k not in ("model_type", "architectures", "auto_map")} == \
           {k: v for k, v in config.items() if k not in ("model_type", "architectures")}


def test_a_rope_scaling_is_carried_over_as_the_source_has_it(kormo_src):
    """LlamaConfig edits the rope_scaling dict it is given (adds rope_theta, rope_type): the written config must
    still hold the source's."""
    from training.convert import llama_config

    source = json.loads((kormo_src / "config.json").read_text())
    for scaling in ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024},
                    {"type": "linear", "factor": 2.0}):
        out, _ = llama_config({**source, "rope_scaling": dict(scaling)})
        assert out["rope_scaling"] == scaling


def test_tokenizer_template_and_generation_config_travel_and_remote_code_does_not(kormo_src, converted):
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        assert (converted / name).read_bytes() == (kormo_src / name).read_bytes(), name
    assert not list(converted.glob("*.py"))


def test_conversion_record(kormo_src, converted):
    record = json.loads((converted / RECORD).read_text())
    assert record["source_repo"] == "KORMo-Team/KORMo-10B-sft" and record["source_revision"] == SNAPSHOT
    assert record["renamed_keys"] == 2 * 2  # two norms in each of two layers
    assert record["config_keys_not_in_llama"] == ["mask_type"]
    assert sorted(record["dropped_files"]) == ["_configuration_kormo.py", "_modeling_kormo.py"]
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in converted.iterdir() if p.name != RECORD}
    assert record["sha256"] == on_disk
    shard = "model-00001-of-00002.safetensors"
    assert record["source_sha256"][shard] == hashlib.sha256((kormo_src / shard).read_bytes()).hexdigest()


def test_a_shard_is_streamed_as_a_new_header_and_the_same_data_bytes(kormo_src, tmp_path):
    shard = kormo_src / "model-00001-of-00002.safetensors"
    renamed, _, digest = rewrite_shard(shard, tmp_path / "out.safetensors")
    (_, src_start), (header, dst_start) = read_header(shard), read_header(tmp_path / "out.safetensors")
    assert shard.read_bytes()[src_start:] == (tmp_path / "out.safetensors").read_bytes()[dst_start:]
    assert dst_start % 8 == 0 and renamed == sum("layernorm" in k for k in header)
    assert digest == hashlib.sha256((tmp_path / "out.safetensors").read_bytes()).hexdigest()


def test_an_existing_destination_is_kept_unless_overwrite(kormo_src, tmp_path, capsys):
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    assert main(["kormo", str(kormo_src), str(dst)]) == 2
    assert "already exists" in capsys.readouterr().err and (dst / "keep.txt").is_file()
    assert main(["kormo", str(kormo_src), str(dst), "--overwrite"]) == 0
    assert not (dst / "keep.txt").exists() and (dst / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["dst"]  # no staging or replaced folder left behind


def test_overwriting_a_linked_destination_replaces_the_link_and_keeps_what_it_pointed_to(kormo_src, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep.txt").write_text("mine")
    (tmp_path / "link").symlink_to(real)
    assert main(["kormo", str(kormo_src), str(tmp_path / "link"), "--overwrite"]) == 0
    assert not (tmp_path / "link").is_symlink() and (tmp_path / "link" / "config.json").is_file()
    assert (real / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]  # nothing left aside


def test_a_failure_midway_leaves_no_destination(kormo_src, tmp_path, monkeypatch):
    import training.convert

    calls = []

    def failing(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError("disk full")
        return rewrite_shard(src, dst)

    monkeypatch.setattr(training.convert, "rewrite_shard", failing)
    with pytest.raises(OSError, match="disk full"):
        convert_kormo(kormo_src, tmp_path / "dst")
    assert list(tmp_path.iterdir()) == []


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _relabel_as_llama(folder):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))


@pytest.mark.parametrize("damage, words", [
    (_relabel_as_llama, ["model_type='llama'", "not 'kormo'", "already a Llama checkpoint"]),
    (lambda d: (d / "config.json").unlink(), ["no config.json"]),
    (lambda d: (d / "model-00002-of-00002.safetensors").unlink(), ["model-00002-of-00002.safetensors", "shards"]),
    (lambda d: (d / "tokenizer.json").unlink(), ["no tokenizer"]),
])
def test_broken_sources_fail_clearly(kormo_src, tmp_path, damage, words):
    src = _copy(kormo_src, tmp_path / "src")
    damage(src)
    with pytest.raises(KosovError) as error:
        convert_kormo(src, tmp_path / "dst")
    for word in words:
        assert word in str(error.value)
    assert not (tmp_path / "dst").exists()


def _edit_config(change):
    def damage(folder):
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))
    return damage


SHARD = "model-00001-of-00002.safetensors"


@pytest.mark.parametrize("damage, file, words", [
    (lambda d: (d / "config.json").write_text('{"model_type": "kormo",'), "config.json", ["cannot be read as JSON"]),
    (lambda d: (d / "config.json").write_text("[]"), "config.json", ["JSON list, not an object"]),
    (_edit_config(lambda c: c.update(num_hidden_layers=None)), "config.json", ["num_hidden_layers is None"]),
    (_edit_config(lambda c: c.pop("num_hidden_layers")), "config.json", ["num_hidden_layers is missing"]),
    (_edit_config(lambda c: c.update(hidden_act=None)), "config.json", ["hidden_act"]),
    (lambda d: (d / INDEX).write_text((d / INDEX).read_text()[:50]), INDEX, ["cannot be read as JSON"]),
    (lambda d: (d / INDEX).write_text('{"metadata": {}}'), INDEX, ["weight_map is missing"]),
    (lambda d: (d / SHARD).write_bytes(struct.pack("<Q", 6) + b"[1, 2]"), SHARD, ["header is a JSON list"]),
], ids=["config-cut-short", "config-a-list", "layers-null", "layers-missing", "hidden_act-null", "index-cut-short",
        "index-without-weight_map", "shard-header-a-list"])
def test_malformed_source_json_is_an_error_naming_the_file_and_key_not_a_traceback(kormo_src, tmp_path, capsys,
                                                                                   damage, file, words):
    src = _copy(kormo_src, tmp_path / "src")
    damage(src)
    assert main(["kormo", str(src), str(tmp_path / "dst")]) == 2
    err = capsys.readouterr().err
    assert str(src / file) in err and "Fix:" in err
    for word in words:
        assert word in err
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # nothing written, no staging folder


def test_the_next_conversion_deletes_a_killed_ones_staging_folder_and_keeps_a_running_ones(kormo_src, tmp_path,
                                                                                          caplog):
    from training.run_dir import lock_run_folder

    killed = tmp_path / ".dst.converting-dead0000"
    lock_run_folder(killed).close()  # its lock file, released when the conversion was killed
    (killed / SHARD).write_bytes(b"half a shard")
    running = tmp_path / ".dst.converting-live0000"
    holder = lock_run_folder(running)  # held, as a conversion still writing it holds it
    other = tmp_path / ".other.converting-dead0000"  # a conversion to another destination: not this one's to tidy
    other.mkdir()
    try:
        with caplog.at_level(logging.INFO, logger="training.convert"):
            assert main(["kormo", str(kormo_src), str(tmp_path / "dst")]) == 0
    finally:
        holder.close()
    assert not killed.exists() and f"removed {killed}" in caplog.text
    assert running.is_dir() and f"kept {running}" in caplog.text and other.is_dir()
    assert not (tmp_path / "dst" / ".kosov.lock").exists()


def test_a_running_conversion_holds_its_staging_folder_against_a_second_one(kormo_src, tmp_path, monkeypatch):
    import training.convert

    def second_conversion_starts(src, dst):
        training.convert.tidy_conversions(tmp_path / "dst")  # what a second `kosov convert` to the same DST does first
        return rewrite_shard(src, dst)

    monkeypatch.setattr(training.convert, "rewrite_shard", second_conversion_starts)
    assert main(["kormo", str(kormo_src), str(tmp_path / "dst")]) == 0
    record = json.loads((tmp_path / "dst" / RECORD).read_text())
    assert set(record["sha256"]) == {p.name for p in (tmp_path / "dst").iterdir()} - {RECORD}


def test_each_shard_is_read_once_and_the_recorded_hashes_are_those_of_the_files(kormo_src, tmp_path, monkeypatch):
    """A shard is hashed as it is copied: the written shard is never read back to hash it (20 GB for KORMo-10B)."""
    import collections
    import pathlib

    shards = sorted(p.name for p in kormo_src.glob("*.safetensors"))
    sizes = {s: ((kormo_src / s).stat().st_size, read_header(kormo_src / s)[1]) for s in shards}
    read = collections.Counter()
    path_open = pathlib.Path.open

    class Counted:  # a file that counts what is read from it
        def __init__(self, path, f):
            self._path, self._f = path, f

        def read(self, *args):
            data = self._f.read(*args)
            read[self._path] += len(data)
            return data

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

    monkeypatch.setattr(pathlib.Path, "open", lambda self, *a, **k: Counted(self, path_open(self, *a, **k)))
    dst = tmp_path / "dst"
    record = convert_kormo(kormo_src, dst)
    monkeypatch.undo()
    for shard, (size, header) in sizes.items():  # the whole file once as it is copied; its header checked twice
        assert size <= read[kormo_src / shard] <= size + 2 * header, shard
    assert not {p: n for p, n in read.items() if p.name in shards and p.parent != kormo_src}  # nothing read back
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in dst.iterdir() if p.name != RECORD}
    assert record["sha256"] == on_disk and list(record["sha256"]) == sorted(on_disk)
    assert json.loads((dst / RECORD).read_text())["sha256"] == on_disk


def test_a_second_conversion_to_the_same_destination_is_refused_while_the_first_runs(kormo_src, tmp_path,
                                                                                    monkeypatch):
    import threading

    import training.convert

    other = _copy(kormo_src, tmp_path / "other")  # another model: the record's source tells which one DST holds
    dst = tmp_path / "dst"
    started, finish = threading.Event(), threading.Event()

    def paused(src, out):  # the first conversion, in its thread, waits midway until the second one is done
        if threading.current_thread() is not threading.main_thread():
            started.set()
            assert finish.wait(60)
        return rewrite_shard(src, out)

    monkeypatch.setattr(training.convert, "rewrite_shard", paused)
    first = {}

    def convert_first():
        try:
            first["record"] = convert_kormo(kormo_src, dst)
        except BaseException as e:  # noqa: BLE001 - reported by the test below
            first["error"] = e

    thread = threading.Thread(target=convert_first)
    thread.start()
    try:
        assert started.wait(60)
        with pytest.raises(KosovError) as error:
            convert_kormo(other, dst)
    finally:
        finish.set()
        thread.join(60)
    assert "error" not in first and first["record"]["source"] == kormo_src.name
    message = str(error.value)
    assert "another `kosov convert` is writing" in message and str(dst) in message
    assert f"pid {os.getpid()}" in message and str(tmp_path.resolve() / ".dst.kosov.lock") in message
    assert json.loads((dst / RECORD).read_text())["source"] == kormo_src.name  # the first one's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "other"]  # no staging folder, no lock left


def test_a_conversion_holding_the_destination_in_another_process_is_named_and_a_killed_one_blocks_nothing(
        kormo_src, tmp_path, capsys):
    dst = tmp_path / "dst"
    holder = subprocess.Popen(  # a conversion to DST running in another process, killed later
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from training.convert import "
         "lock_destination; held = lock_destination(Path(sys.argv[1])); print('held', flush=True); time.sleep(120)",
         str(dst)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["kormo", str(kormo_src), str(dst)]) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and ".dst.kosov.lock" in err and "Fix:" in err
        assert not dst.exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert (tmp_path / ".dst.kosov.lock").is_file()  # what the killed one left: unlocked, so no obstacle
    assert main(["kormo", str(kormo_src), str(dst)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["dst"]


def test_a_destination_a_killed_overwrite_had_set_aside_comes_back(kormo_src, tmp_path, capsys):
    aside = tmp_path / ".dst.replaced-dead0000"  # killed between renaming DST aside and the new one into place
    aside.mkdir()
    (aside / "keep.txt").write_text("mine")
    assert main(["kormo", str(kormo_src), str(tmp_path / "dst")]) == 2  # no --overwrite this time: DST is kept
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "dst" / "keep.txt").read_text() == "mine" and not aside.exists()


def test_a_llama_layout_labelled_kormo_is_refused(llama, tmp_path):
    model, tokenizer = llama
    src = tmp_path / "src"
    model.save_pretrained(src)
    tokenizer.save_pretrained(src)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "model_type": "kormo"}))
    with pytest.raises(KosovError, match="no pre_attention_layernorm"):
        convert_kormo(src, tmp_path / "dst")


def test_a_destination_inside_the_source_is_refused(kormo_src, tmp_path):
    src = _copy(kormo_src, tmp_path / "src")
    with pytest.raises(KosovError, match="inside"):
        convert_kormo(src, src / "converted")


def test_a_kormo_checkpoint_without_remote_code_points_to_the_converter(kormo_src, tmp_path):
    from training.recipes import compose
    from training.train import train

    cfg = compose(["experiment=smoke-sft", f"model.name_or_path={kormo_src}", "model.trust_remote_code=false",
                   f"output_dir={tmp_path / 'run'}"])
    with pytest.raises(KosovError) as error:
        train(cfg)
    assert "remote code" in str(error.value) and "kosov convert kormo" in str(error.value)


def test_the_record_names_its_source_by_the_folder_only(kormo_src, converted, tmp_path):
    """A converted base is uploaded for publish.base_model: its record kept SRC's absolute path (/home/alice/...),
    and a _name_or_path that was a local folder as its "source_repo"."""
    record = json.loads((converted / RECORD).read_text())
    assert record["source"] == SNAPSHOT and record["source_repo"] == "KORMo-Team/KORMo-10B-sft"
    assert str(kormo_src.parents[2]) not in (converted / RECORD).read_text()
    src = _copy(kormo_src, tmp_path / "home" / "alice" / "models" / "KORMo-10B-sft")
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "_name_or_path": str(tmp_path / "ckpt" / "kormo")}))
    record = convert_kormo(src, tmp_path / "dst")
    assert record["source"] == "KORMo-10B-sft" and record["source_repo"] is None
    assert str(tmp_path) not in (tmp_path / "dst" / RECORD).read_text()


def test_the_tokenizers_auto_map_goes_with_the_remote_code(kormo_src, tmp_path):
    """The .py files were dropped and tokenizer_config.json kept the auto_map naming them: loaded with
    trust_remote_code=True (vLLM's --trust-remote-code, a card's snippet), the tokenizer looked for the missing file."""
    from transformers import AutoTokenizer

    src = _copy(kormo_src, tmp_path / "src")
    saved = json.loads((src / "tokenizer_config.json").read_text())
    auto_map = {"AutoTokenizer": [None, "tokenization_kormo.KORMoTokenizerFast"]}
    (src / "tokenizer_config.json").write_text(json.dumps({**saved, "auto_map": auto_map}))
    (src / "tokenization_kormo.py").write_text("raise RuntimeError('remote code must never run')\n")
    record = convert_kormo(src, tmp_path / "dst")
    written = json.loads((tmp_path / "dst" / "tokenizer_config.json").read_text())
    assert written == saved and record["tokenizer_auto_map_removed"] == auto_map
    assert "tokenization_kormo.py" in record["dropped_files"] and "tokenizer_config.json" in record["copied_files"]
    assert record["sha256"]["tokenizer_config.json"] == hashlib.sha256(
        (tmp_path / "dst" / "tokenizer_config.json").read_bytes()).hexdigest()
    for trust in (False, True):
        assert AutoTokenizer.from_pretrained(tmp_path / "dst", trust_remote_code=trust).encode("한국어") == \
            AutoTokenizer.from_pretrained(kormo_src).encode("한국어")
    (src / "tokenizer_config.json").write_text(json.dumps({**saved, "auto_map": auto_map,
                                                           "tokenizer_class": "KORMoTokenizerFast"}))
    with pytest.raises(KosovError, match="tokenizer_class 'KORMoTokenizerFast' is defined only by the remote code"):
        convert_kormo(src, tmp_path / "dst2")
    assert not (tmp_path / "dst2").exists()
