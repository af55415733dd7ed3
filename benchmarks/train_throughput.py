"""Training throughput: a plain TRL trainer with its defaults (a) against kosov's recipe (b), in one run, on the
same Korean data and the same random-init model of a real architecture (throughput does not depend on weights).

    python benchmarks/train_throughput.py --model qwen3-8b --seq-len 4096 --steps 20          # LoRA SFT, GPU
    python benchmarks/train_throughput.py --model qwen3-8b --seq-len 4096 --data merged       # same, no padding
    python benchmarks/train_throughput.py --model qwen3-8b --seq-len 4096 --qlora             # QLoRA memory
    python benchmarks/train_throughput.py --grpo --model qwen3-1.7b --group 8 --completion 256  # GRPO
    python benchmarks/train_throughput.py --cpu-smoke                                           # CI: it runs
    python benchmarks/train_throughput.py --model qwen3-8b --variant no-ckpt method.activation_checkpointing=false

--variant NAME OVERRIDE... (repeatable) adds a row c, d, ...: kosov's recipe with those Hydra overrides, trained
after (b) in the same run against the same baseline, with its own ratio row: a candidate setting is measured
beside the recipe as shipped before it becomes a default. The LoRA stays the recipe's (peft.* is refused).
--seq-len, --batch and --data are SFT's and refused with --grpo (GRPO's step is --group completions of up to
--completion tokens per math prompt); --steps must be at least 1, --warmup 0 or more, --group at least 2. A run
ended by SIGTERM (a SLURM time limit, scancel, timeout) exits with status 143 through Python's exit, so the random
model saved for QLoRA or GRPO (16 GB for the 8B) is removed from $TMPDIR. --json writes NaN (no GPU) as null.

Prints useful (non-pad) tokens/s and per step, peak GPU memory (allocated, and reserved: what the card must
have) and the ratios b/a, warm-up steps excluded, and with --results appends the table (GPU name, versions, date)
to benchmarks/RESULTS.md (--json: the rows as JSON). kosov's setup in the header names the micro-batch its Trainer
ran (`n block(s) per forward x k accumulation`: SFT packing with SDPA or eager takes one block per forward), and
notes under a table say what a row's cells do not: a peak memory that comes from accumulation (not a same-batch
figure), a timed step over 3x the median (a recompile, also warned about). Each side's row is printed as soon as
it finishes, (a)'s model is collected before (b) builds its own, so (b)'s peak memory holds none of (a)'s, and a
side that runs out of GPU memory is recorded as OOM while the other still runs. The data are kosov's Korean SFT
rows (chat rows and worked math solutions). Two ways to feed them:
- `--data rows` (default): the rows as they are, a realistic spread of lengths. kosov's recipe packs them into
  `--seq-len` blocks, `--batch` blocks per step; the TRL default pads random batches of rows, as many rows per
  step as hold the same number of real tokens on average, so both trainers see the same text per step.
- `--data merged`: rows merged into multi-turn conversations of about `--seq-len` tokens, `--batch` of them per
  step for both trainers: no padding to save, so this isolates attention, kernels and checkpointing.
kosov's data step trains each conversation once here (`method.sft.turns=last`), as TRL does: with `all`, Qwen3's
template renders earlier turns differently, and every assistant turn would become a sample repeating its history.
kosov's side is the recipe a user of that model would run (--recipe picks another; --qlora and KORMo's config pick
their own), with the recipe's attention; both sides train the recipe's LoRA (r, alpha, dropout, targets), so the
trainers alone differ. Model shapes are those of the real configs (--config reads any config.json, e.g.
KORMo-10B's: shapes.KORMO_HELP). The tokenizer is kosov's tiny-ko, so lengths are tiny-ko tokens (ids fit any
vocabulary).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.shapes import (KORMO_HELP, SHAPES, build_model, model_size, read_config, saved_model,  # noqa: E402
                               sigterm_exits)
from benchmarks.measure import StepTimer, release, result, run_side, slow_step_warning  # noqa: E402
from benchmarks.report import A, B, emit, environment, json_text, table, variant_name  # noqa: E402
from training.safe_write import write_atomic  # noqa: E402

# kosov's side: the recipe a user training that model runs (its model swapped for the benchmark's shape). There is
# one bf16 LoRA GRPO recipe (the 1.7B's); --qlora and KORMo have their own recipes for both methods.
RECIPES = {"sft": {"qwen3-0.6b": "qwen3-1.7b-ko-sft", "qwen3-1.7b": "qwen3-1.7b-ko-sft", "qwen3-8b": "qwen3-8b-ko-sft",
                   "tiny-ko": "qwen3-1.7b-ko-sft", "qlora": "qwen3-8b-ko-qlora-sft", "kormo": "kormo-10b-ko-sft"},
           "grpo": {"qwen3-0.6b": "qwen3-1.7b-ko-grpo", "qwen3-1.7b": "qwen3-1.7b-ko-grpo",
                    "qwen3-8b": "qwen3-1.7b-ko-grpo", "tiny-ko": "qwen3-1.7b-ko-grpo",
                    "qlora": "qwen3-8b-ko-qlora-grpo", "kormo": "kormo-10b-ko-grpo"}}


def token_count(tokenizer: Any, messages: list[dict]) -> int:
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])


def korean_rows(tokenizer: Any, seq_len: int | None = None) -> list[dict]:
    """kosov's Korean SFT rows; with seq_len, merged into multi-turn conversations of about seq_len tokens."""
    from data_tools.chat_io import load_chat_files
    from training.config import resolve_path

    rows = [r.messages for r in load_chat_files([resolve_path("pkg://data_tools/datasets/ko_chat_seed.jsonl"),
                                                 resolve_path("pkg://data_tools/datasets/ko_math/sft.jsonl")]).rows]
    rows = [[{k: v for k, v in m.items() if k != "reasoning_content"} for m in r if m["role"] != "system"]
            for r in rows]
    if not seq_len:
        return [{"messages": r} for r in rows]
    merged, current, length = [], [], 0
    for turns in rows:
        n = token_count(tokenizer, turns)
        if current and length + n > seq_len:
            merged.append({"messages": current})
            current, length = [], 0
        current, length = current + turns, length + n
    return merged + ([{"messages": current}] if current else [])


