#!/usr/bin/env bash
# Everything issue 7 checks on the GPU machine, in one go: tests/gpu, then the ResNet-50 benchmark.
#   benchmarks/gpu_all.sh OUTDIR [gpu_resnet50.py options]
# Writes OUTDIR/env.txt, pytest.log, resnet50.log, resnet50/{results.json,table.md}, and
# OUTDIR/done (the exit codes) last. Models and engines go to a temporary folder, not OUTDIR.
set -uo pipefail
out=${1:?usage: benchmarks/gpu_all.sh OUTDIR [gpu_resnet50.py options]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
work=$(mktemp -d)
{
  date -u
  nvidia-smi
  python3 -c "import onnxruntime as o, torch; print('onnxruntime', o.__version__, o.get_available_providers()); print('torch', torch.__version__, torch.version.cuda)"
} >"$out/env.txt" 2>&1
python3 -m pytest -q -rs -p no:cacheprovider tests/gpu 2>&1 | tee "$out/pytest.log"
tests=${PIPESTATUS[0]}
python3 benchmarks/gpu_resnet50.py --out "$out/resnet50" --work "$work" "$@" 2>&1 | tee "$out/resnet50.log"
bench=${PIPESTATUS[0]}
rm -rf "$work"
echo "tests exit $tests, benchmark exit $bench" | tee "$out/done"
exit $((tests || bench))
