"""umx_core.audio.read into a caller's array: the file's samples, through any view, errors naming the file."""

import numpy as np
import pytest
import soundfile as sf

from umx_core import audio
from umx_core.errors import UMXError


@pytest.fixture
def wav(tmp_path, rng):
    samples = (rng.standard_normal((3000, 2)) * 0.3).astype(np.float32)
    path = str(tmp_path / "a.wav")
    sf.write(path, samples, 8000, subtype="PCM_16")
    return path, sf.read(path, dtype="float32", always_2d=True)[0]  # what the file holds after PCM_16


def test_read_into_an_array_or_a_reversed_view_gives_the_files_samples(wav):
    path, whole = wav
    rows = np.full((2, 2, 500), np.nan, np.float32)
    first = rows[0]
    assert audio.read(path, 100, 500, out=first) is first
    audio.read(path, 2000, 500, out=rows[1][::-1])  # channels swapped through the view
    np.testing.assert_array_equal(rows[0], whole[100:600].T)
    np.testing.assert_array_equal(rows[1], whole[2000:2500, ::-1].T)
    # the thread's decode buffer is reused, never handed out: the first result is still intact
    np.testing.assert_array_equal(rows[0], whole[100:600].T)
    np.testing.assert_array_equal(audio.read(path, 100, 500), rows[0])


def test_reading_into_an_array_that_does_not_fit_names_the_file(wav):
    path, _ = wav
    for shape in ((2, 499), (1, 500)):
        with pytest.raises(UMXError, match=f"{path}: 2 channels of 500 samples do not fit"):
            audio.read(path, 0, 500, out=np.zeros(shape, np.float32))


def test_a_truncated_file_read_into_an_array_names_the_file(wav, tmp_path):
    path, _ = wav
    cut = str(tmp_path / "cut.wav")
    with open(path, "rb") as f:
        data = f.read()
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 2])  # the header still says 3000 samples
    with pytest.raises(UMXError, match=f"{cut}: ends (at|after) "):
        audio.read(cut, 1000, 1500, out=np.zeros((2, 1500), np.float32))
