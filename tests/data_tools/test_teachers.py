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


THINKING_PROMPT = "<|im_start|>user\n3 더하기 4는?<|im_end|>\n<|im_start|>assistant\n<think>\n"


def test_a_completion_of_a_prompt_that_opens_the_think_block_is_reasoning_until_it_closes():
    """Qwen3-Thinking-2507 and DeepSeek-R1 distills end the generation prompt with "<think>\\n": cut off before
    its </think>, the completion is unfinished reasoning, not an answer; a finished one splits as before."""
    from data_tools.teachers import split_completion

    cut_off = "3 더하기 4를 계산해 보자. 답은 7"
    assert split_completion(THINKING_PROMPT, cut_off) == (cut_off, "")
    assert split_completion(THINKING_PROMPT, "3 더하기 4\n</think>\n\n7입니다.") == ("3 더하기 4", "7입니다.")
    mentions = "<|im_start|>user\n<think> 태그는 왜 쓰나요?<|im_end|>\n<|im_start|>assistant\n"  # opens nothing
    for prompt in ("<|im_start|>assistant\n", "<|im_start|>assistant\n<think>\n\n</think>\n\n", None, mentions):
        for text in (cut_off, "<think>\n끝나지 않은 생각", "<think>\n3 더하기 4\n</think>\n\n7입니다."):
            assert split_completion(prompt, text) == split_reasoning(text)
    assert split_completion(THINKING_PROMPT, "<think>\n다시 여는 생각") == ("다시 여는 생각", "")


def test_the_teacher_keeps_unfinished_reasoning_out_of_the_answer_when_the_template_opens_it(tiny):
    """tiny-ko under a template whose generation prompt opens the think block: an answer cut off by max_new_tokens
    or a stop string is all reasoning, and the text (message.content, a self-instruct list) is empty."""
    import copy

    model, tokenizer = tiny
    tokenizer = copy.deepcopy(tokenizer)
    opens = "{{- '<|im_start|>assistant\\n' }}"
    assert opens in tokenizer.chat_template
    tokenizer.chat_template = tokenizer.chat_template.replace(opens, "{{- '<|im_start|>assistant\\n<think>\\n' }}")
    thinking = TransformersTeacher(model, tokenizer, name="tiny-ko-thinking")
    request = requests(1, max_new_tokens=8, temperature=0.0)[0]
    prompt = thinking.render(request)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, do_sample=False, max_new_tokens=8, pad_token_id=tokenizer.pad_token_id)
    completion = tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "</think>" not in completion
    [g] = thinking.generate([request], progress=False)
    assert (g.finish_reason, g.text, g.reasoning) == ("length", "", completion.strip())
    request.prompt_text = prompt  # the same prompt, rendered by the caller
    assert thinking.generate([request], progress=False) == [g]
    request.stop = [g.reasoning[3:5]]
    [stopped] = thinking.generate([request], progress=False)
    assert (stopped.finish_reason, stopped.text) == ("stop", "")
    assert stopped.reasoning == g.reasoning[: g.reasoning.index(request.stop[0])].strip()


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


def vllm_stand_in(monkeypatch, llm) -> VLLMTeacher:
    """A VLLMTeacher over `llm`, a stand-in for vllm.LLM (vllm is not installed here, and there is no GPU)."""
    import sys
    import types

    vllm, inputs = types.ModuleType("vllm"), types.ModuleType("vllm.inputs")
    vllm.SamplingParams = lambda **settings: settings
    inputs.TokensPrompt = dict  # a TypedDict: TokensPrompt(prompt_token_ids=[...]) is that dict
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    teacher = object.__new__(VLLMTeacher)
    teacher.llm, teacher.lora, teacher.stop_token_ids, teacher.name = llm, None, [], "stand-in"
    return teacher


