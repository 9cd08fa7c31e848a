#!/usr/bin/env bash
# Issue 15's GPU figures in one run, on a CUDA machine that can fetch nothing (the device tool).
#
#   bench/gpu_check.sh            # needs .whl/ (the pinned wheels it lacks) and .gpu/demo/ (the demo
#                                 # model's config and tokenizer); see bench/README.md
#
# Weights are random (bench/random_model.py): the machine takes 64 MiB of files, the demo model's
# weights are 269 MB, and speed, memory and FLOPs depend on the shape alone. Liger is installed
# apart (/tmp/liger) so that one run can leave it out and show what it is worth.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
if [ -z "${SKIP_INSTALL:-}" ]; then
  install() { "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade "$@" || exit 1; }
  install --target /tmp/site $(ls .whl/*.whl | grep -v liger_kernel)
  install --target /tmp/liger .whl/liger_kernel-*.whl
  export PYTHONPATH=/tmp/site
fi
WITH_LIGER="${PYTHONPATH:-}:/tmp/liger"
SMALL=${SMALL:-}  # SMALL=1: tiny shapes and few steps, to try the script on a CPU

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null
"$PY" -c "import torch, transformers, peft, trl, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, 'bitsandbytes', bitsandbytes.__version__, 'cuda', torch.cuda.is_available())"
PYTHONPATH=$WITH_LIGER "$PY" -c "import liger_kernel.transformers as l; print('liger-kernel importable')"

if [ -n "$SMALL" ]; then
  SHAPE="--hidden-size 64 --intermediate-size 128 --layers 2 --heads 4 --kv-heads 4"
  BIG="--hidden-size 128 --intermediate-size 256 --layers 2 --heads 4 --kv-heads 4"
  RUN="--conversations 8 --rounds 1 --epochs 1"
else
  SHAPE=""
  BIG="--hidden-size 2048 --intermediate-size 8192 --layers 24 --heads 32 --kv-heads 32"  # SmolLM2-1.7B
  RUN="--conversations 80 --rounds 2 --epochs 5"
fi
"$PY" bench/random_model.py --like .gpu/demo --out /tmp/demo $SHAPE || exit 1
"$PY" bench/random_model.py --like .gpu/demo --out /tmp/big $BIG || exit 1

step() { echo; echo "== $1"; }
step "1. throughput, demo model's shape (135M), Tunery's defaults with Liger installed, against the plain script"
PYTHONPATH=$WITH_LIGER timeout 240 "$PY" bench/throughput.py --model-dir /tmp/demo $RUN 2>&1 | tee "$OUT/throughput-demo.txt"
step "2. the same, Tunery alone without liger-kernel installed"
timeout 90 "$PY" bench/throughput.py --model-dir /tmp/demo $RUN --rounds 1 --arms tunery 2>&1 | tee "$OUT/throughput-demo-noliger.txt"
step "3. throughput, SmolLM2-1.7B's shape, both arms, one round"
PYTHONPATH=$WITH_LIGER timeout 200 "$PY" bench/throughput.py --model-dir /tmp/big $RUN --rounds 1 --epochs 2 2>&1 | tee "$OUT/throughput-big.txt"
step "4. the memory estimate against torch.cuda.max_memory_allocated (1.7B shape)"
PYTHONPATH=$WITH_LIGER timeout 120 "$PY" bench/estimate.py --model-dir /tmp/big --recipes lora,qlora,full 2>&1 | tee "$OUT/estimate.txt"
echo; echo "gpu_check done"
