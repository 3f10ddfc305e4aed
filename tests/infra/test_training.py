"""The Vertex AI training job: its spec against training.train's command line, and the
multi-host spec run as Vertex AI runs it (TF_CONFIG per pool), on loopback CPUs."""

import json
import os
import subprocess
import sys

import pytest

from tests.infra.conftest import load_module
from training.synthesize import synthesize
from training.train import parse_args
from umx_core import storage

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAINING = os.path.join(REPO, "infra", "training")
IMAGE = "us-central1-docker.pkg.dev/p/umx/worker:abc"


def vertex_job():
    return load_module(os.path.join(TRAINING, "vertex_job.py"))


@pytest.mark.parametrize("hosts,gpus,gpu,machine", [(1, 4, "l4", "g2-standard-48"), (3, 2, "t4", "n1-standard-16"),
                                                    (2, 8, "a100", "a2-highgpu-8g")])
def test_spec_runs_training_with_valid_flags_on_every_host(hosts, gpus, gpu, machine):
    spec = vertex_job().job_spec(IMAGE, "gs://b/musdb", "gs://b/runs/x", hosts, gpus, gpu, extra_args=["--epochs", "9"])
    pools = spec["workerPoolSpecs"]
    assert [p["replicaCount"] for p in pools] == ([1] if hosts == 1 else [1, hosts - 1])
    assert spec["scheduling"]["restartJobOnWorkerRestart"] is True
    for pool in pools:
        assert pool["machineSpec"]["machineType"] == machine and pool["machineSpec"]["acceleratorCount"] == gpus
        container = pool["containerSpec"]
        assert container["imageUri"] == IMAGE and container["command"] == ["python", "-m", "training.train"]
        args = parse_args(container["args"])  # exits on a flag training.train does not know
        assert (args.root, args.output, args.profile, args.epochs) == ("gs://b/musdb", "gs://b/runs/x", "5stems", 9)
        assert args.auto_resume and args.workdir.startswith("/tmp/")
        assert args.batch_size == 16 * gpus * hosts and args.batch_size % (gpus * hosts) == 0
    assert pools[0]["containerSpec"]["args"] == pools[-1]["containerSpec"]["args"]


@pytest.mark.parametrize("kwargs,message", [(dict(gpu="v100"), "gpu must be"), (dict(gpus=3), "3 GPUs per host"),
                                            (dict(output="/local/run"), "output must be on gs://"),
                                            (dict(root="data/"), "root must be on gs://")])
def test_impossible_requests_are_refused(kwargs, message):
    args = {"image": IMAGE, "root": "gs://b/d", "output": "gs://b/r", **kwargs}
    with pytest.raises(ValueError, match=message):
        vertex_job().job_spec(**args)


