#!/usr/bin/env bash
# Run on the GPU device machine, from the repo root, in one device `run` call (README.md beside this file):
#
#   RUN_BUDGET_S=<seconds> bash benchmarks/device/run.sh STAGE [STAGE ...]   with carry [".whl"] (made by kit.sh)
#
# Stages: check (imports, bitsandbytes 4-bit and Liger on the GPU: seconds), grpo (GRPO throughput, Qwen3-1.7B
# shape, group 8, 256 completion tokens, with the GRPO_VARIANTS rows), sft (LoRA SFT throughput, Qwen3-8B shape, 4096
# tokens, with the SFT_VARIANTS rows), sft-b4 (the same at --batch 4: where the memory target can be judged),
# tests (pytest tests/gpu), qlora (the SFT through bitsandbytes NF4); all = check sft-b4 grpo tests qlora sft:
# what is least measured first (benchmarks/RESULTS.md's "Next GPU session": sft-b4's FlexAttention row, GRPO with
# CUDA graphs by default, the GPU tests of both; qlora's target is met, sft measured), with what time is left. At
# 570 s call 1 fits check, sft-b4 and grpo; a second call at once, with what is left, runs the tests (those of
# tests/gpu/test_gpu_training.py first: FlexAttention's evaluation and generation is the question). Not in all:
# sft-merged (sft with --data merged). Each benchmark writes its (a, b) table as soon as (b) is measured and each
# variant's table after it, so a stage stopped at its limit keeps what it finished.
# A session gets 15 minutes of device time in all, so the whole call keeps inside RUN_BUDGET_S seconds (default
# 570: the device allows 600 s a command). Give it what the session has left: the last reply's
# lease.budget_left_s minus ~40 s (transfers: ~30 s on the first GPU run; a fresh machine's start costs more), and
# the call a timeout_s 20 s above it.
# Each stage gets at most its own limit (T_CHECK, T_SFT, T_GRPO, T_QLORA, T_TESTS) and what is left (less what the
# next stage needs, while this one still fits beside it), and is
# skipped, saying so, when less is left than it needs to finish at all (NEEDS below), and so is every stage after
# it, even one small enough for what is left: call 2 then gets the skipped stages in their order (qlora must not
# spend the time call 2 needs for the tests). A failed check skips the
# rest (they would fail the same way; CONTINUE_AFTER_CHECK=1 runs them anyway). Extra arguments per stage, after
# its defaults (a repeated option wins): SFT_ARGS (all three sft stages), QLORA_ARGS, GRPO_ARGS, TESTS_ARGS, e.g.
#   GRPO_ARGS="--steps 8 --warmup 2" bash benchmarks/device/run.sh grpo
#
# Result tables accumulate in /tmp/kosov-results.md on the machine (kept while it stays warm; a fresh machine
# starts an empty one). Each finished stage copies them to $OUT/RESULTS.gpu.md at once, with env.log (versions,
# and each stage's exit status and seconds); each stage logs straight into $OUT/<stage>.log. So a call killed at
# its limit (rc 137) still brings back every table finished before. Files back: at most 8 (6 stages a call).
# KOSOV_SITE, KIT_DIR, KOSOV_LOGS, KOSOV_RESULTS and KOSOV_TMP (default /tmp/site, .whl, /tmp/kosov-logs,
# /tmp/kosov-results.md, /tmp/kosov-tmp) exist for a dry run on another machine
# (tests/test_benchmark_device_script.py runs one, with a fake python3).
set -uo pipefail

START=$SECONDS
BUDGET=${RUN_BUDGET_S:-570}
[[ $BUDGET =~ ^[0-9]+$ ]] || { echo "RUN_BUDGET_S=$BUDGET is not a number of seconds" >&2; exit 2; }
if [ "$BUDGET" -gt 570 ]; then
  echo "RUN_BUDGET_S=$BUDGET: the device runs a command 600 s at most; keeping to 570" >&2
  BUDGET=570
