"""The in-process teachers (data_tools.teachers) on tiny-ko; the vLLM teacher only refuses clearly on CPU."""

from __future__ import annotations

import pytest

from data_tools.teachers import TeacherError, TransformersTeacher, VLLMTeacher, split_reasoning
from tests.data_tools.teacher_helpers import requests, texts


def test_batched_generation_gives_each_seeded_request_the_text_it_gets_alone(teacher, tiny):
    batch = requests(6, max_new_tokens=10)
    batch[2].max_new_tokens = 4  # rows of one batch with their own limits
    together = teacher.generate(batch, progress=False)
    alone = TransformersTeacher(*tiny, name="tiny-ko", batch_size=1).generate(batch, progress=False)
    assert texts(together) == texts(alone)
    assert [g.usage for g in together] == [g.usage for g in alone]
    _, tokenizer = tiny
    for request, g in zip(batch, together):
        prompt = teacher.render(request)
        assert g.usage["prompt_tokens"] == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert 1 <= g.usage["completion_tokens"] <= request.max_new_tokens
        assert g.finish_reason in ("stop", "length") and g.cached is False
    assert together[2].usage["completion_tokens"] <= 4


def test_seeds_make_sampling_reproducible_and_different_seeds_differ(teacher):
    first = teacher.generate(requests(4, max_new_tokens=16), progress=False)
    again = teacher.generate(requests(4, max_new_tokens=16), progress=False)
    other = teacher.generate(requests(4, seed0=100, max_new_tokens=16), progress=False)
    assert texts(first) == texts(again)
    assert all(a != b for a, b in zip(texts(first), texts(other)))


def test_temperature_zero_and_a_tiny_top_p_are_plain_greedy_decoding(teacher, tiny):
    model, tokenizer = tiny
    request = requests(1, max_new_tokens=12)[0]
    enc = tokenizer(teacher.render(request), return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, do_sample=False, max_new_tokens=12, pad_token_id=tokenizer.pad_token_id)
    greedy = tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    request.temperature = 0.0
    assert teacher.generate([request], progress=False)[0].text == greedy
    request.temperature, request.top_p = 1.0, 1e-9  # the nucleus is the top token alone
    assert teacher.generate([request], progress=False)[0].text == greedy


def test_a_stop_string_cuts_the_answer_where_it_starts(teacher):
    [full] = teacher.generate(requests(1, max_new_tokens=16), progress=False)
    stop = full.text[5:7]
    [cut] = teacher.generate(requests(1, max_new_tokens=16, stop=[stop]), progress=False)
    assert cut.text == full.text[: full.text.index(stop)] and cut.finish_reason == "stop"


def test_chat_template_kwargs_reach_the_template(teacher):
    plain, no_thinking = requests(2, max_new_tokens=4)
    no_thinking.chat_template_kwargs = {"enable_thinking": False}
    assert teacher.render(no_thinking).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not teacher.render(plain).endswith("</think>\n\n")
    a, b = teacher.generate([plain, no_thinking], progress=False)
    assert b.usage["prompt_tokens"] > a.usage["prompt_tokens"]
    with pytest.raises(TeacherError, match="may not set"):
        teacher.generate(requests(1, chat_template_kwargs={"tokenize": True}), progress=False)


def test_the_think_block_is_split_off_as_reasoning():
    assert split_reasoning("<think>\n12 곱하기 3\n</think>\n\n36입니다.") == ("12 곱하기 3", "36입니다.")
    assert split_reasoning("<think>\n끝나지 않은 생각") == ("끝나지 않은 생각", "")  # cut off by max_new_tokens
    assert split_reasoning("36입니다.") == (None, "36입니다.")


def base_like(model, tokenizer):
    """tiny-ko as a base checkpoint (eos <|endoftext|>, as Qwen3-*-Base ships) fine-tuned to close its turns with
    <|im_end|>: its head prefers <|im_end|>, which is no longer its eos."""
    import copy

    import torch

    model, tokenizer = copy.deepcopy(model), copy.deepcopy(tokenizer)
    tokenizer.eos_token = "<|endoftext|>"
    im_end, eot = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=False)
    with torch.no_grad():
        head.weight.copy_(model.get_input_embeddings().weight)
        head.weight[im_end] *= 30
    model.lm_head, model.config.tie_word_embeddings = head, False
    model.config.eos_token_id = model.generation_config.eos_token_id = eot
    return model, tokenizer, im_end


def test_a_base_checkpoint_stops_at_the_end_of_its_turn_not_only_at_its_eos(tiny):
    """What `kosov serve` builds (no stop ids given): the token the chat template closes a turn with still ends
    the answer, instead of generating past it to max_new_tokens."""
    model, tokenizer, im_end = base_like(*tiny)
    request = requests(1, max_new_tokens=40, temperature=0.0)[0]
    enc = tokenizer(TransformersTeacher(model, tokenizer, "x").render(request), return_tensors="pt",
                    add_special_tokens=False)
    raw = model.generate(**enc, do_sample=False, max_new_tokens=40, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.eos_token_id)[0, enc["input_ids"].shape[1]:].tolist()
    assert im_end in raw[:20]  # the model ends its turn early; its eos alone would not stop it
    for teacher in (TransformersTeacher(model, tokenizer, "base-like"),
                    TransformersTeacher(model, tokenizer, "base-like", stop_token_ids=[im_end])):
        assert im_end in teacher.eos_ids
        [g] = teacher.generate([request], progress=False)
        assert g.finish_reason == "stop" and g.usage["completion_tokens"] == raw.index(im_end) + 1
        assert g.text == tokenizer.decode(raw[: raw.index(im_end)], skip_special_tokens=True)


def test_the_vllm_teacher_refuses_clearly_without_a_gpu():
    with pytest.raises(TeacherError) as e:
        VLLMTeacher("Qwen/Qwen3-8B")
    assert "vLLM" in str(e.value) and "GPU" in str(e.value) and "Fix:" in str(e.value)