def plan_batches(args: Any, tokenizer: Any) -> tuple[list[dict], int, int]:
    """(rows both trainers get, TRL's rows per step, kosov's sequences per step) for --data."""
    if args.data == "merged":
        return korean_rows(tokenizer, args.seq_len), args.batch, args.batch
    rows = korean_rows(tokenizer)
    lengths = [token_count(tokenizer, r["messages"]) for r in rows]
    mean = sum(min(n, args.seq_len) for n in lengths) / len(lengths)
    return rows, max(1, round(args.batch * args.seq_len / mean)), args.batch


def kosov_recipe(args: Any) -> str:
    method = "grpo" if args.grpo else "sft"
    if args.recipe:
        return args.recipe
    if args.qlora:
        return RECIPES[method]["qlora"]
    if args.config and read_config(args.config).get("model_type") == "kormo":
        return RECIPES[method]["kormo"]
    return RECIPES[method]["qwen3-8b" if args.config else args.model]


# What the benchmark sets for both sides or builds itself (the model, its LoRA, the data, the batch, the steps): a
# --variant's override of these would not apply, or would change what both sides are compared on.
FIXED = {"all": ("peft", "model", "experiment", "device", "data", "tracking", "output_dir", "method.init_adapter",
                 "method.max_steps", "method.logging_steps", "method.per_device_train_batch_size",
                 "method.gradient_accumulation_steps"),
         "sft": ("method.sft.max_length", "method.sft.turns"),
         "grpo": ("method.grpo.num_generations", "method.grpo.max_completion_length",
                  "method.grpo.mask_truncated_completions", "method.grpo.num_iterations")}


