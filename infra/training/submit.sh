#!/usr/bin/env bash
# Submit a Vertex AI training job (training.train on GPUs; data and run on gs://).
#   infra/training/submit.sh PROJECT REGION IMAGE ROOT OUTPUT [HOSTS] [GPUS_PER_HOST] [GPU] [PROFILE] [-- VERTEX_JOB_FLAGS...]
# e.g. one host with 4 L4:   submit.sh my-proj us-central1 $IMAGE gs://b/musdb gs://b/runs/5stems-001 1 4 l4
#      three hosts, 2 L4 each: submit.sh my-proj us-central1 $IMAGE gs://b/musdb gs://b/runs/5stems-002 3 2 l4
# IMAGE is the one infra/dataflow/build.sh pushes. Extra flags after -- go to vertex_job.py
# (--spot, --service-account SA, --batch-per-gpu N, --train-args "--epochs 400").
set -euo pipefail
POS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do POS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#POS[@]} -ge 5 ] || { sed -n '2,7p' "$0" >&2; exit 2; }
PROJECT=${POS[0]} REGION=${POS[1]} IMAGE=${POS[2]} ROOT=${POS[3]} OUTPUT=${POS[4]}
HOSTS=${POS[5]:-1} GPUS=${POS[6]:-1} GPU=${POS[7]:-l4} PROFILE=${POS[8]:-5stems}
cd "$(dirname "$0")/../.."
CONFIG=$(mktemp --suffix=.json)
python infra/training/vertex_job.py --image "$IMAGE" --root "$ROOT" --output "$OUTPUT" --hosts "$HOSTS" \
  --gpus "$GPUS" --gpu "$GPU" --profile "$PROFILE" "$@" > "$CONFIG"
gcloud ai custom-jobs create --project "$PROJECT" --region "$REGION" \
  --display-name "umx-train-$(basename "$OUTPUT")" --config "$CONFIG"
echo "job spec: $CONFIG; follow with: gcloud ai custom-jobs stream-logs JOB_ID --region $REGION"
