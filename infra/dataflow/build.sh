#!/usr/bin/env bash
# Build and push the worker/launcher image with Cloud Build, then the flex-template spec.
#   infra/dataflow/build.sh PROJECT REGION BUCKET [TAG]
# Versions of Beam and TensorFlow are read from requirements/constraints.txt (the project's pins);
# the template's parameters are the job's options (python -m pipelines.template: any Python 3.10+,
# nothing installed).
set -euo pipefail
PROJECT=$1 REGION=$2 BUCKET=$3 TAG=${4:-$(git describe --always --dirty)}
cd "$(dirname "$0")/../.."
# a line without an environment marker: the same version on every Python (requirements/lock.py)
pin() { sed -n "s/^$1==\([^;]*\)$/\1/p" requirements/constraints.txt; }
BEAM_VERSION=$(pin apache-beam)
TENSORFLOW_VERSION=$(pin tensorflow)
IMAGE="${REGION}-docker.pkg.dev/${PROJECT}/umx/worker:${TAG}"
[ -n "$BEAM_VERSION" ] && [ -n "$TENSORFLOW_VERSION" ] || { echo "pins not found" >&2; exit 2; }
cat > /tmp/umx-cloudbuild.yaml <<YAML
steps:
- name: gcr.io/cloud-builders/docker
  args: [build, -f, infra/dataflow/Dockerfile, -t, "${IMAGE}",
         --build-arg, "BEAM_VERSION=${BEAM_VERSION}", --build-arg, "TENSORFLOW_VERSION=${TENSORFLOW_VERSION}",
         --build-arg, "WORKER_IMAGE=${IMAGE}", .]
images: ["${IMAGE}"]
YAML
gcloud builds submit --project "$PROJECT" --region "$REGION" --config /tmp/umx-cloudbuild.yaml .
METADATA=$(mktemp --suffix=.json)
trap 'rm -f "$METADATA"' EXIT
"${PYTHON:-python3}" -m pipelines.template > "$METADATA"
gcloud dataflow flex-template build "gs://${BUCKET}/templates/umx-separate-catalog.json" \
  --project "$PROJECT" --image "$IMAGE" --sdk-language PYTHON --metadata-file "$METADATA"
echo "image ${IMAGE}; template gs://${BUCKET}/templates/umx-separate-catalog.json"