def test_cli_prints_the_spec_or_a_clear_error():
    done = subprocess.run([sys.executable, os.path.join(TRAINING, "vertex_job.py"), "--image", IMAGE, "--root",
                           "gs://b/d", "--output", "gs://b/r", "--hosts", "2", "--spot",
                           "--train-args", "--epochs 400 --lr 0.002"], capture_output=True, text=True, check=True)
    spec = json.loads(done.stdout)
    assert spec["scheduling"]["strategy"] == "SPOT" and len(spec["workerPoolSpecs"]) == 2
    args = parse_args(spec["workerPoolSpecs"][1]["containerSpec"]["args"])
    assert (args.epochs, args.lr) == (400, 0.002)
    bad = subprocess.run([sys.executable, os.path.join(TRAINING, "vertex_job.py"), "--image", IMAGE, "--root",
                          "gs://b/d", "--output", "runs/x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "output must be on gs://" in bad.stderr


def test_submit_script_hands_gcloud_the_spec(fake_gcloud):
    """submit.sh with a stand-in `gcloud` on PATH that keeps the config it is given."""
    env, calls, config = fake_gcloud
    env = {**env, "PATH": f"{os.path.dirname(sys.executable)}:{env['PATH']}"}
    subprocess.run([os.path.join(TRAINING, "submit.sh"), "proj", "europe-west4", IMAGE, "gs://b/d", "gs://b/runs/r7",
                    "2", "4", "l4", "--", "--spot", "--train-args", "--epochs 3"], env=env, check=True,
                   capture_output=True)
    assert calls()[0][:8] == ["ai", "custom-jobs", "create", "--project", "proj", "--region", "europe-west4",
                              "--display-name"]
    spec = json.loads(config.read_text())
    assert spec["scheduling"]["strategy"] == "SPOT" and len(spec["workerPoolSpecs"]) == 2
    args = parse_args(spec["workerPoolSpecs"][0]["containerSpec"]["args"])
    assert (args.epochs, args.batch_size, args.output) == (3, 16 * 4 * 2, "gs://b/runs/r7")
    usage = subprocess.run([os.path.join(TRAINING, "submit.sh"), "proj"], env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "PROJECT REGION IMAGE ROOT OUTPUT" in usage.stderr


def test_multi_host_spec_trains_as_vertex_runs_it(tmp_path, gcs_emulator):
    """Two hosts (chief + worker) from the spec, TF_CONFIG as Vertex AI sets it, the run on gs://
    (the storage emulator), a tiny model and one CPU per host standing in for the GPUs."""
    from training import checkpoint

    job = vertex_job()
    data = str(tmp_path / "data")
    synthesize(data, tracks=4, targets=["vocals", "drums"], duration=2.0, rate=8000, seed=3)
    root, output = f"gs://{gcs_emulator}/data", f"gs://{gcs_emulator}/runs/vertex"
    storage.upload_dir(data, root)
    tiny = ["--targets", "vocals", "--sample-rate", "8000", "--n-fft", "256", "--n-hop", "64", "--hidden-size", "8",
            "--nb-layers", "1", "--seq-duration", "1.0", "--samples-per-track", "4", "--valid-seconds", "1.0",
            "--audio-examples", "0", "--epochs", "1"]
    spec = job.job_spec(IMAGE, root, output, hosts=2, gpus=1, batch_per_gpu=2, extra_args=tiny)
    ports = [_free_port(), _free_port()]
    procs = []
    for pool, workdir in ((0, tmp_path / "chief"), (1, tmp_path / "worker")):
        container = spec["workerPoolSpecs"][pool]["containerSpec"]
        tf_config = job.vertex_tf_config(spec, pool, 0, ports)
        args = [a if a != job.WORKDIR else str(workdir) for a in container["args"]]
        env = {**os.environ, "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": "", "TF_CONFIG": json.dumps(tf_config),
               **{e["name"]: e["value"] for e in container["env"]}}
        procs.append(subprocess.Popen([sys.executable, *container["command"][1:], *args], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text[-3000:]
    assert "2 replica(s)" in outputs[0]
    chief = checkpoint.read(f"{output}/checkpoints/latest")
    worker = checkpoint.read(str(tmp_path / "worker" / "checkpoints" / "latest"))
    assert chief[0]["global_step"] == worker[0]["global_step"] > 0
    for key in chief[1]:
        assert (chief[1][key] == worker[1][key]).all(), key
    assert storage.exists(f"{output}/separator/separator.json")
    assert not os.path.exists(tmp_path / "worker" / "separator")  # only the chief exports


def test_vertex_tf_config_names_chief_and_workers():
    spec = vertex_job().job_spec(IMAGE, "gs://b/d", "gs://b/r", hosts=3)
    config = vertex_job().vertex_tf_config(spec, 1, 1, [7001, 7002, 7003])
    assert config["cluster"] == {"chief": ["127.0.0.1:7001"], "worker": ["127.0.0.1:7002", "127.0.0.1:7003"]}
    assert config["task"] == {"type": "worker", "index": 1}


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
