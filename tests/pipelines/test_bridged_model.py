"""The catalog job with a bridged (X-UMX) model: every target computed, the ones asked for written."""

import os

import numpy as np
import soundfile as sf

from tests.conftest import random_filters
from tests.pipelines.conftest import RATE, check_records, run_in_process, stems_and_records, write_audio
from umx_core import Separator
from umx_core.nn.umx import UMX
from umx_core.pretrained import load_separator


def test_the_job_writes_the_targets_asked_for_of_a_bridged_model(tmp_path):
    filters = random_filters(("vocals", "drums", "bass"), nb_bins=257, max_bin=200)
    model = str(tmp_path / "model")
    Separator(UMX(list(filters), filters=filters, n_fft=512, n_hop=128, sample_rate=RATE, bridge=True),
              niter=1).save(model)
    source, output = str(tmp_path / "in"), str(tmp_path / "out")
    for seed in range(2):
        write_audio(os.path.join(source, f"song{seed}.wav"), 1.5, seed=seed, subtype="FLOAT")
    result = run_in_process(["--input", os.path.join(source, "*.wav"), "--output", output, "--model", model,
                             "--targets", "bass,vocals", "--codec", "wav", "--run_id", "bridged"])
    assert (result["separated"], result["failed"]) == (2, 0)
    stems, _ = stems_and_records(output)
    check_records(output)
    expected = load_separator(model, targets=["bass", "vocals"])
    assert expected.model.joint.bridge and len(expected.model.joint.filter_layers) == 3
    for seed in range(2):
        audio = sf.read(os.path.join(source, f"song{seed}.wav"), dtype="float32")[0].T[None]
        want = expected(audio)[0]
        folder = [rel.rsplit("/", 1)[0] for rel in stems if rel.endswith(f"song{seed}/bass.wav")][0]
        assert sorted(rel for rel in stems if rel.startswith(folder + "/")) == [f"{folder}/bass.wav",
                                                                                  f"{folder}/vocals.wav"]
        for row, name in enumerate(("bass", "vocals")):
            got = sf.read(stems[f"{folder}/{name}.wav"], dtype="float32")[0].T
            np.testing.assert_allclose(got, want[row], atol=1e-5)