def fixed_by_benchmark(key: str, method: str) -> bool:
    if key == "model.attn_implementation":  # the model is built with the variant's attention
        return False
    return any(key == f or key.startswith(f + ".") for f in (*FIXED["all"], *FIXED[method]))


def resolve_recipe(args: Any, device: str) -> None:
    """Pick kosov's recipe and refuse what would not measure what was asked, before anything loads. Sets
    args.recipe, args.peft (the recipe's LoRA: both sides train it, so only the trainers differ), args.attn (the
    recipe's attention on this machine: `auto` is FlashAttention 2 where it can run, else SDPA) and args.sides
    (kosov's rows: the recipe, then each --variant, as (row name, overrides, attention))."""
    from training.errors import KosovError
    from training.models import attention_for, check_attention
    from training.recipes import compose

    if args.qlora and device != "cuda":
        raise SystemExit("--qlora needs a CUDA GPU: bitsandbytes has no 4-bit backward on CPU (drop --qlora with "
                         "--cpu-smoke)")
    method, recipe = ("grpo" if args.grpo else "sft"), kosov_recipe(args)
    try:
        real = compose([f"experiment={recipe}", "tracking=none"])
    except KosovError as e:
        raise SystemExit(f"--recipe {recipe}: {e}") from None
    quantized = real.peft.quantization is not None
    if real.method.name != method:
        raise SystemExit(f"--recipe {recipe} is a {real.method.name} recipe, and this run compares {method} "
                         f"({'with' if args.grpo else 'without'} --grpo): give a {method} recipe, e.g. "
                         f"{RECIPES[method]['qlora' if args.qlora else 'qwen3-8b']}")
    if real.peft.method not in ("lora", "qlora", "dora"):
        raise SystemExit(f"--recipe {recipe} trains peft={real.peft.method}: the TRL baseline trains an adapter, so "
                         "only an adapter recipe compares")
    if quantized != args.qlora:
        raise SystemExit(f"--recipe {recipe} is {'a QLoRA' if quantized else 'a bf16 LoRA'} recipe; "
                         + ("add --qlora, so that the TRL baseline loads the same 4-bit base" if quantized else
                            f"--qlora wants a QLoRA recipe ({RECIPES[method]['qlora']})"))
    args.recipe, args.peft, args.attn = recipe, real.peft, attention_for(real.model, device)
    args.sides = [(B, [], args.attn)]
    for i, (name, *overrides) in enumerate(getattr(args, "variant", None) or []):
        bad = [o for o in overrides if fixed_by_benchmark(o.lstrip("+~").split("=")[0], method)]
        if not overrides or bad:
            raise SystemExit(f"--variant {name}: " + (
                f"{' '.join(bad)}: the benchmark sets this for both sides (or builds it itself), so a variant cannot "
                "change it; a variant changes kosov's trainer settings, e.g. --variant no-ckpt "
                "method.activation_checkpointing=false" if bad else "give it at least one Hydra override"))
        try:
            variant = compose([f"experiment={recipe}", "tracking=none", *overrides])
            check_attention(variant.model, device)  # e.g. FlexAttention on CPU: no backward there
        except KosovError as e:
            raise SystemExit(f"--variant {name}: {e}") from None
        args.sides.append((variant_name(i, name), overrides, attention_for(variant.model, device)))


def run_trl_sft(args, tokenizer, device, rows: list[dict], batch: int) -> dict[str, float]:
    """(a) TRL's SFTTrainer with its defaults (conversational rows, padded batches, its own settings), training
    the recipe's LoRA (rank, alpha, dropout, target modules): the adapter is the same on both sides."""
    from trl import SFTConfig, SFTTrainer

    from training.adapters import lora_config

    model = build_model(args.model, args.config, device, quantize=args.qlora)
    timer = StepTimer(args.warmup)
    config = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=args.warmup + args.steps, logging_steps=1,
                       per_device_train_batch_size=batch, max_length=args.seq_len, report_to=[],
                       save_strategy="no", use_cpu=device == "cpu", bf16=device == "cuda")
    trainer = SFTTrainer(model=model, args=config, train_dataset=_dataset(rows), processing_class=tokenizer,
                         peft_config=lora_config(args.peft, model), callbacks=[timer.callback])
    trainer.train()
    out = result(timer, trainer, args.steps)
    ref = weakref.ref(model)
    del trainer, model
    return out | release(ref)


