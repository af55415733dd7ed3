"""Shared fixtures: CPU only, no hub, tiny-ko built into a per-session cache, one smoke SFT run reused."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tests set these themselves where they matter (a developer's KOSOV_MIRROR would become every recipe's mirror).
for _secret in ("WANDB_API_KEY", "HF_TOKEN", "WANDB_MODE", "KOSOV_MIRROR"):
    os.environ.pop(_secret, None)

import pytest  # noqa: E402

from training.recipes import compose  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def kosov_cache(tmp_path_factory):
    os.environ["KOSOV_CACHE"] = str(tmp_path_factory.mktemp("kosov-cache"))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from training.tiny_ko import load_tiny_tokenizer

    return load_tiny_tokenizer()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, kosov_cache):
    """The smoke-sft recipe trained once, tracked in wandb (offline by itself: no API key here)."""
    from training.train import train

    out = tmp_path_factory.mktemp("smoke") / "run"
    cfg = compose(["experiment=smoke-sft", "tracking=wandb", f"output_dir={out}"])
    return train(cfg)


CUSTOM_SYSTEM = "당신은 한국어로만 답하는 도우미입니다."


@pytest.fixture(scope="session")
def custom_template_run(tmp_path_factory):
    """A smoke-sft run trained with its own chat template: a default system turn the base template lacks."""
    from tests.helpers import quick
    from training.tiny_ko import TEMPLATE_PATH
    from training.train import train

    folder = tmp_path_factory.mktemp("custom-template")
    template = folder / "custom.jinja"
    default_system = ("{%- if messages[0].role != 'system' %}{{- '<|im_start|>system\\n" + CUSTOM_SYSTEM
                      + "<|im_end|>\\n' }}{%- endif %}\n")
    template.write_text(default_system + TEMPLATE_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    run = folder / "run"
    train(compose(quick(f"output_dir={run}", f"model.chat_template={template}")))
    return run, template
