"""`kosov serve` with serve.max_batch > 1: each request is answered as soon as its own row ends, not when its batch's
longest answer does, with the same tokens it gets generated alone."""

from __future__ import annotations

import threading

import pytest

from data_tools.teachers import TransformersTeacher
from tests.training.serve_helpers import ask
from training.config import KosovConfig
from training.serve import Engine, ServeConfig, load_teacher

LONG, SHORT = 60, 3  # tokens: tiny-ko never ends these greedy answers early (asserted on the answers alone)


@pytest.fixture(scope="module")
def teacher():
    return load_teacher(KosovConfig(), ServeConfig(max_batch=4))  # the engine batches up to 4 rows in one generate()


@pytest.fixture
def steps(teacher):
    """How many forward passes (generation steps) the model has run so far: steps[0]."""
    count = [0]
    hook = teacher.model.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    yield count
    hook.remove()


def greedy(text: str, tokens: int, **settings):
    return ask(text, max_new_tokens=tokens, temperature=0.0, **settings)


def same(a, b) -> bool:
    return (a.text, a.reasoning, a.finish_reason, a.usage) == (b.text, b.reasoning, b.finish_reason, b.usage)


def test_a_short_answer_batched_with_a_long_one_is_answered_while_the_long_one_generates(teacher, steps, monkeypatch):
    """A short request generated together with a long one is answered while the long one is still generating (it
    used to wait for the batch's end); both answers are what each gets generated alone."""
    alone = [teacher.generate([greedy("경복궁은 언제 지어졌나요?", LONG)], progress=False)[0],
             teacher.generate([greedy("반가워요", SHORT)], progress=False)[0]]
    assert [a.usage["completion_tokens"] for a in alone] == [LONG, SHORT]
    generate, started, release, events = teacher.generate, threading.Event(), threading.Event(), []

    def first_waits(requests, **kwargs):  # the queue fills behind the first generation
        started.set()
        assert release.wait(30)
        out = generate(requests, **kwargs)
        events.append(f"generate() of {len(requests)} returned at step {steps[0]}")
        return out

    monkeypatch.setattr(teacher, "generate", first_waits)
    engine = Engine(teacher, max_batch=2)
    try:
        steps[0] = 0
        warm = engine.submit(greedy("먼저", 1))
        assert started.wait(30)
        futures = [engine.submit(greedy("경복궁은 언제 지어졌나요?", LONG)), engine.submit(greedy("반가워요", SHORT))]
        for name, future in zip(("long", "short"), futures):
            future.add_done_callback(lambda f, name=name: events.append(f"{name} answered at step {steps[0]}"))
        release.set()
        warm.result(timeout=60)
        answers = [f.result(timeout=120) for f in futures]
    finally:
        release.set()
        engine.close()
    assert engine.batches == 2  # the warm one, then the long and the short one together
    # the short one is answered at its last token, LONG - SHORT steps before the batch ends (the warm one took 1)
    assert events == ["generate() of 1 returned at step 1", f"short answered at step {1 + SHORT}",
                      f"long answered at step {1 + LONG}", f"generate() of 2 returned at step {1 + LONG}"]
    assert all(same(a, b) for a, b in zip(answers, alone, strict=True))


def generated_ids(teacher, request) -> list[int]:
    """The token ids `teacher` generates for a greedy `request` alone (its Generation holds only their text)."""
    enc = teacher.tokenizer(teacher.render(request), return_tensors="pt", add_special_tokens=False)
    out = teacher.model.generate(**enc, do_sample=False, max_new_tokens=request.max_new_tokens,
                                 eos_token_id=sorted(teacher.eos_ids), pad_token_id=teacher.pad_id)
    return out[0, enc["input_ids"].shape[1]:].tolist()


def test_each_row_is_handed_over_once_as_it_ends_at_its_limit_stop_string_or_end_of_turn(teacher, steps):
    """TransformersTeacher.generate's on_row: called once per request, at the step its row ends (its max_new_tokens,
    a stop string, an end-of-turn token), with the Generation it returns in its list, equal to that request's alone."""
    requests = [greedy("경복궁은 언제 지어졌나요?", LONG), greedy("반가워요", SHORT), greedy("안녕하세요", LONG, stop=["따"])]
    # a token the first answer writes for the first time at its 5th token or later: a teacher whose end of turn
    # it is ends that answer there
    tokens = generated_ids(teacher, requests[0])
    turn_end = next(t for i, t in enumerate(tokens) if i >= 4 and t not in tokens[:i])
    ending = TransformersTeacher(teacher.model, teacher.tokenizer, "tiny-ko", batch_size=4, stop_token_ids=[turn_end])
    alone = [ending.generate([r], progress=False)[0] for r in requests]
    rows = []
    steps[0] = 0
    out = ending.generate(requests, progress=False, on_row=lambda i, g: rows.append((i, g, steps[0])))
    assert alone[0].finish_reason == "stop" and alone[0].usage["completion_tokens"] == tokens.index(turn_end) + 1
    assert alone[2].finish_reason == "stop" and "따" not in alone[2].text
    assert alone[2].usage["completion_tokens"] < LONG
    assert sorted(i for i, _, _ in rows) == [0, 1, 2]
    assert all(g is out[i] and same(g, alone[i]) for i, g, _ in rows)
    # each at the step of its last token: end of turn, limit, stop string
    assert {i: step for i, _, step in rows} == {i: a.usage["completion_tokens"] for i, a in enumerate(alone)}
