"""Test helpers that are not fixtures."""

from __future__ import annotations

import struct
from pathlib import Path


def wandb_records(run_file: Path) -> list:
    """Every record of an offline wandb run file (run-*.wandb: a LevelDB-style record log), as protobuf Records."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, header = run_file.read_bytes(), 32768, 7
    raws, partial, pos = [], b"", 7  # the file opens with a 7-byte ":W&B" header
    while pos + header <= len(data):
        if block - pos % block < header:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        chunk, pos = data[pos + header : pos + header + length], pos + header + length
        if kind == 0:
            break
        partial = chunk if kind in (1, 2) else partial + chunk
        if kind in (1, 4):
            raws.append(partial)
    records = []
    for raw in raws:
        record = pb.Record()
        record.ParseFromString(raw)
        records.append(record)
    return records


def wandb_history(run_file: Path, key: str) -> list[float]:
    """Values of one metric from an offline wandb run file."""
    return [float(i.value_json) for record in wandb_records(run_file)
            if record.WhichOneof("record_type") == "history"
            for i in record.history.item if (i.key or "/".join(i.nested_key)) == key]


def lora_b_trained(adapter: Path) -> bool:
    """LoRA B starts at zero: every B in the saved adapter is non-zero only if training moved it."""
    from safetensors.torch import load_file

    weights = load_file(adapter / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    return bool(lora_b) and all(v.abs().sum() > 0 for v in lora_b)


def quick(*overrides: str) -> list[str]:
    """Overrides for a few-step tiny-ko run (for tests of one behaviour, not of learning)."""
    return ["experiment=smoke-sft", "method.max_steps=3", "method.save_steps=100", "method.eval_steps=100",
            "method.logging_steps=1", "data.max_rows=24", *overrides]


def flat_batch(trainer, items: int = 8) -> dict:
    """The first `items` examples of the trainer's train set (packed blocks, or sequences) through its own padding-free
    collator, checked to be a padding-free batch: the sequences flattened into one row with no padding mask,
    position_ids restarting at each sequence, several sequences in the row. What one forward takes where the kernel
    keeps blocks apart (FlashAttention, flex_attention); SDPA gets one packed block a forward (sft.batch_sizes)."""
    import torch

    examples = [trainer.train_dataset[i] for i in range(min(items, len(trainer.train_dataset)))]
    batch = {k: v for k, v in trainer.data_collator(examples).items() if torch.is_tensor(v)}
    ids, pos = batch["input_ids"], batch["position_ids"]
    assert ids.shape[0] == 1 and "attention_mask" not in batch, {k: tuple(v.shape) for k, v in batch.items()}
    assert pos.shape == ids.shape and pos[0, 0] == 0
    assert int((pos[0] == 0).sum()) > 3  # several sequences share the row
    return batch


def boundary_leak(trainer) -> tuple[float, float]:
    """Hidden states of one padding-free batch (flat_batch: the trainer's own collator, rows flattened, position_ids
    restarting at each sequence) against each sequence run alone; and, for scale, the same flat row with the
    boundaries hidden from the attention kernel. Returns (max |packed - alone|, max |leaky - alone|)."""
    import torch

    model = trainer.model
    decoder = model.get_base_model().model  # the decoder stack with its LoRA layers, before the (fused) LM head
    device = next(decoder.parameters()).device
    batch = {k: v.to(device) for k, v in flat_batch(trainer).items() if k != "labels"}
    ids, pos = batch["input_ids"], batch["position_ids"]
    starts = (pos[0] == 0).nonzero().flatten().tolist() + [ids.shape[1]]
    length = ids.shape[1]
    if model.config._attn_implementation.startswith("flash"):  # one varlen segment spanning the whole row
        whole = torch.tensor([0, length], dtype=torch.int32, device=device)
        leaky = dict(cu_seq_lens_q=whole, cu_seq_lens_k=whole, max_length_q=length, max_length_k=length)
    else:  # an explicit all-ones mask turns off transformers' packed-sequence detection: plain causal
        leaky = dict(attention_mask=torch.ones_like(ids))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(trainer.args.bf16)):
            def hidden(**kwargs):
                return decoder(use_cache=False, **kwargs).last_hidden_state[0].float()

            packed = hidden(**batch)
            leaked = hidden(input_ids=ids, position_ids=pos, **leaky)
            # The reference, each sequence alone, through SDPA when the kernel under test is FlexAttention: on short
            # rows inductor picks its flex-decoding kernel, which has no fp32 variant for tiny-ko's 16-wide heads
            # (NoValidChoicesError, seen on an H100); the reference needs no particular kernel.
            kernel = decoder.config._attn_implementation
            if kernel == "flex_attention":
                decoder.set_attn_implementation("sdpa")
            try:
                alone = torch.cat([hidden(input_ids=ids[:, s:e]) for s, e in zip(starts, starts[1:])])
            finally:
                decoder.set_attn_implementation(kernel)
    finally:
        model.train(was_training)
    return (packed - alone).abs().max().item(), (leaked - alone).abs().max().item()


def generating_task(name: str, max_gen_toks: int) -> dict:
    """A local generating lm-eval task over a JSONL of {"question", "answer"} rows (exact match, greedy, ending at
    tiny-ko's end of turn): register it with harness.LOCAL_TASKS[name] = {"data": <file>, "task": this}."""
    return {"task": name, "dataset_path": "json", "output_type": "generate_until", "test_split": "test",
            "doc_to_text": "{{question}}", "doc_to_target": "{{answer}}",
            "generation_kwargs": {"until": ["<|im_end|>"], "max_gen_toks": max_gen_toks, "do_sample": False},
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0}}
