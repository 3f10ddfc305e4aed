#!/usr/bin/env bash
# Launch the catalog flex template once.
#   infra/dataflow/run.sh PROJECT REGION BUCKET GPU INPUT [MODEL] [MAX_WORKERS]
# GPU: t4 (n1-standard-8 + one T4), l4 (g2-standard-8 and its L4) or cpu (n2d-standard-2: 2 AMD EPYC vCPUs, as the benchmark machine).
# One SDK process per worker VM (no_use_multiple_sdk_containers): TensorFlow takes the whole
# GPU in one process and uses the CPU cores for decoding and the LSTM's host work; several
# processes would each load the model and compete for GPU memory (MPS would be needed for that).
# INPUT may hold several comma-separated globs: the parameters are split on ~ (gcloud's ^~^).
# More template parameters: UMX_PARAMETERS='batch_frames=4800~batch_seconds=1800' run.sh ...
# The workers run the template's own image (launcher.py passes it as --sdk_container_image).
set -euo pipefail
PROJECT=$1 REGION=$2 BUCKET=$3 GPU=$4 INPUT=$5 MODEL=${6:-umxhq} MAX_WORKERS=${7:-10}
case "$GPU" in
  t4) MACHINE=n1-standard-8; ACCELERATOR="type:nvidia-tesla-t4;count:1;install-nvidia-driver" ;;
  l4) MACHINE=g2-standard-8; ACCELERATOR="type:nvidia-l4;count:1;install-nvidia-driver" ;;
  cpu) MACHINE=n2d-standard-2; ACCELERATOR="" ;;
  *) echo "GPU must be t4, l4 or cpu, got $GPU" >&2; exit 2 ;;
esac
# GPU workers: one SDK process and the accelerator; CPU workers: Dataflow's default of one
# process per vCPU (docs/benchmarks.md, "The catalog job")
WORKER_FLAGS=()
if [ -n "$ACCELERATOR" ]; then
  WORKER_FLAGS=(--additional-experiments no_use_multiple_sdk_containers
                --additional-pipeline-options "dataflow_service_options=worker_accelerator=${ACCELERATOR}")
fi
gcloud dataflow flex-template run "umx-separate-catalog-$(date -u +%Y%m%d-%H%M%S)" \
  --project "$PROJECT" --region "$REGION" \
  --template-file-gcs-location "gs://${BUCKET}/templates/umx-separate-catalog.json" \
  --worker-machine-type "$MACHINE" --max-workers "$MAX_WORKERS" \
  "${WORKER_FLAGS[@]}" \
  --additional-user-labels app=umx \
  --parameters "^~^input=${INPUT}~output=gs://${BUCKET}/stems~model=${MODEL}~codec=flac${UMX_PARAMETERS:+~$UMX_PARAMETERS}" \
  --temp-location "gs://${BUCKET}/tmp"