def run_kosov_sft(args, tokenizer, device, rows: list[dict], batch: int, overrides: list[str],
                  attn: str) -> dict[str, float]:
    """(b) kosov's recipe: its data step (packing, padding-free), attention, kernels, checkpointing, trainer
    arguments and LoRA; only the model (the benchmark's shape), the step count and method.sft.turns=last (each
    conversation once, as TRL trains it) differ. A --variant's overrides (c, d, ...) come before those."""
    from training import sft
    from training.adapters import lora_config
    from training.recipes import compose
    from training.run_dir import RunDir
    from training.train import trainer_args

    cfg = compose([f"experiment={args.recipe}", *overrides, "model=tiny-ko", "tracking=none",
                   f"method.per_device_train_batch_size={batch}", "method.gradient_accumulation_steps=1",
                   f"method.sft.max_length={args.seq_len}", "method.sft.turns=last", "data.eval_ratio=0",
                   "data.on_overlong=skip"])
    rows_path = Path(tempfile.mkdtemp()) / "rows.jsonl"
    rows_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg.data.train_files = [str(rows_path)]
    cfg.method.max_steps, cfg.method.logging_steps = args.warmup + args.steps, 1
    model = build_model(args.model, args.config, device, quantize=args.qlora, attn=attn)
    data = sft.build_data(cfg, tokenizer, tokenizer.convert_tokens_to_ids("<|im_end|>"))
    common = trainer_args(cfg, RunDir(Path(tempfile.mkdtemp())), device, [], model.config.model_type)
    common.update(save_strategy="no")
    trainer = sft.build_trainer(cfg, model, tokenizer, data, lora_config(args.peft, model), common)
    timer = StepTimer(args.warmup)
    trainer.add_callback(timer.callback)
    trainer.train()
    out = result(timer, trainer, args.steps)
    out["setup"] = setup(trainer)
    # what each forward took, as the Trainer ran it: SFT packing on SDPA or eager takes one block per forward and
    # the blocks per step as accumulation (training/sft.py, batch_sizes)
    out["per_forward"] = trainer.args.per_device_train_batch_size
    out["accumulation"] = trainer.args.gradient_accumulation_steps
    out["rows"], out["sequences"] = len(rows), data.summary["train_sequences"]  # one sequence per row at most
    ref = weakref.ref(model)
    del trainer, model
    return out | release(ref)


def setup(trainer: Any) -> str:
    """What kosov's side ran with on this machine, for the table's header: attention, the micro-batch the Trainer
    ran (its own arguments, as training/sft.py set them), kernels, checkpointing."""
    args = trainer.args
    return (f"{trainer.model.config._attn_implementation}, {args.per_device_train_batch_size} block(s) per forward x "
            f"{args.gradient_accumulation_steps} accumulation, Liger {'on' if args.use_liger_kernel else 'off'}, "
            f"activation checkpointing {'on' if args.activation_checkpointing else 'off'}")


def accumulation_note(row: dict[str, Any], trl_batch: int) -> str | None:
    """For a kosov row that split its step into micro-batches: its peak memory is one micro-batch's, against
    TRL's whole padded batch in one forward, so it is shown, not a same-batch memory figure."""
    if row.get("accumulation", 1) <= 1:
        return None
    per_step = row["per_forward"] * row["accumulation"]
    return (f"{row['per_forward']} block(s) per forward x {row['accumulation']} accumulation steps ({per_step} blocks "
            f"per optimizer step): its peak memory is that of {row['per_forward']} block(s) at a time, against (a)'s "
            f"{trl_batch} rows in one forward, so it comes from the accumulation; the memory target at the same "
            "batch is judged on a row that feeds the whole batch per forward")


