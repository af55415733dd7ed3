"""Shared fixtures: CPU only, no hub, tiny-ko built into a per-session cache, one smoke SFT run reused."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _secret in ("WANDB_API_KEY", "HF_TOKEN", "WANDB_MODE"):  # the tests set these themselves where they matter
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

