"""Tokenizer diagnostics for Korean: exact counts on hand-made tokenizers (byte-level BPE, word-level with an
unknown token, SentencePiece-style byte fallback), tiny-ko on the corpus, and the report for sources that
cannot be loaded. CPU, offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from training.tiny_ko import TOKENIZER_DIR, corpus_lines
from training.tokenizer_stats import (
    byte_level_alphabet,
    byte_mode,
    korean_fertility,
    to_markdown,
    token_bytes,
    tokenizer_report,
    write_report,
)

GREETING = "안녕하세요 반갑습니다"  # 10 Hangul syllables, 1 space: 10 characters, 2 eojeol


def byte_level_bpe():
    """Byte-level BPE trained to the end on three lines: every training word becomes one token, and a
    syllable it never saw (뷁, bytes EB B7 81) can only be spelled with its three bytes."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([GREETING, "감사합니다", "좋은 아침입니다"], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def word_level():
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "안녕하세요": 1, "반갑습니다": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


def sentencepiece_with_byte_fallback(byte_fallback=True, unigram=False):
    """Llama-2 / Gemma style: a piece per known syllable, "▁" for spaces, <0x..> for bytes of anything else (with
    byte_fallback=False the <0x..> pieces stay in the vocabulary, as SentencePiece lists them, but are never used)."""
    pieces = ["<unk>", *(f"<0x{byte:02X}>" for byte in range(256)), "▁", *"안녕하세요반갑습니다"]
    tok = Tokenizer(models.Unigram([(p, -1.0) for p in pieces], unk_id=0, byte_fallback=byte_fallback) if unigram
                    else models.BPE({p: i for i, p in enumerate(pieces)}, [], unk_token="<unk>",
                                    byte_fallback=byte_fallback))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


def test_byte_table_is_gpt2s_and_reads_tiny_ko_tokens_back_into_the_exact_text(tiny_tokenizer):
    alphabet = byte_level_alphabet()
    assert set(alphabet) == set(pre_tokenizers.ByteLevel.alphabet()) and sorted(alphabet.values()) == list(range(256))
    assert alphabet["Ġ"] == ord(" ") and alphabet["Ċ"] == ord("\n") and alphabet["A"] == ord("A")
    for line in corpus_lines()[::40]:
        ids = tiny_tokenizer(line, add_special_tokens=False)["input_ids"]
        raw = b"".join(token_bytes(t, "byte-level", alphabet)[0] for t in tiny_tokenizer.convert_ids_to_tokens(ids))
        assert raw == line.encode("utf-8")


def test_which_tokens_are_byte_pieces():
    alphabet = byte_level_alphabet()
    assert token_bytes("ìķĪ", "byte-level", alphabet) == ("안".encode(), False)  # one whole syllable
    assert token_bytes("ì", "byte-level", alphabet) == (b"\xec", True)  # the first byte of 안
    assert token_bytes("Ġë", "byte-level", alphabet) == (b" \xeb", True)  # a space and half a syllable
    assert token_bytes("<think>", "byte-level", alphabet) == (b"<think>", False)
    assert token_bytes("안녕", "byte-level", alphabet) == ("안녕".encode(), False)  # added as plain text
    assert token_bytes("<0xEA>", "byte-fallback", alphabet) == (b"\xea", True)
    assert token_bytes("<0x0A>", "byte-fallback", alphabet) == (b"\n", False)  # a whole newline
    assert token_bytes("▁반", "byte-fallback", alphabet) == ("▁반".encode(), False)


def test_byte_level_bpe_whole_words_and_an_unseen_syllable_in_bytes():
    tokenizer = byte_level_bpe()
    assert byte_mode(tokenizer) == "byte-level"
    stats = korean_fertility(tokenizer, [GREETING])
    assert (stats["characters"], stats["hangul_syllables"], stats["eojeol"], stats["tokens"]) == (10, 10, 2, 2)
    assert stats["tokens_per_char"] == 0.2 and stats["tokens_per_eojeol"] == 1.0
    assert stats["byte_fallback_rate"] == 0.0 and stats["hangul_syllables_whole_share"] == 1.0

    stats = korean_fertility(tokenizer, [GREETING, "뷁"])
    assert (stats["characters"], stats["hangul_syllables"], stats["eojeol"]) == (11, 11, 3)
    assert (stats["tokens"], stats["byte_pieces"], stats["unknown_tokens"]) == (5, 3, 0)
    assert stats["byte_fallback_rate"] == 3 / 5
    assert (stats["hangul_syllables_whole"], stats["hangul_syllables_in_byte_pieces"]) == (10, 1)
    assert stats["hangul_syllables_in_byte_pieces_share"] == 1 / 11
    assert stats["hangul_in_byte_pieces_examples"] == ["뷁"]


