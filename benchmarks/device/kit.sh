#!/usr/bin/env bash
# Download, on a machine with PyPI, the wheels the GPU device machine lacks, into .whl/ (git-ignored through
# .git/info/exclude), for `bash benchmarks/device/run.sh STAGE` there (README.md beside this file).
#
#   bash benchmarks/device/kit.sh                              # Python 3.12 manylinux x86_64: the device image
#   KIT_PYTHON_VERSION=3.11 KIT_DEST=/tmp/kit311 bash benchmarks/device/kit.sh   # the same kit for a cp311 check
#
# The device image (/work/.library/device/KINDS.md: python3 3.12.3, torch 2.11.0+cu130) already holds
# accelerate 1.15.0, huggingface_hub 1.33.0, tokenizers 0.23.2, safetensors 0.8.0, numpy, pyarrow, pandas,
# psutil, jinja2, pyyaml, regex, typer, tqdm, rich, xxhash, sympy, triton, tensorboard: kosov's pins accept
# those, so they stay out. Carried: what the image lacks, or has too old for kosov's pins. Left out on purpose:
#   wandb (~20 MB plus opentelemetry/pydantic): training.tracking imports it only for tracking=wandb
#     -> GPU runs use tracking=none (tests/conftest.py's smoke_run fixture uses tracking=wandb: not on the GPU)
#   kiwipiepy (+ its model): training.rewards imports it only for repetition_penalty unit=morpheme (default char)
#   lm_eval, fastapi/uvicorn, datasketch, matplotlib-only paths: evaluation, serve, dedup, reports (not run here)
#   flash-attn, vllm: hundreds of MB, over the 64 MiB a device call carries: SDPA and transformers' generation
#     are used instead (training.models.attention_for / method.grpo.generation=auto pick them by themselves)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PYVER="${KIT_PYTHON_VERSION:-3.12}"
DEST="${KIT_DEST:-.whl}"
LIMIT_MIB="${KIT_LIMIT_MIB:-60}"        # a device call carries 64 MiB with the working tree (~3 MiB)
BNB_KEEP="${KIT_BNB_KEEP-cpu cuda130}" # bitsandbytes libraries kept: the image's torch is cu130 ("" keeps all)
PIP=(${KIT_PIP:-python3 -m pip})

# name==version: kosov's pins (requirements/cpu.txt) where it has one, else the newest checked here (2026-11).
PACKAGES=(
  transformers==5.24.0             # image has 5.17.0; kosov needs >=5.24 (needs hub>=1.31, tokenizers>=0.23.1: image ok)
  trl==1.16.0                      # missing
  peft==0.21.2                     # image version unknown; kosov needs >=0.21
  datasets==5.2.0                  # missing
  dill==0.4.1                      # datasets: dill<0.4.2; missing
  multiprocess==0.70.19            # datasets: multiprocess<0.70.20; missing
  fsspec==2026.9.0                 # datasets: fsspec<=2026.9.0; the image's may be newer
  hydra-core==1.3.8                # missing (training.recipes)
  omegaconf==2.3.1                 # missing (training.config)
  math-verify==0.9.0               # missing (GRPO math_accuracy reward: data_tools.math_grader)
  latex2sympy2_extended==1.11.0    # math-verify==0.9.0 pins it; sympy is on the image
  bitsandbytes==0.50.2             # kosov[gpu]: QLoRA
  liger-kernel==0.8.5              # kosov[gpu]: method.kernels=auto (needs torch, triton: on the image)
)
# antlr4-python3-runtime 4.9.3 (omegaconf/hydra pin 4.9.*) exists only as an sdist: built into a wheel below.
SDIST_PACKAGES=(antlr4-python3-runtime==4.9.3)

mkdir -p "$DEST"
rm -f "$DEST"/*.whl  # one version of each: two stop the whole install there
if [ "$DEST" = .whl ] && [ -d .git ] && ! grep -qx '/.whl/' .git/info/exclude 2>/dev/null; then
  mkdir -p .git/info && echo '/.whl/' >> .git/info/exclude
fi

PLATFORMS=()
for n in 2_28 2_27 2_24 2_17; do PLATFORMS+=(--platform "manylinux_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)

echo "kit: Python $PYVER manylinux x86_64 wheels into $DEST"
quiet() { "$@" 2> >(grep -v '^WARNING: Location' >&2); }  # this machine's pip lists local indexes per package
quiet "${PIP[@]}" download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${PACKAGES[@]}"
quiet "${PIP[@]}" wheel -q --no-deps -w "$DEST" "${SDIST_PACKAGES[@]}"

# bitsandbytes ships one ~20 MB library per CUDA/ROCm/XPU release (43 MB wheel): keep the image's only.
if [ -n "$BNB_KEEP" ]; then
  python3 - "$DEST" $BNB_KEEP <<'EOF'
import pathlib, sys, zipfile
dest, keep = pathlib.Path(sys.argv[1]), {f"libbitsandbytes_{k}.so" for k in sys.argv[2:]}
for wheel in dest.glob("bitsandbytes-*.whl"):
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as out:
        dropped = {i.filename for i in src.infolist()
                   if i.filename.rsplit("/", 1)[-1].startswith("libbitsandbytes_")
                   and i.filename.rsplit("/", 1)[-1] not in keep}
        for info in src.infolist():
            if info.filename in dropped:
                continue
            data = src.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(keepends=True)
                                if line.split(b",", 1)[0].decode() not in dropped)
            out.writestr(info, data)
    slim.replace(wheel)
    print(f"kit: {wheel.name}: kept {sorted(keep)}, dropped {len(dropped)} other libraries")
EOF
fi

# Each wheel's needs, for a reviewer: every name must be carried here or be on the image.
if [ "${KIT_SHOW_DEPS:-0}" = 1 ]; then
  for w in "$DEST"/*.whl; do
    echo "== $(basename "$w")"; unzip -p "$w" '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' || true
  done
fi

echo "kit: wheels"
ls -l "$DEST"/*.whl | awk '{printf "  %8.2f MiB  %s\n", $5 / 1048576, $NF}'
total=$(cat "$DEST"/*.whl | wc -c)
python3 -c "print(f'kit: total {$total / 2**20:.2f} MiB in $(ls "$DEST"/*.whl | wc -l) wheels (limit $LIMIT_MIB MiB)')"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "kit: over $LIMIT_MIB MiB: a device call carries 64 MiB together with the working tree" >&2
  exit 1
fi
