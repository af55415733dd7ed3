"""The tiny Korean model: a byte-level BPE tokenizer trained on the repo's Korean corpus and a random-init
Qwen3-architecture model built from config. The tests, CI and the demo run the real code paths on it.

Rebuild the committed tokenizer (byte-identical to what is committed) and check it:

    python -m training.tiny_ko build-tokenizer
    python -m training.tiny_ko check-tokenizer

The model is never committed: `tiny_model_dir()` builds it once per shape into the kosov cache
(`$KOSOV_CACHE`, default `~/.cache/kosov`) as an ordinary model folder, so everything downstream loads it
with `from_pretrained` exactly like a hub checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from training.schema import TinyModelConfig

ASSETS = Path(__file__).parent / "assets"
TOKENIZER_DIR = ASSETS / "tiny_ko_tokenizer"
TEMPLATE_PATH = ASSETS / "chat_templates" / "tiny_ko.jinja"
CORPUS_DIR = Path(__file__).parent.parent / "data_tools" / "corpus" / "ko"

VOCAB_SIZE = 4096
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]  # single tokens, as in Qwen3, but not special (they are decoded)
# Qwen2/3's pre-tokenizer split: contractions, letter runs, single digits, punctuation, spaces.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def corpus_files() -> list[Path]:
    files = sorted(CORPUS_DIR.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no Korean corpus files in {CORPUS_DIR}")
    return files


def corpus_lines() -> list[str]:
    """Every non-empty line of the corpus, NFC, in a fixed order (file name, then line)."""
    import unicodedata

    lines = []
    for path in corpus_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                lines.append(unicodedata.normalize("NFC", line.strip()))
    return lines


def build_tokenizer(out_dir: Path = TOKENIZER_DIR) -> Path:
    """Train the byte-level BPE on the corpus and save it with the chat template. Deterministic."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(THINK_TOKENS),
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte is a token: nothing is unknown
        show_progress=False,
    )
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    tok.add_tokens(THINK_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=TEMPLATE_PATH.read_text(encoding="utf-8"),
        model_max_length=TinyModelConfig.max_position_embeddings,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return out_dir


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def check_tokenizer() -> bool:
    """Rebuild into a temporary folder and compare every file byte for byte with the committed one."""
    with tempfile.TemporaryDirectory() as tmp:
        rebuilt = _digest(build_tokenizer(Path(tmp)))
    return rebuilt == _digest(TOKENIZER_DIR)


def load_tiny_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOKENIZER_DIR)


def cache_root() -> Path:
    return Path(os.environ.get("KOSOV_CACHE", Path.home() / ".cache" / "kosov")).expanduser()


def tiny_model_dir(shape: TinyModelConfig) -> Path:
    """A model folder for this shape (built once, seeded, written atomically) with the tokenizer in it: one per
    shape, tokenizer, library versions and version of this file (the code that builds it)."""
    import torch
    import transformers
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    key = json.dumps(
        {"shape": asdict(shape), "tokenizer": _digest(TOKENIZER_DIR), "transformers": transformers.__version__,
         "torch": torch.__version__, "code": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()},
        sort_keys=True,
    )
    target = cache_root() / "tiny-ko" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if (target / "config.json").exists():
        return target
    tokenizer = load_tiny_tokenizer()
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        head_dim=shape.hidden_size // shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings,
        initializer_range=shape.initializer_range,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(shape.seed)
    model = Qwen3ForCausalLM(config)
    # No max_new_tokens here: it would override lm-eval's max_gen_toks (STACK.md).
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id], pad_token_id=tokenizer.pad_token_id
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "kosov_tiny.json").write_text(key + "\n", encoding="utf-8")
    try:
        staging.rename(target)
    except OSError:  # another process finished the same build first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.tiny_ko", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["build-tokenizer", "check-tokenizer"])
    args = parser.parse_args(argv)
    if args.action == "build-tokenizer":
        out = build_tokenizer()
        print(f"wrote {out} from {len(corpus_lines())} corpus lines")
        return 0
    same = check_tokenizer()
    print("tokenizer matches the corpus" if same else "tokenizer differs from a rebuild: run build-tokenizer")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
