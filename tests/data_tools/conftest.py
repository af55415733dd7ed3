"""Shared fixtures of the teacher tests: tiny-ko loaded on CPU, its in-process teacher, a real `kosov serve`."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny():
    from training.models import load_base_model, load_tokenizer, model_source
    from training.schema import KosovConfig

    cfg = KosovConfig()
    source, _ = model_source(cfg.model)
    return load_base_model(cfg, source, "cpu"), load_tokenizer(cfg.model, source)


@pytest.fixture(scope="module")
def teacher(tiny):
    from data_tools.teachers import TransformersTeacher

    return TransformersTeacher(*tiny, name="tiny-ko", batch_size=4)


@pytest.fixture(scope="module")
def server():
    from training.schema import KosovConfig
    from training.serve import ServeConfig, start_in_thread

    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0))
    yield url
    stop()
