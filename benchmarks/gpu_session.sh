#!/usr/bin/env bash
# One call on the GPU machine, at most 9 minutes: everything the README quotes from the GPU.
#   1. python3 -m pytest -q -rs tests/gpu                       -> pytest.log
#   2. benchmarks/gpu_resnet50.py --skip-compile (issue 7's FP16 goals) -> resnet50.log, resnet50/
#   3. benchmarks/gpu_int8_why.py (ResNet-50 fp32/fp16/int8 through deploy --device cuda: the table,
#      why INT8 lost, ONNX Runtime's plugin-EP line on stderr or not)  -> int8_why.log, int8_why/
# Logs go under $OUT (or the folder given as $1): env.txt first, done (exit codes, seconds) last.
#
# onnxruntime-gpu is staged as ../shared/device/README.md says (shared/device/stage-wheels.sh, one run
# per part). If /tmp/site has no onnxruntime yet and /tmp/gpu holds the parts, this installs them with
# that README's install line; then it puts /tmp/site and the CUDA 13 libraries of the image's nvidia-*
# packages on the paths. Each step gets what is left of the 9 minutes, capped, and is cut off by timeout.
set -uo pipefail
out=${1:-${OUT:?set OUT or give an output folder}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
start=$(date +%s)
deadline=$((start + 525)) # 8 min 45 s: the steps, leaving the 9 minutes' rest for start-up and copies

if ! [ -d /tmp/site/onnxruntime ] && ls /tmp/gpu/part.* >/dev/null 2>&1; then
  (cd /tmp/gpu && cat part.* | tar -x && python3 -m pip install -q --no-index --no-deps --no-compile \
    --target /tmp/site ./*.whl) >"$out/install.log" 2>&1
fi
export PYTHONPATH=$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
cuda_libs=$(python3 -c "import nvidia,os;print(':'.join(os.path.join(p,'cu13','lib') for p in nvidia.__path__))" 2>/dev/null)
export LD_LIBRARY_PATH=${cuda_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

{
  date -u
  git log -1 --oneline 2>/dev/null || true
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
  python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
} >"$out/env.txt" 2>&1

# step NAME CAP_SECONDS COMMAND...: run with the time left (at most CAP), log to NAME.log, record the exit code
codes=""
step() {
  local name=$1 cap=$2
  shift 2
  local left=$((deadline - $(date +%s)))
  local limit=$((left < cap ? left : cap))
  if [ "$limit" -lt 20 ]; then
    echo "skipped: $limit s left" >"$out/$name.log"
    codes="$codes $name=skipped"
    return
  fi
  local t0
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  codes="$codes $name=$rc($(($(date +%s) - t0))s)"
  tail -n 25 "$out/$name.log"
}

step pytest 210 python3 -m pytest -q -rs -p no:cacheprovider tests/gpu
step resnet50 180 python3 benchmarks/gpu_resnet50.py --out "$out/resnet50" --work "$work/resnet50" --skip-compile
step int8_why 200 python3 benchmarks/gpu_int8_why.py --out "$out/int8_why" --work "$work/int8" --duration 1
echo "exit codes:$codes; total $(($(date +%s) - start)) s (124 = cut off by the time limit)" | tee "$out/done"