fi
OUT=${OUT:-/tmp/kosov-out}
LOGS=${KOSOV_LOGS:-/tmp/kosov-logs}
RESULTS=${KOSOV_RESULTS:-/tmp/kosov-results.md}
TMPS=${KOSOV_TMP:-/tmp/kosov-tmp}
SITE=${KOSOV_SITE:-/tmp/site}   # the device README's --target; these four are overridable for a dry run elsewhere
KIT=${KIT_DIR:-.whl}
mkdir -p "$OUT" "$LOGS"
touch "$RESULTS"

[ $# -ge 1 ] || { echo "usage: bash benchmarks/device/run.sh check|sft|grpo|qlora|tests|all|sft-b4|sft-merged ..." >&2; exit 2; }
STAGES=()
for s in "$@"; do
  case $s in
    all) STAGES+=(check sft-b4 grpo tests qlora sft) ;;
    check|tests|sft|qlora|grpo|sft-b4|sft-merged) STAGES+=("$s") ;;
    *) echo "unknown stage: $s (check, sft, grpo, qlora, tests, all, sft-b4, sft-merged)" >&2; exit 2 ;;
  esac
done

bring_back() {  # the results (all of this machine's) and env.log, into $OUT now: a later SIGKILL loses neither
  cp -f "$RESULTS" "$OUT/RESULTS.gpu.md" 2>/dev/null
  cp -f "$LOGS/env.log" "$OUT"/ 2>/dev/null
  true
}
trap bring_back EXIT

