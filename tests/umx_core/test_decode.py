"""umx_core.audio.read into a caller's array: the file's samples, through any view, errors naming the file;
files whose names are not UTF-8 through both backends."""

import os
import shutil

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


def _not_utf8(folder, name):
    """A path in `folder` whose file name holds the bytes `name` (not UTF-8), as Python names it."""
    return os.fsdecode(os.path.join(os.fsencode(str(folder)), name))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program (make system-deps)")
def test_a_file_whose_name_is_not_utf8_decodes_with_either_backend_and_its_errors_name_it(wav, tmp_path):
    path, whole = wav
    odd = _not_utf8(tmp_path, b"caf\xe9.wav")
    shutil.copyfile(path, odd)
    for backend in audio.BACKENDS:
        reader = audio.open_input(odd, 8000, backend=backend, tmpdir=str(tmp_path))
        np.testing.assert_allclose(reader.read(0, reader.samples), whole.T, atol=1e-6)
        reader.close()
    broken = _not_utf8(tmp_path, b"bad\xff.mp3")
    with open(broken, "wb") as f:
        f.write(b"not audio" * 100)
    with pytest.raises(UMXError, match="ffmpeg cannot decode it") as caught:  # ffmpeg repeats the name's bytes
        audio.open_input(broken, 8000, backend="ffmpeg", tmpdir=str(tmp_path))
    assert str(caught.value).startswith(broken)
