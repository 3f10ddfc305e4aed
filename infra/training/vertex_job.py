"""A Vertex AI custom job that runs `python -m training.train` on GPUs, data and run on gs://.

    python infra/training/vertex_job.py --image IMAGE --root gs://b/data --output gs://b/runs/x \
        --hosts 1 --gpus 4 --gpu l4 > job.json
    gcloud ai custom-jobs create --region REGION --display-name umx-train --config job.json

(`submit.sh` does both.) The spec is a CustomJobSpec (JSON, which `--config` reads as YAML).

- One host (`--hosts 1`): one worker pool; `training.train` mirrors over the host's GPUs
  (MirroredStrategy).
- Several hosts: pool 0 is the chief (one replica), pool 1 the other hosts, with the same
  machine and arguments. Vertex AI sets TF_CONFIG on each (`chief`, `worker` 0..n-2) and
  `training.train` then uses MultiWorkerMirroredStrategy; the chief writes the run.
- The image is the Dataflow worker image (infra/dataflow: TensorFlow with CUDA and this project),
  its entry point replaced by the training command.
- `--batch-size` is global: `--batch-per-gpu` x every GPU of every host (open-unmix trains with 16
  on one GPU; the learning rate is the profile's unless `--lr` is passed through).
- `--auto-resume` and `restartJobOnWorkerRestart`: when Vertex restarts the job (a host failed or
  was preempted) every host continues from the last checkpoint in the output.
"""

import argparse
import json
import shlex
import sys

# GPU kind -> (Vertex accelerator type, {GPUs per host: machine type})
MACHINES = {
    "t4": ("NVIDIA_TESLA_T4", {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"}),
    "l4": ("NVIDIA_L4", {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"}),
    "a100": ("NVIDIA_TESLA_A100", {1: "a2-highgpu-1g", 2: "a2-highgpu-2g", 4: "a2-highgpu-4g", 8: "a2-highgpu-8g"}),
}
WORKDIR = "/tmp/umx-train"


def job_spec(image, root, output, hosts=1, gpus=1, gpu="l4", profile="5stems", batch_per_gpu=16, extra_args=(),
             service_account=None, spot=False):
    """The CustomJobSpec (a dict) of a training run; ValueError on an impossible request."""
    if gpu not in MACHINES:
        raise ValueError(f"gpu must be one of {', '.join(MACHINES)}, got {gpu!r}")
    accelerator, machines = MACHINES[gpu]
    if gpus not in machines:
        raise ValueError(f"{gpu}: {gpus} GPUs per host is not a machine type; choose {sorted(machines)}")
    if hosts < 1 or batch_per_gpu < 1:
        raise ValueError("hosts and batch_per_gpu must be at least 1")
    for name, path in (("root", root), ("output", output)):
        if not path.startswith("gs://"):
            raise ValueError(f"{name} must be on gs:// (every host reads and the chief writes there), got {path!r}")
    args = ["--profile", profile, "--root", root, "--output", output, "--workdir", WORKDIR, "--auto-resume",
            "--batch-size", str(batch_per_gpu * gpus * hosts), *extra_args]
    pool = {
        "machineSpec": {"machineType": machines[gpus], "acceleratorType": accelerator, "acceleratorCount": gpus},
        "replicaCount": 1,
        "diskSpec": {"bootDiskType": "pd-ssd", "bootDiskSizeGb": 100},
        "containerSpec": {"imageUri": image, "command": ["python", "-m", "training.train"], "args": args,
                          "env": [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}]},
    }
    pools = [pool] if hosts == 1 else [pool, {**pool, "replicaCount": hosts - 1}]
    spec = {"workerPoolSpecs": pools,
            "scheduling": {"restartJobOnWorkerRestart": True, **({"strategy": "SPOT"} if spot else {})}}
    if service_account:
        spec["serviceAccount"] = service_account
    return spec


def vertex_tf_config(spec, pool, index, ports):
    """The TF_CONFIG Vertex AI sets on replica `index` of worker pool `pool` (pool 0: `chief`,
    pool 1: `worker`), with loopback addresses on `ports` (one per replica, pools in order)
    instead of the job's host names: to run a spec's hosts as local processes."""
    kinds = ("chief", "worker")
    ports = iter(ports)
    cluster = {kind: [f"127.0.0.1:{next(ports)}" for _ in range(p["replicaCount"])]
               for kind, p in zip(kinds, spec["workerPoolSpecs"])}
    return {"cluster": cluster, "task": {"type": kinds[pool], "index": index}}


def main(argv=None):
    """Print the job spec as JSON; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python infra/training/vertex_job.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="the worker image built by infra/dataflow/build.sh")
    parser.add_argument("--root", required=True, help="dataset root, gs://")
    parser.add_argument("--output", required=True, help="run folder, gs://")
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--gpus", type=int, default=1, help="GPUs per host")
    parser.add_argument("--gpu", default="l4", choices=sorted(MACHINES))
    parser.add_argument("--profile", default="5stems")
    parser.add_argument("--batch-per-gpu", type=int, default=16)
    parser.add_argument("--service-account")
    parser.add_argument("--spot", action="store_true", help="Spot VMs (cheaper, preemptible; the job resumes)")
    parser.add_argument("--train-args", default="", help="more training.train flags, one shell-quoted string")
    args = parser.parse_args(argv)
    try:
        spec = job_spec(args.image, args.root, args.output, args.hosts, args.gpus, args.gpu, args.profile,
                        args.batch_per_gpu, shlex.split(args.train_args), args.service_account, args.spot)
    except ValueError as exc:
        print(f"vertex_job: error: {exc}", file=sys.stderr)
        return 2
    json.dump(spec, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