# The wheels of kit.sh, into /tmp/site once per machine (again only when the kit changed).
if compgen -G "$KIT/*.whl" >/dev/null; then
  stamp=$(for f in "$KIT"/*.whl; do echo "$(basename "$f") $(stat -c %s "$f")"; done | md5sum | cut -d' ' -f1)
  if [ "$(cat "$SITE/.kit-stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$SITE"
    echo "installing $(ls "$KIT"/*.whl | wc -l) wheels from $KIT into $SITE"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$KIT"/*.whl \
      || { echo "wheel install failed" >&2; exit 3; }
    echo "$stamp" > "$SITE/.kit-stamp"
  fi
elif [ ! -f "$SITE/.kit-stamp" ]; then
  echo "no wheels: run benchmarks/device/kit.sh on the CPU machine and name .whl in carry" >&2
  exit 3
fi

export KOSOV_SITE="$SITE" PYTHONPATH="$SITE:$PWD" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 \
  KOSOV_CACHE=/tmp/kosov-cache TOKENIZERS_PARALLELISM=false HF_HUB_DISABLE_TELEMETRY=1 WANDB_MODE=disabled \
  TORCHINDUCTOR_CACHE_DIR=/tmp/kosov-inductor  # compiled kernels outlive a stage's TMPDIR: FlexAttention compiles once

{
  echo "=== $(date -u +%FT%TZ) stages: ${STAGES[*]}"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  df -h /tmp | tail -1
  python3 - <<'EOF'
import importlib, os, sys
from importlib import metadata
print("python", sys.version.split()[0], sys.executable)
DIST = {"liger_kernel": "liger-kernel", "math_verify": "math-verify", "hydra": "hydra-core"}
for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "huggingface_hub", "tokenizers",
             "safetensors", "bitsandbytes", "liger_kernel", "triton", "hydra", "omegaconf", "math_verify", "numpy",
             "pyarrow", "pandas", "fsspec", "regex", "flash_attn", "vllm"):
    try:
        m = importlib.import_module(name)
        where = "kit" if m.__file__ and m.__file__.startswith(os.environ["KOSOV_SITE"] + "/") else "image"
        version = getattr(m, "__version__", None) or metadata.version(DIST.get(name, name))
        print(f"  {name:16} {version:22} {where}")
    except Exception as e:  # missing (flash_attn, vllm) or broken
        print(f"  {name:16} -- {type(e).__name__}: {str(e)[:120]}")
import torch
print("torch cuda", torch.version.cuda, "| device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
EOF
} 2>&1 | tee -a "$LOGS/env.log"
bring_back

CHECK_PY=$(cat <<'EOF'
import torch
import training.cli, training.grpo, training.rewards, training.train  # noqa: F401  the GPU runs' imports
from data_tools.math_grader import is_correct
from training.models import attention_for, liger_for
from training.schema import ModelConfig

assert torch.cuda.is_available(), "PyTorch sees no GPU"
assert is_correct("정답: 42", "42"), "math-verify grading"
print("attention (auto):", attention_for(ModelConfig(attn_implementation="auto"), "cuda"),
      "| liger (auto):", liger_for("auto", "cuda"))
import bitsandbytes.functional as F
x = torch.randn(256, 256, device="cuda", dtype=torch.bfloat16)
q, state = F.quantize_4bit(x, quant_type="nf4")
err = (F.dequantize_4bit(q, state) - x).abs().mean().item()
print(f"bitsandbytes NF4 round trip on the GPU: mean error {err:.3f}")
assert err < 0.2
from liger_kernel.transformers import LigerRMSNorm
norm = LigerRMSNorm(256).to("cuda", torch.bfloat16)
print("liger RMSNorm on the GPU:", tuple(norm(x).shape))
print("check: ok")
EOF
)

# Seconds a stage needs to finish at all (skipped below that) and its default limit: from the GPU runs (NVIDIA
# H200, 2026-11-26: check 21 s, sft 75 s for two rows, qlora 96 s, tests 100 s; NVIDIA H100, 2026-11-26: check
# 18 s, grpo 317 s for four rows, sft 125 s for four, sft-b4 126 s for two, tests 158 s) plus the variants' rows
# (grpo: three rows now, TRL's ~100 s, the recipe's with CUDA graphs ~50 s, 128-completion rounds with them ~80 s);
# tests 260 s: the FlexAttention test of evaluation and generation compiles several kernels (training, evaluation,
# decoding) on top of the 158 s the suite took.
declare -A NEEDS=([check]=45 [sft]=120 [sft-b4]=190 [sft-merged]=120 [grpo]=240 [qlora]=120 [tests]=260)

FAILED_CHECK=0
SKIPPED_FOR_TIME=  # the first stage skipped for lack of time: every stage after it is skipped too
run_stage() {
  local stage=$1 cap=$2 left
  left=$((BUDGET - (SECONDS - START) - 20))  # 20 s: timeout's 15 s grace before its kill, and the copies
  if [ "$FAILED_CHECK" = 1 ] && [ "${CONTINUE_AFTER_CHECK:-0}" != 1 ]; then
    echo "=== $stage: skipped, check failed (read check.log; CONTINUE_AFTER_CHECK=1 runs it anyway)" \
      | tee -a "$LOGS/env.log"
    return
  fi
  if [ -n "$SKIPPED_FOR_TIME" ]; then
    echo "=== $stage: skipped, $SKIPPED_FOR_TIME before it was skipped for time (${left}s left): run them in" \
      "their order in a call of their own" | tee -a "$LOGS/env.log"
    return
  fi
  if [ "$left" -lt "${NEEDS[$stage]}" ]; then
    echo "=== $stage: skipped, ${left}s left of the ${BUDGET}s budget (it needs ${NEEDS[$stage]}s): run it in" \
      "a call of its own" | tee -a "$LOGS/env.log"
    SKIPPED_FOR_TIME=$stage
    return
  fi
  # The next stage's time is kept back while this one still fits beside it: a slow row here must not skip a
  # target row there
  local reserve=$((${NEEDS[${NEXT:-none}]:-0} + 20))  # + the 20 s its own `left` keeps back
  [ $((left - reserve)) -lt "${NEEDS[$stage]}" ] && reserve=0
  [ "$cap" -gt $((left - reserve)) ] && cap=$((left - reserve))
  shift 2
  local tmp=$TMPS/$stage t0=$SECONDS rc cmd="$*" log="$OUT/$stage.log"
  rm -rf "$tmp" && mkdir -p "$tmp"
  cmd=${cmd//$'\n'/ }
  echo "=== $stage (limit ${cap}s): ${cmd:0:240}" | tee "$log"
  # TMPDIR per stage, emptied afterwards: the QLoRA benchmark saves a 16 GB random model there.
  TMPDIR=$tmp timeout -k 15 "$cap" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  rm -rf "$tmp"
  printf '\n=== %s: rc=%s%s in %ss\n' "$stage" "$rc" "$([ "$rc" = 124 ] || [ "$rc" = 137 ] && echo ' (timed out)')" $((SECONDS - t0)) \
    | tee -a "$log" "$LOGS/env.log"
  [ "$stage" = check ] && [ "$rc" != 0 ] && FAILED_CHECK=1
  bring_back  # this stage's table (if it wrote one) and env.log are in $OUT before the next stage starts
}

BENCH=(python3 benchmarks/train_throughput.py --results "$RESULTS")
# Candidate settings measured beside the recipe, against the same baseline (rows c, d: benchmarks/RESULTS.md says
# why these); SFT_VARIANTS= / SFT_B4_VARIANTS= / GRPO_VARIANTS= (empty) drops them.
SFT_VARIANTS=${SFT_VARIANTS---variant flex model.attn_implementation=flex_attention}
SFT_B4_VARIANTS=${SFT_B4_VARIANTS---variant flex model.attn_implementation=flex_attention}
GRPO_VARIANTS=${GRPO_VARIANTS---variant gen128 method.grpo.optimizer_steps_per_generation=4}
# The GPU tests, the training ones first (FlexAttention's evaluation and generation: the question of the next
# session), then GRPO's; pytest keeps the files in the order given. Any other test file of tests/gpu comes after.
GPU_TESTS=(tests/gpu/test_gpu_training.py tests/gpu/test_gpu_grpo.py)
for f in tests/gpu/test_*.py; do
  [[ " ${GPU_TESTS[*]} " == *" $f "* ]] || GPU_TESTS+=("$f")
done
set -f  # the variants and *_ARGS are split into words unquoted: no glob may expand in them (rewards=[a] is one)
for i in "${!STAGES[@]}"; do
  stage=${STAGES[$i]} NEXT=${STAGES[$((i + 1))]:-}
  case $stage in
    check) run_stage check "${T_CHECK:-90}" python3 -c "$CHECK_PY" ;;
    sft)   run_stage sft "${T_SFT:-240}" "${BENCH[@]}" --model qwen3-8b --seq-len 4096 --steps 10 --warmup 3 \
             $SFT_VARIANTS ${SFT_ARGS:-} ;;
    sft-b4) run_stage sft-b4 "${T_SFT:-270}" "${BENCH[@]}" --model qwen3-8b --seq-len 4096 --batch 4 --steps 6 \
             --warmup 2 $SFT_B4_VARIANTS ${SFT_ARGS:-} ;;
    sft-merged) run_stage sft-merged "${T_SFT:-240}" "${BENCH[@]}" --model qwen3-8b --seq-len 4096 --data merged \
             --steps 10 --warmup 3 ${SFT_ARGS:-} ;;
    grpo)  run_stage grpo "${T_GRPO:-360}" "${BENCH[@]}" --grpo --model qwen3-1.7b --group 8 --completion 256 \
             --steps 2 --warmup 1 $GRPO_VARIANTS ${GRPO_ARGS:-} ;;
    qlora) run_stage qlora "${T_QLORA:-300}" "${BENCH[@]}" --model qwen3-8b --seq-len 4096 --qlora --steps 10 \
             --warmup 3 ${QLORA_ARGS:-} ;;
    tests) run_stage tests "${T_TESTS:-300}" python3 -m pytest "${GPU_TESTS[@]}" -q -rs -p no:cacheprovider \
             ${TESTS_ARGS:-} ;;
  esac
done
echo "=== results on this machine ($RESULTS):"
cat "$RESULTS"
