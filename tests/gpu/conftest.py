"""The GPU suite: run it on a CUDA machine with `pytest tests/gpu` (after `pip install -e ".[gpu,vllm]"`).

Everywhere else every test here is skipped at collection, so the CPU suite stays CPU-only. A test that needs an
optional GPU package declares it with `@pytest.mark.needs("flash_attn")` and is skipped, naming the package and
the pip extra that brings it, where that package is missing.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch

from training.models import bf16_gpu as native_bf16, installed

HERE = Path(__file__).resolve().parent
NO_GPU = "needs a CUDA GPU (run on a GPU machine: pytest tests/gpu)"
# Optional packages (import names) -> how to install them: the kosov extra that brings each.
EXTRAS = {
    "bitsandbytes": "pip install 'kosov[gpu]'",
    "liger_kernel": "pip install 'kosov[gpu]'",
    "flash_attn": "pip install 'kosov[gpu]' --no-build-isolation",  # flash-attn builds against the installed torch
    "vllm": "pip install 'kosov[vllm]'",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "needs(*packages): an optional GPU package the test needs (tests/gpu)")


def missing_reason(package: str) -> str:
    return f"needs {package}, which is not installed: {EXTRAS[package]}"


def pytest_collection_modifyitems(config, items):
    cuda = torch.cuda.is_available()
    for item in items:
        if not item.path.is_relative_to(HERE):  # this hook sees the whole session's items
            continue
        item.add_marker(pytest.mark.gpu)
        if not cuda:
            item.add_marker(pytest.mark.skip(reason=NO_GPU))
            continue
        for mark in item.iter_markers("needs"):
            for package in mark.args:
                if package not in EXTRAS:
                    raise pytest.UsageError(f"{item.nodeid}: needs({package!r}) names no known optional package "
                                            f"({', '.join(EXTRAS)})")
                if not installed(package):
                    item.add_marker(pytest.mark.skip(reason=missing_reason(package)))


@pytest.fixture(autouse=True)
def free_gpu_memory():
    """Each test's models and trainers go before the next test allocates."""
    yield
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@pytest.fixture(autouse=True)
def bf16_gpu():
    if torch.cuda.is_available() and not native_bf16():  # not torch's answer: it counts emulated bf16 (V100, T4)
        pytest.skip("these checks expect a bf16 GPU (Ampere or newer), as kosov's GPU recipes do")


@pytest.fixture
def restore_qwen3_modeling():
    """Liger patches transformers' Qwen3 module for every model built later in the process (its RMSNorm, MLP and
    rotary classes / functions): put them back so later tests run the model they ask for."""
    from transformers.models.qwen3 import modeling_qwen3

    saved = dict(vars(modeling_qwen3))
    forward = modeling_qwen3.Qwen3ForCausalLM.forward
    yield modeling_qwen3
    for name, value in saved.items():
        if getattr(modeling_qwen3, name, None) is not value:
            setattr(modeling_qwen3, name, value)
    modeling_qwen3.Qwen3ForCausalLM.forward = forward