def test_the_vllm_teacher_keeps_unfinished_reasoning_out_of_the_answer_when_the_template_opens_it(monkeypatch):
    """LLM.chat renders the prompt to token ids (its outputs may carry no prompt text): the teacher reads the
    prompt's end from them, for chat requests and raw prompts alike."""
    from types import SimpleNamespace

    from data_tools.teachers import GenerationRequest

    class Tokenizer:
        def encode(self, text, add_special_tokens=True):
            return [ord(c) for c in text]

        def decode(self, ids, skip_special_tokens=True):
            return "".join(map(chr, ids))

    def outputs(prompts, texts):
        return [SimpleNamespace(prompt=None, prompt_token_ids=p, outputs=[SimpleNamespace(
            text=t, finish_reason="length", token_ids=[0] * len(t))]) for p, t in zip(prompts, texts)]

    class LLM:
        def get_tokenizer(self):
            return Tokenizer()

        def chat(self, conversations, sampling_params, use_tqdm, lora_request, chat_template_kwargs):
            return outputs([Tokenizer().encode(THINKING_PROMPT)] * len(conversations),
                           ["3 더하기 4를 계산해 보자", "3 더하기 4\n</think>\n\n7입니다."])

        def generate(self, prompts, sampling_params, use_tqdm, lora_request):
            return outputs([p["prompt_token_ids"] for p in prompts], ["3 더하기 4를 계산해 보자"])

    teacher = vllm_stand_in(monkeypatch, LLM())
    chat = [GenerationRequest([{"role": "user", "content": "3 더하기 4는?"}], seed=i) for i in range(2)]
    raw = GenerationRequest([], prompt_text=THINKING_PROMPT, seed=0)
    cut_off, finished, raw_cut_off = teacher.generate([*chat, raw], progress=False)
    assert (cut_off.text, cut_off.reasoning) == ("", "3 더하기 4를 계산해 보자") == (raw_cut_off.text,
                                                                                  raw_cut_off.reasoning)
    assert (finished.text, finished.reasoning) == ("7입니다.", "3 더하기 4")


def test_the_vllm_teacher_gives_a_magpie_prefix_as_token_ids_without_a_second_bos(monkeypatch):
    """vLLM's generate() encodes a text prompt with special tokens: a Llama or Gemma template's prefix, which starts
    with its BOS, got a second one. Checked with a stand-in for vllm (not installed here, and no GPU)."""
    from types import SimpleNamespace

    from data_tools.teachers import GenerationRequest

    class Tokenizer:  # a BOS-adding tokenizer (Llama): id 1 first unless add_special_tokens=False
        def encode(self, text, add_special_tokens=True):
            return [1] * add_special_tokens + [ord(c) for c in text]

    class LLM:
        prompts = None

        def get_tokenizer(self):
            return Tokenizer()

        def generate(self, prompts, sampling_params, use_tqdm, lora_request):
            self.prompts = prompts
            return [SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[SimpleNamespace(
                text="서울 맛집을 알려 주세요.", finish_reason="stop", token_ids=[5, 6])]) for p in prompts]

    teacher = vllm_stand_in(monkeypatch, LLM())
    prefix = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    [g] = teacher.generate([GenerationRequest([], prompt_text=prefix, seed=0)], progress=False)
    assert teacher.llm.prompts == [{"prompt_token_ids": [ord(c) for c in prefix]}]
    assert g.text == "서울 맛집을 알려 주세요." and g.usage["prompt_tokens"] == len(prefix)


def sampled(probs: list[float], n: int = 400, **settings) -> set[int]:
    """The tokens RowSampler picks for one next-token distribution over n seeded rows (temperature 1, top_p 1
    unless `settings` say otherwise)."""
    import torch

    from data_tools.sampling import RowSampler
    from data_tools.teachers import GenerationRequest

    rows = [GenerationRequest([], seed=i, **{"temperature": 1.0, "top_p": 1.0, **settings}) for i in range(n)]
    out = RowSampler(rows)(None, torch.tensor(probs).log().repeat(n, 1))
    assert (out == 0).sum(dim=-1).tolist() == [1] * n  # one token left per row, for generate()'s greedy step
    return set(out.argmax(dim=-1).tolist())


def test_top_k_and_min_p_keep_only_the_likeliest_tokens_before_the_nucleus():
    """vLLM's order: temperature, then top_k and min_p, then top_p over what they left, renormalised. (Over the
    raw probabilities, top_p=0.75 would keep token 2 below: 0.5 + 0.2 < 0.75.)"""
    probs = [0.5, 0.2, 0.2, 0.1]
    assert sampled(probs) == {0, 1, 2, 3}
    assert sampled(probs, top_k=0) == sampled(probs, top_k=-1) == {0, 1, 2, 3}  # off
    assert sampled(probs, top_k=2) == {0, 1} and sampled(probs, top_k=1) == {0}
    assert sampled(probs, min_p=0.3) == {0, 1, 2}  # 0.1 < 0.3 * 0.5
    assert sampled(probs, min_p=1.0) == {0}
    assert sampled(probs, top_k=3, top_p=0.75) == {0, 1}
    assert sampled(probs, min_p=0.3, top_p=0.75) == {0, 1}
    assert sampled(probs, top_p=0.75) == {0, 1, 2}


