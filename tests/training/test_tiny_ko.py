"""The embedded tiny Korean model: a tokenizer rebuilt byte-identically from the repo's corpus, exact Korean
round-trips, a Qwen3-style template, and a deterministic random-init model."""

from __future__ import annotations

import subprocess
import sys
import unicodedata

import torch

from training.schema import TinyModelConfig
from training.tiny_ko import TOKENIZER_DIR, corpus_lines, tiny_model_dir


def test_corpus_is_a_real_korean_corpus():
    lines = corpus_lines()
    assert len(lines) >= 3000 and len(set(lines)) == len(lines)
    hangul = sum(any("\uac00" <= c <= "\ud7a3" for c in line) for line in lines)
    assert hangul / len(lines) > 0.95
    assert any("GPU" in line for line in lines) and any("원" in line for line in lines)


def test_committed_tokenizer_is_rebuilt_byte_identically_by_the_script():
    # A fresh interpreter: a different hash seed must not change a byte.
    done = subprocess.run([sys.executable, "-m", "training.tiny_ko", "check-tokenizer"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p.name for p in TOKENIZER_DIR.iterdir()} >= {"tokenizer.json", "tokenizer_config.json",
                                                         "chat_template.jinja"}


def test_korean_round_trips_exactly_and_compactly(tiny_tokenizer):
    for line in corpus_lines()[::50]:
        ids = tiny_tokenizer(line, add_special_tokens=False)["input_ids"]
        assert tiny_tokenizer.decode(ids) == line
    sentence = "오늘 서울의 최고 기온은 영하 3도로, 어제보다 5도 낮았습니다."
    assert len(tiny_tokenizer(sentence)["input_ids"]) < len(sentence)  # BPE merges Korean, not bytes


def test_unseen_text_and_nfd_input_never_become_unknown(tiny_tokenizer):
    nfd = unicodedata.normalize("NFD", "한국어 토크나이저")
    assert unicodedata.normalize("NFC", nfd) != nfd
    assert tiny_tokenizer.decode(tiny_tokenizer(nfd)["input_ids"]) == "한국어 토크나이저"  # NFC normaliser
    rare = "똠방각하 🤖 Ω≈ç√ 𝔘"
    assert tiny_tokenizer.decode(tiny_tokenizer(rare)["input_ids"]) == rare  # byte-level: nothing is unknown


def test_chatml_template_with_thinking_tags(tiny_tokenizer):
    messages = [{"role": "user", "content": "안녕하세요?"}]
    prompt = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                enable_thinking=False)
    assert prompt == "<|im_start|>user\n안녕하세요?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    for token in ("<|im_start|>", "<|im_end|>", "<think>", "</think>"):
        assert len(tiny_tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    assert "{% generation %}" in tiny_tokenizer.chat_template.replace("{%- generation %}", "{% generation %}")


def test_tiny_model_is_a_seeded_qwen3_built_from_config(tmp_path, monkeypatch, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    shape = TinyModelConfig()
    first = tiny_model_dir(shape)
    monkeypatch.setenv("KOSOV_CACHE", str(tmp_path))  # a second, independent build
    second = tiny_model_dir(shape)
    assert first != second
    a, b = (AutoModelForCausalLM.from_pretrained(d) for d in (first, second))
    assert a.config.model_type == "qwen3" and a.config.hidden_size == shape.hidden_size
    assert a.config.vocab_size == len(tiny_tokenizer)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert "max_new_tokens" not in (first / "generation_config.json").read_text()


def test_an_edit_of_the_code_that_builds_tiny_ko_builds_it_again(tmp_path, monkeypatch):
    """The cache key left tiny_ko.py out: a change to how the model is built (its config, its init, its generation
    config) kept serving the folder the old code had built, to the tests and the demo alike."""
    from pathlib import Path

    from training import tiny_ko

    monkeypatch.setenv("KOSOV_CACHE", str(tmp_path / "cache"))
    before = tiny_model_dir(TinyModelConfig())
    edited = tmp_path / "tiny_ko.py"
    edited.write_text(Path(tiny_ko.__file__).read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
    monkeypatch.setattr(tiny_ko, "__file__", str(edited))
    after = tiny_model_dir(TinyModelConfig())
    assert after != before and (after / "config.json").is_file()
