"""The chunk engine: any model family's compiled batch program, named chunks of audio in, their stems out.

A track is cut into `chunking.Chunk`s by the engine's `geometry` (`layout`); a caller reads each
chunk's samples (`geometry.span`, `geometry.gather`) and hands a batch of `Piece(key, chunk, audio)`
to `separate`, which returns each piece's stems to overlap-add at `geometry.place(chunk)`. The
`Separator` (in memory) and `umx_core.stream` (file to file) both drive it; `key` is theirs, to say
which track a piece is of. What a program computes is its family's (`umx_core.families`).
"""

import collections

import numpy as np

from umx_core import chunking

Piece = collections.namedtuple("Piece", "key chunk audio")
Piece.__doc__ = """A chunk to separate: the caller's `key` (which track), its `chunking.Chunk`, and float32
`(channels, samples)` audio: samples `geometry.span(chunk)` of the padded track."""


class ChunkEngine:
    """Batch pieces, run a family's program on them, and hand back each piece's stems.

    Args:
        geometry: how tracks are cut (`umx_core.chunking`).
        program: the family's batch program (`umx_core.families.Family.program`).
    """

    def __init__(self, geometry, program):
        self.geometry, self.program = geometry, program

    def per_call(self, width):
        """Chunks of `width` steps that go into one call of the program."""
        return self.program.per_call(width)

    def separate(self, pieces, width):
        """The stems of a batch of pieces (at most `per_call(width)`), in their order.

        Args:
            pieces: `Piece`s whose audio all has the same channels.
            width: steps every chunk is padded to (`geometry.layout`).
        Returns:
            float32 `(sources, channels, samples)` per piece, to overlap-add at
            `geometry.place(piece.chunk)` of the padded track.
        """
        fixed = self.program.fixed_shapes  # compiled programs: batches padded to a few shapes
        rows = chunking.rows_for(len(pieces), self.per_call(width)) if fixed else len(pieces)
        audio = np.zeros((rows, pieces[0].audio.shape[0], self.geometry.input_samples(width)), np.float32)
        for i, piece in enumerate(pieces):
            audio[i, :, : piece.audio.shape[-1]] = piece.audio
        stems = self.program(audio, [piece.chunk for piece in pieces], width)
        return [self.geometry.output(piece.chunk, stems[i]) for i, piece in enumerate(pieces)]