def test_nfd_input_is_counted_as_nfc():
    import unicodedata

    nfd = unicodedata.normalize("NFD", GREETING)
    assert korean_fertility(byte_level_bpe(), [nfd]) == korean_fertility(byte_level_bpe(), [GREETING])


def test_a_tokenizer_that_splits_syllables_into_jamo_shows_no_whole_syllables_in_the_table():
    """An NFD normaliser (mBERT-uncased's accent stripping) spells every syllable with jamo: neither whole nor in
    byte pieces, which the table showed as 0.00% Hangul in byte pieces, a perfect score."""
    import unicodedata

    from tokenizers import normalizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.normalizer = normalizers.NFD()
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one token per jamo
    jamo = sorted({ch for ch in unicodedata.normalize("NFD", GREETING) if not ch.isspace()})
    tok.add_tokens(jamo)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    stats = korean_fertility(tokenizer, [GREETING])
    assert stats["hangul_syllables"] == 10 and stats["hangul_syllables_whole_share"] == 0.0
    row = {"tokenizer": "jamo", "source": "-", "available": True, "vocab_size": len(tokenizer), **stats}
    header, _, line = to_markdown([row]).splitlines()
    cells = dict(zip(header.split("|"), line.split("|")))
    assert cells[" Hangul whole "].strip() == "0.00%"


def test_word_level_has_no_byte_pieces_and_counts_unknown_tokens():
    tokenizer = word_level()
    assert byte_mode(tokenizer) == "none"
    stats = korean_fertility(tokenizer, [GREETING, "안녕하세요 친구"])
    assert (stats["characters"], stats["hangul_syllables"], stats["eojeol"], stats["tokens"]) == (17, 17, 4, 4)
    assert (stats["byte_pieces"], stats["unknown_tokens"], stats["unk_rate"]) == (0, 1, 0.25)
    # 친구 became [UNK]: neither whole nor in byte pieces, just lost.
    assert (stats["hangul_syllables_whole"], stats["hangul_syllables_in_byte_pieces"]) == (15, 0)