def test_top_k_and_min_p_rows_give_the_same_text_batched_or_alone_and_top_k_1_is_greedy(teacher, tiny):
    batch = requests(6, max_new_tokens=10, temperature=1.5)
    batch[0].top_k, batch[1].min_p, batch[2].top_k, batch[2].min_p, batch[3].top_k = 5, 0.2, 40, 0.05, -1
    together = teacher.generate(batch, progress=False)
    alone = TransformersTeacher(*tiny, name="tiny-ko", batch_size=1).generate(batch, progress=False)
    assert texts(together) == texts(alone)
    [greedy] = teacher.generate(requests(1, max_new_tokens=12, temperature=0.0), progress=False)
    for settings in ({"top_k": 1}, {"min_p": 1.0}):
        [g] = teacher.generate(requests(1, max_new_tokens=12, temperature=2.0, **settings), progress=False)
        assert g.text == greedy.text
    [hot] = teacher.generate(requests(1, max_new_tokens=12, temperature=2.0), progress=False)
    assert hot.text != greedy.text  # so top_k=1 and min_p=1 did the work
    for bad in ({"top_k": -2}, {"top_k": 2.5}, {"min_p": 1.5}, {"min_p": -0.1}):
        with pytest.raises(TeacherError, match=next(iter(bad))):
            teacher.generate(requests(1, **bad), progress=False)


def test_a_stop_string_of_4_byte_characters_is_seen_whole():
    """"𝐄𝐍𝐃𝐄𝐍" is 5 characters, 20 bytes and 20 byte-level tokens of tiny-ko: the look-back window must cover
    them all, or the stop string never fires and generation runs on to max_new_tokens."""
    import torch

    from data_tools.sampling import RowStop
    from data_tools.teachers import GenerationRequest
    from training.tiny_ko import load_tiny_tokenizer

    tokenizer = load_tiny_tokenizer()
    stop_string = "𝐄𝐍𝐃𝐄𝐍"
    assert len(tokenizer(stop_string, add_special_tokens=False)["input_ids"]) == 20
    prompt = tokenizer("질문", add_special_tokens=False)["input_ids"]
    answer = tokenizer(f"답은 이렇습니다 {stop_string} 그리고 더", add_special_tokens=False)["input_ids"]
    request = GenerationRequest([], max_new_tokens=100, stop=[stop_string])
    stop = RowStop([request], len(prompt), tokenizer)
    fired = next((n for n in range(1, len(answer) + 1)
                  if stop(torch.tensor([prompt + answer[:n]]), None).tolist() == [True]), None)
    assert fired is not None, "the stop string never ended the answer"
    assert tokenizer.decode(answer[:fired]).endswith(stop_string)
    assert stop.ended == [fired]


def test_generate_is_not_disturbed_by_another_thread_using_the_tokenizer(tiny, monkeypatch):
    """kosov serve counts a prompt's tokens with teacher.tokenizer on its HTTP thread while the engine thread
    encodes a batch. A fast tokenizer keeps its padding setting on its Rust object: another thread's unpadded call
    between generate()'s padding setup and its encode unpadded the batch ("Unable to create tensor"). That
    interleaving is rare (a few in a thousand batches), so it is forced here: the other thread's call runs right
    after each padding setup."""
    import threading

    from transformers.utils import PaddingStrategy

    model, tokenizer = tiny
    teacher = TransformersTeacher(model, tokenizer, name="tiny-ko", batch_size=4)
    backend = type(tokenizer)
    setup = backend.set_truncation_and_padding
    counted: list[int] = []

    def interleaved(self, *args, **kwargs):
        setup(self, *args, **kwargs)
        if kwargs.get("padding_strategy", args[0] if args else None) != PaddingStrategy.DO_NOT_PAD:
            other = threading.Thread(target=lambda: counted.append(
                len(teacher.tokenizer("안녕하세요", add_special_tokens=False)["input_ids"])))
            other.start()
            other.join()

    monkeypatch.setattr(backend, "set_truncation_and_padding", interleaved)
    out = teacher.generate(requests(4, max_new_tokens=2), progress=False)  # prompts of different lengths
    assert counted and len(out) == 4 and all(g.usage["completion_tokens"] >= 1 for g in out)
