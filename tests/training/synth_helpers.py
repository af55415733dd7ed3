"""What the synth tests with an HTTP teacher share: the recipe overrides, the prompts (one over the stand-in API's
context), the lenient variant of the `hosted` fixture (tests/training/conftest.py) and a prompt file writer."""

from __future__ import annotations

import json

import pytest

HTTP = ["experiment=synth-self-instruct-http", "synth.generator=distill", "~synth.gates.exact_dedup",
        "~synth.gates.near_dedup",
        "synth.decontaminate_with=[]", "synth.teacher.model=gpt-x", "synth.teacher.max_retries=0",
        "synth.teacher.concurrency=1"]
PROMPTS = ["서울의 날씨는 어때요?", "김치찌개는 어떻게 끓여요?", "LONG " * 50, "세종대왕은 무엇을 만들었나요?"]


lenient = pytest.mark.parametrize("hosted", [False], indirect=True, ids=["lenient"])


def without_gates(recipe: str) -> list[str]:
    """Overrides that turn off every quality gate of a recipe: `synth.gates={}` merges into the recipe's gates and
    turns off none."""
    from training.recipes import compose

    return [f"~synth.gates.{name}" for name in compose([f"experiment={recipe}"]).synth.gates]


def write_prompts(path, prompts=PROMPTS):
    path.write_text("".join(json.dumps({"prompt": p}, ensure_ascii=False) + "\n" for p in prompts), encoding="utf-8")
    return path