def add_notes(name: str, row: dict[str, Any], trl_batch: int) -> None:
    """The notes the table prints under it for this row, and a warning for a timed step that was a recompile."""
    slow = slow_step_warning(row.get("step_seconds", []))
    if slow:
        print(f"warning: {name}: {slow}", file=sys.stderr, flush=True)
    notes = [n for n in (slow, accumulation_note(row, trl_batch) if name != A else None) if n]
    if notes:
        row.setdefault("notes", []).extend(notes)


def lora_text(peft: Any) -> str:
    targets = peft.target_modules if isinstance(peft.target_modules, str) else ",".join(peft.target_modules)
    return f"LoRA r {peft.r}, alpha {peft.alpha}, dropout {peft.dropout}, {targets} on both"


def _dataset(rows: list[dict]):
    import datasets

    return datasets.Dataset.from_list(rows)


def at_least(low: int):
    """An argparse type: an integer >= low (argparse names the flag in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


# SFT's flags, which a GRPO run does not use (it feeds the math prompts, a group of completions per prompt), and
# their defaults: given with --grpo they are refused, not silently ignored
SFT_ONLY = {"seq_len": 4096, "batch": 1, "data": "rows"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="qwen3-8b", choices=[*SHAPES, "kormo-10b"],
                        help="a published shape; kormo-10b needs --config (its config.json: README)")
    parser.add_argument("--config", help="a config.json (or model folder) to build the model from, e.g. "
                                         "KORMo-10B's, read without its remote code")
    parser.add_argument("--seq-len", type=at_least(1), default=None,
                        help=f"SFT: tokens per sequence (default {SFT_ONLY['seq_len']}; refused with --grpo)")
    parser.add_argument("--batch", type=at_least(1), default=None,
                        help="SFT: sequences of --seq-len per step (kosov's packed blocks; with --data merged, both; "
                             f"default {SFT_ONLY['batch']}; refused with --grpo, whose step is --group completions)")
    parser.add_argument("--data", choices=["rows", "merged"], default=None,
                        help="SFT: rows (default): the Korean rows as they are (TRL pads, kosov packs); merged: "
                             "~seq-len conversations for both (no padding to save); refused with --grpo (its data "
                             "are the math prompts)")
    parser.add_argument("--recipe", help="kosov's experiment to compare (default: the one for --model, --qlora, "
                                         "KORMo's --config, --grpo)")
    parser.add_argument("--steps", type=at_least(1), default=20, help="timed optimizer steps (at least 1)")
    parser.add_argument("--warmup", type=at_least(0), default=5, help="untimed steps before them (0 or more)")
    parser.add_argument("--qlora", action="store_true", help="both sides on the same 4-bit NF4 base (GPU)")
    parser.add_argument("--grpo", action="store_true",
                        help="compare GRPO (TRL's GRPOTrainer against kosov's GRPO recipe) instead of SFT")
    parser.add_argument("--group", type=at_least(2), default=8, help="GRPO: completions per prompt (at least 2)")
    parser.add_argument("--completion", type=at_least(1), default=256, help="GRPO: completion tokens")
    parser.add_argument("--variant", nargs="+", action="append", metavar=("NAME", "OVERRIDE"),
                        help="another kosov row: the recipe with these Hydra overrides, against the same baseline "
                             "(repeatable), e.g. --variant no-ckpt method.activation_checkpointing=false")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny-ko (or --config's shape), a few steps: proves the script runs")
    parser.add_argument("--results", help="append the table to this Markdown file")
    parser.add_argument("--json", help="write the rows and the header to this JSON file")
    args = parser.parse_args(argv)
    given = [f"--{key.replace('_', '-')}" for key in SFT_ONLY if getattr(args, key) is not None]
    if args.grpo and given:
        parser.error(f"{', '.join(given)}: SFT's flags, which --grpo does not use (GRPO trains --group completions "
                     "of up to --completion tokens per math prompt); drop them")
    for key, default in SFT_ONLY.items():
        setattr(args, key, default if getattr(args, key) is None else getattr(args, key))
    if args.model == "kormo-10b" and not args.config:
        raise SystemExit(f"--model kormo-10b: {KORMO_HELP}")
    with sigterm_exits():  # a killed run (SLURM's time limit, timeout) still removes its saved model folder
        return run(args)


def run(args: Any) -> int:
    import torch

    from training.tiny_ko import load_tiny_tokenizer

    device = "cuda" if torch.cuda.is_available() and not args.cpu_smoke else "cpu"
    if args.cpu_smoke:
        args.model = args.model if args.config else "tiny-ko"
        args.seq_len, args.steps, args.warmup, args.group, args.completion = 256, 2, 1, 4, 16
    resolve_recipe(args, device)
    tokenizer = load_tiny_tokenizer()
    shape = f"{args.config or args.model} shape"
    rows: dict[str, dict[str, Any]] = {}
    headers: list[str] = []

    def publish(names: list[str], header: str) -> None:
        """A table as soon as its rows are measured: (a) and (b) first, then each variant's against (a), so a run
        stopped at its time limit keeps every table finished before."""
        emit(table({n: rows[n] for n in names}, header, generated=args.grpo, qlora=args.qlora), args.results)
        headers.append(header)
        if args.json:
            write_atomic(Path(args.json), json_text({"header": headers[0], "headers": headers, "rows": rows},
                                                    indent=1))

    size = f"{model_size(args.model, args.config)}; {environment(device)}"
    if args.grpo:
        from benchmarks.grpo_throughput import run_grpo

        def grpo_table(names: list[str], note: str) -> None:
            variant = names[-1] != B
            title = (f"#### {names[-1]}: {note}; against (a) of the table above" if variant else
                     f"### GRPO{' (QLoRA)' if args.qlora else ''}, {shape}, group {args.group}, {args.completion} "
                     f"completion tokens; kosov recipe {args.recipe}; {note}; {lora_text(args.peft)} ({size})")
            publish(names, title)

        run_grpo(args, tokenizer, device, rows, grpo_table)
    else:
        data, trl_batch, kosov_batch = plan_batches(args, tokenizer)
        if args.qlora:  # built and saved before (a), so that neither side's peak holds it
            saved_model(args.model, args.config, device)
        feed = (f"rows as they are: TRL {trl_batch} padded rows per step in one forward, kosov {kosov_batch} packed "
                f"block(s) per step" if args.data == "rows" else
                f"~{args.seq_len}-token conversations, batch {args.batch} per step for both (TRL's in one forward)")
        rows[A] = run_side(A, run_trl_sft, args, tokenizer, device, data, trl_batch)
        add_notes(A, rows[A], trl_batch)
        for name, overrides, attn in args.sides:
            rows[name] = run_side(name, run_kosov_sft, args, tokenizer, device, data, kosov_batch, overrides, attn,
                                  tolerate=True)
            add_notes(name, rows[name], trl_batch)
            if name == B:
                setup_text = rows[B].get("setup", f"{args.attn}; stopped before its setup was read")
                publish([A, B], f"### LoRA{' (QLoRA)' if args.qlora else ''} SFT, {shape}, {args.seq_len} tokens per "
                                f"sequence, {feed}; kosov recipe {args.recipe} ({setup_text}); "
                                f"{lora_text(args.peft)} ({size})")
            else:
                publish([A, name], f"#### {name}: the recipe with {' '.join(overrides)} "
                                   f"({rows[name].get('setup', attn)}); against (a) of the table above")
    if "failed" in rows.get(B, {}):  # measured what could be, then fail: the recipe itself is broken here
        print(f"error: {B} failed ({rows[B]['failed']}); the rows measured are published", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
