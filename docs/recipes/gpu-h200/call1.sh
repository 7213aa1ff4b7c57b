#!/usr/bin/env bash
# One device call: set up, the GPU check (budget run of the gpu recipe, then torchrun + bf16 + compile), and
# everything worth keeping under $OUT (at most 8 files).
set -uo pipefail
export PYTHONUNBUFFERED=1
T0=$(date +%s)
stamp() { echo "[device +$(( $(date +%s) - T0 ))s] $*"; }
MINUTES=${MINUTES:-3}
stamp start; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nproc; free -g | head -2
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || { echo "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PATH=$PWD/.gpu/bin:$PATH
python3 -c "import torch, dvclive, pesq, pystoi, soxr, soundfile, constriction, sklearn, pyarrow; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), 'pyarrow', pyarrow.__version__, 'sklearn', sklearn.__version__)" || exit 1
opusenc --version | head -1
stamp "setup done"
timeout ${CHECK_TIMEOUT:-480} benchmarks/gpu_check.sh --corpus .gpu/corpus/chai-bisket-te --format ulca --minutes "$MINUTES" \
  --work /tmp/gc --dnsmos-utterances 0 --paths-timeout ${PATHS_TIMEOUT:-150}
rc=$?
stamp "gpu_check exit $rc"
W=/tmp/gc/${MINUTES}min/gpu
if [[ -f $W/codec.safetensors ]]; then
  python3 -c "import yaml,sys; d=yaml.safe_load(open('$W/params.yaml')); d['export']['dtype']='float16'; yaml.safe_dump(d, open('/tmp/export.yaml','w'))" \
  && python3 -m pipeline.export --model $W/codec.safetensors --out /tmp/gpu-export.safetensors --metrics /tmp/gc/export.json --params /tmp/export.yaml \
  && split -b 15M -d /tmp/gpu-export.safetensors $OUT/gpu-export.safetensors.part
fi
tar czf $OUT/gc.tar.gz -C /tmp --exclude='*.safetensors' --exclude='*.pt' --exclude=shards --exclude='*.wav' --exclude='*.parquet' gc 2>/dev/null
ls -la $OUT; stamp end
exit $rc
