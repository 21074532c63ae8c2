#!/usr/bin/env bash
# bf16 against fp32 DIET training on Fashion-MNIST: one DIET epoch on the first 10 000 training
# images from the Table 1 conversion, seeds 0 and 1, each precision; prints the test accuracy
# and the wall time of each run. Usage: bash benchmarks/precision_fp32_bf16.sh [CONVERTED.pt]
set -euo pipefail
cd "$(dirname "$0")/.."
converted=${1:-runs/table1/diet.converted.pt}
mkdir -p runs/precision
export OMP_WAIT_POLICY=PASSIVE
for seed in 0 1; do for p in fp32 bf16; do
  /usr/bin/time -f "$p seed $seed: %e s" .venv/bin/dietsnn-deploy train-snn "$converted" \
    -o "runs/precision/$p.s$seed.pt" --precision "$p" --seed "$seed" --train-limit 10000 \
    --snn-epochs 1 --threads 1 2>&1 | tr '\r' '\n' | grep -E "test accuracy|: [0-9.]+ s$"
done; done
