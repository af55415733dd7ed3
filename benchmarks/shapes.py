"""The model shapes the throughput benchmarks build: the published configs of Qwen3-0.6B, 1.7B and 8B, any
config.json given by --config (KORMo-10B's read as the Llama it is, no remote code), random weights on the device,
and for QLoRA the random model saved once and loaded back through bitsandbytes NF4."""

from __future__ import annotations

import contextlib
import gc
import json
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

# Shapes of the published configs (Qwen/Qwen3-*/config.json): throughput depends on these, not on weights.
SHAPES = {
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True),
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True),
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False),
    "tiny-ko": None,  # the embedded CPU model
}


KORMO_HELP = ("KORMo-10B's shape is read from its own config.json, which this repo does not hold and the benchmark "
              "never downloads (the GPU machine has no network). Where the Hub is reachable, fetch the 1 KB file into "
              "the checkout: `hf download KORMo-Team/KORMo-10B-sft config.json --local-dir kormo-10b`, then pass "
              "--config kormo-10b (the folder, or the file). Its header should read about 10.8B parameters.")


def build_model(name: str, config_path: str | None, device: str, quantize: bool = False, attn: str = "sdpa"):
    import torch
    from transformers import AutoModelForCausalLM

    from training.schema import TinyModelConfig
    from training.tiny_ko import tiny_model_dir

    if name == "tiny-ko" and not config_path:
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir(TinyModelConfig()), attn_implementation=attn)
    if quantize:  # QLoRA: the random bf16 model saved once, loaded back through bitsandbytes NF4 by each trainer
        return load_saved(saved_model(name, config_path, device), device, quantize, attn)
    config = shape_config(name, config_path)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config.torch_dtype = dtype
    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)


def nf4():
    """The 4-bit base both sides of a QLoRA run load: kosov's peft=qlora settings on a bf16 GPU (NF4, double
    quantization, bf16 compute)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_saved(folder: str, device: str, quantize: bool, attn: str):
    """A saved model folder on the device: in bf16 (fp32 on CPU), or through bitsandbytes NF4 (QLoRA, GPU only)."""
    import torch
    from transformers import AutoModelForCausalLM

    if quantize:
        return AutoModelForCausalLM.from_pretrained(folder, quantization_config=nf4(), device_map={"": 0},
                                                    attn_implementation=attn)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation=attn).to(device)


def read_config(config_path: str) -> dict[str, Any]:
    """The config.json given by --config (the file, or the model folder holding it)."""
    path = Path(config_path)
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        raise SystemExit(f"--config {config_path}: no config.json there (give the file or a model folder). "
                         f"For KORMo-10B: {KORMO_HELP}")
    return json.loads(path.read_text(encoding="utf-8"))


def shape_config(name: str, config_path: str | None):
    """The model's shape: a published Qwen3 shape, or --config's. KORMo's config.json (model_type "kormo", remote
    code) is read as the Llama config it is (training/convert.py), so no remote code runs."""
    from transformers import AutoConfig, LlamaConfig, Qwen3Config

    if not config_path:
        return Qwen3Config(**SHAPES[name])
    raw = read_config(config_path)
    if raw.get("model_type") == "kormo":
        from training.convert import llama_config

        return LlamaConfig.from_dict(llama_config(raw)[0])
    try:
        return AutoConfig.for_model(**raw)
    except (KeyError, TypeError, ValueError):
        import transformers

        raise SystemExit(f"--config {config_path}: model_type {raw.get('model_type')!r} is not an architecture "
                         f"transformers {transformers.__version__} knows") from None


_SAVED: dict[tuple, str] = {}
_SAVED_FOLDERS: list[str] = []  # each saved_model folder from its creation on, written whole or not


def _remove_saved() -> None:
    import shutil

    for folder in _SAVED_FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # the saved models go first: should a thread the trainer left (a generation engine's) hold the exit up until
    # the SIGKILL that follows (SLURM's KillWait, timeout -k), they are gone all the same
    _remove_saved()
    raise SystemExit(128 + signum)  # 143, the status a shell gives a process SIGTERM ended


def _sigterm_to_exit() -> bool:
    """Make SIGTERM raise SystemExit where it has its default action (end the process, no cleanup), in the main
    thread; True when installed here."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return True


@contextlib.contextmanager
def sigterm_exits():
    """SIGTERM (a SLURM time limit, scancel, timeout) raises SystemExit while inside, so finally blocks and atexit
    run (saved_model's folder is removed: the 8B's is 16 GB), where by default it ends the process with neither.
    A handler set before (SIG_IGN, a Python one) is left as it is; the default is restored on leaving."""
    installed = _sigterm_to_exit()
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def saved_model(name: str, config_path: str | None, device: str) -> str:
    """A folder holding the random bf16 model of this shape, built on the device, written once per run and
    removed at exit (the 8B is 16 GB of disk), a SIGTERM's included: where SIGTERM still has its default action
    (no benchmark main's sigterm_exits around the caller), it is made to exit through SystemExit from here on."""
    import atexit

    import torch
    from transformers import AutoModelForCausalLM

    key = (name, config_path)
    if key not in _SAVED:
        _sigterm_to_exit()  # for as long as the folder lives: until the process exits
        if not _SAVED_FOLDERS:
            atexit.register(_remove_saved)
        folder = tempfile.mkdtemp(prefix="kosov-bench-model-")
        _SAVED_FOLDERS.append(folder)
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(shape_config(name, config_path), dtype=torch.bfloat16)
        model.save_pretrained(folder)
        del model
        gc.collect()  # gone before either side starts, should a reference cycle hold it: its 16 GB is no peak
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
        _SAVED[key] = folder
    return _SAVED[key]


def model_size(name: str, config_path: str | None) -> str:
    """Parameters and bf16 weight memory of the shape (built on the meta device): the floor under peak memory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from training.schema import TinyModelConfig
    from training.tiny_ko import tiny_model_dir

    if name == "tiny-ko" and not config_path:
        config = AutoConfig.from_pretrained(tiny_model_dir(TinyModelConfig()))
    else:
        config = shape_config(name, config_path)
    with torch.device("meta"):
        count = AutoModelForCausalLM.from_config(config).num_parameters()
    return f"{count / 1e9:.3g}B parameters, {count * 2 / 2**30:.3g} GiB in bf16"