def test_sentencepiece_byte_fallback_tokens():
    tokenizer = sentencepiece_with_byte_fallback()
    assert byte_mode(tokenizer) == "byte-fallback"
    ids = tokenizer("안녕 뷁", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["안", "녕", "▁", "<0xEB>", "<0xB7>", "<0x81>"]

    stats = korean_fertility(tokenizer, [GREETING, "안녕 뷁"])
    assert (stats["characters"], stats["hangul_syllables"], stats["eojeol"]) == (13, 13, 4)
    assert (stats["tokens"], stats["byte_pieces"], stats["unknown_tokens"]) == (11 + 6, 3, 0)
    assert stats["byte_fallback_rate"] == 3 / 17 and stats["tokens_per_char"] == 17 / 13
    assert (stats["hangul_syllables_whole"], stats["hangul_syllables_in_byte_pieces"]) == (12, 1)


@pytest.mark.parametrize("unigram", [False, True], ids=["bpe", "unigram"])
def test_byte_fallback_is_read_from_the_tokenizers_setting_not_guessed_from_byte_pieces_in_its_vocabulary(unigram):
    assert byte_mode(sentencepiece_with_byte_fallback(True, unigram)) == "byte-fallback"
    tokenizer = sentencepiece_with_byte_fallback(False, unigram)  # <0x..> pieces listed, byte fallback off
    assert byte_mode(tokenizer) == "none"
    stats = korean_fertility(tokenizer, ["안녕 뷁"])  # 뷁 is lost as <unk>, not spelled in bytes
    assert (stats["byte_pieces"], stats["byte_fallback_rate"], stats["unknown_tokens"]) == (0, 0.0, 1)


@pytest.mark.parametrize("byte_fallback", [True, False])
def test_a_slow_sentencepiece_tokenizer_is_labelled_by_its_trainer_spec(byte_fallback):
    from types import SimpleNamespace

    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    proto.trainer_spec.byte_fallback = byte_fallback
    proto.pieces.add(piece="<0xEA>", score=0.0, type=proto.SentencePiece.BYTE)
    slow = SimpleNamespace(sp_model=SimpleNamespace(serialized_model_proto=proto.SerializeToString),
                           get_vocab=lambda: {"<0xEA>": 0})  # what byte_mode sees of one (sentencepiece not needed)
    assert byte_mode(slow) == ("byte-fallback" if byte_fallback else "none")


@pytest.fixture(scope="module")
def corpus_stats(tiny_tokenizer):
    return korean_fertility(tiny_tokenizer, corpus_lines())


def test_tiny_ko_is_compact_on_its_corpus_and_falls_back_to_bytes_on_rare_syllables(tiny_tokenizer, corpus_stats):
    assert corpus_stats["texts"] == len(corpus_lines()) and corpus_stats["unk_rate"] == 0.0
    assert corpus_stats["tokens_per_char"] < 1 and corpus_stats["tokens_per_eojeol"] < 3
    # A 4,096-token vocabulary cannot hold every syllable, but the corpus is mostly whole syllables.
    assert corpus_stats["byte_fallback_rate"] < 0.1
    assert corpus_stats["hangul_syllables_in_byte_pieces_share"] < 0.05

    rare = korean_fertility(tiny_tokenizer, ["똠얌꿍 뷁"])
    assert rare["byte_fallback_rate"] > 0.5 > corpus_stats["byte_fallback_rate"] * 5
    assert rare["hangul_syllables_in_byte_pieces_share"] == 1.0
    assert sorted(rare["hangul_in_byte_pieces_examples"]) == sorted("똠얌꿍뷁")


def test_report_marks_unloadable_sources_unavailable_and_writes_a_table(tmp_path, corpus_stats):
    sources = {
        "tiny-ko": str(TOKENIZER_DIR),
        "missing-folder": str(tmp_path / "no-such-tokenizer"),
        "offline-hub": "kosov-test/no-such-tokenizer",  # HF_HUB_OFFLINE=1 (conftest): never fetched
        "not-given": None,
    }
    rows = tokenizer_report(sources)  # the corpus by default
    assert [row["tokenizer"] for row in rows] == list(sources)
    assert rows[0]["available"] and rows[0]["vocab_size"] == 4096
    assert {k: rows[0][k] for k in corpus_stats} == corpus_stats
    for row in rows[1:]:
        assert row["available"] is False and row["reason"], row
    assert rows[1]["reason"].startswith("no such folder") and rows[3]["reason"] == "no source given"

    table = to_markdown(rows)
    for name in sources:
        assert sum(line.startswith(f"| {name} |") for line in table.splitlines()) == 1
    assert len(table.splitlines()) == 2 + len(sources) and "unavailable:" in table

    json_path, md_path = write_report(rows, tmp_path / "out")
    assert json.loads(json_path.read_text(encoding="utf-8")) == rows
    assert md_path.read_text(encoding="utf-8") == table
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tokenizer_stats.json", "tokenizer_stats.md"]


def test_without_a_network_a_folder_is_read_at_once_and_a_hub_id_is_given_up_without_retries(tmp_path):
    """Without HF_HUB_OFFLINE=1 on a machine with no network, the report spent 1m44s on the hub's retries (about 50 s
    for each hub id of the defaults), and a folder given without ./ that is not there read as a hub id too."""
    shutil.copytree(TOKENIZER_DIR, tmp_path / "mine")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf-home"))  # nothing answers there
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "training.tokenizer_stats", "--tokenizer", "mine=mine",
                           "--tokenizer", "qwen3=Qwen/Qwen3-0.6B", "--tokenizer", "typo=my/tokenizer", "--out",
                           "out"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Retry" not in done.stderr, f"{took:.0f} s: {done.stderr[-3000:]}"
    rows = {row["tokenizer"]: row for row in json.loads((tmp_path / "out" / "tokenizer_stats.json").read_text())}
    assert rows["mine"]["available"] and rows["mine"]["vocab_size"] == 4096
    for name in ("qwen3", "typo"):
        assert not rows[name]["available"]
        assert "not a folder here nor in the local Hugging Face cache, and the hub cannot be reached " \
               "(http://127.0.0.1:9" in rows[name]["reason"] and "pass its local folder" in rows[name]["reason"]
