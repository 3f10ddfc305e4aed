"""A zip archive read as untrusted input: its structure checked against itself before any entry inflates.

Python's `zipfile` forgives what other readers refuse (a local header that contradicts the
directory, a second disk, an entry marked as a folder or as encrypted, a count that does not
match), so a file could mean one thing here and another to PyTorch. `SafeZip` refuses all of
those, and an entry's declared size must be in proportion to what it stores before it is read.
"""

import io
import struct
import zipfile

# an entry may inflate to this many times its stored size (torch stores its entries uncompressed)
MAX_INFLATION = 20
# general-purpose flags a plain archive may carry: deflate options, a data descriptor, UTF-8 names
PLAIN_FLAGS = 0x0002 | 0x0004 | 0x0008 | 0x0800
MAX_EXTRACT_VERSION = 63
END, END64, LOCATOR, LOCAL = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07", b"PK\x03\x04"


class ZipRefused(Exception):
    """What is wrong with an archive, for the caller to name its file."""


def _end_records(data, infos):
    """Refuses an end record (and zip64's) that spans disks or miscounts the directory."""
    end = data.rfind(END)
    if end < 0 or len(data) - end < 22:
        raise ZipRefused("its archive has no end record")
    _sig, disk, cd_disk, on_disk, total, cd_size, cd_offset, _comment = struct.unpack("<IHHHHIIH", data[end:end + 22])
    locator = end - 20
    if data[locator:locator + 4] == LOCATOR:  # zip64: the counts are in its own record
        _sig, z_disk, z_offset, disks = struct.unpack("<IIQI", data[locator:locator + 20])
        record = data[z_offset:z_offset + 56]
        if z_disk != 0 or disks != 1 or len(record) != 56 or record[:4] != END64:
            raise ZipRefused("its archive's zip64 end record is missing or spans disks")
        disk, cd_disk, on_disk, total, cd_size, cd_offset = struct.unpack("<IIQQQQ", record[16:56])
        end = z_offset
    if disk != 0 or cd_disk != 0:
        raise ZipRefused("its archive spans several disks")
    if not on_disk == total == len(infos) or cd_offset + cd_size != end:
        raise ZipRefused("its archive's end record contradicts its directory")
    _directory_walk(data, infos, cd_offset, cd_size)


def _directory_walk(data, infos, cd_offset, cd_size):
    """Refuses a directory whose records do not tile it exactly, name for name."""
    pos = cd_offset
    for info in infos:
        head = data[pos:pos + 46]
        if len(head) != 46 or head[:4] != b"PK\x01\x02":
            raise ZipRefused("its archive's directory is malformed")
        n, e, c = struct.unpack("<HHH", head[28:34])
        if data[pos + 46:pos + 46 + n] != info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437"):
            raise ZipRefused("its archive's directory is malformed")
        pos += 46 + n + e + c
    if pos != cd_offset + cd_size:
        raise ZipRefused("its archive's directory is malformed")


def _descriptor_agrees(data, info):
    """Whether the data descriptor after an entry (flag bit 3) repeats the directory's CRC and sizes."""
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    if data[info.header_offset + 30:info.header_offset + 30 + name_len] != info.orig_filename.encode(
            "utf-8" if info.flag_bits & 0x800 else "cp437"):
        return False
    pos = info.header_offset + 30 + name_len + extra_len + info.compress_size
    if data[pos:pos + 4] == b"PK\x07\x08":
        pos += 4
    for fmt in ("<IQQ", "<III"):  # zip64's sizes are 8 bytes, the plain format's 4
        size = struct.calcsize(fmt)
        if len(data[pos:pos + size]) == size and struct.unpack(fmt, data[pos:pos + size]) == (
                info.CRC, info.compress_size, info.file_size):
            return True
    return False


def _entry_plain(data, info):
    """Refuses an entry that is a folder, encrypted, of an unknown version, or whose local header
    says something else than the directory."""
    if info.flag_bits & ~PLAIN_FLAGS or info.volume != 0 or info.reserved != 0:
        raise ZipRefused(f"entry {info.filename} is encrypted, on another disk, or has unknown flags")
    if info.extract_version > MAX_EXTRACT_VERSION or info.is_dir() or info.external_attr & 0x10:
        raise ZipRefused(f"entry {info.filename} is a folder or needs an unknown zip version")
    head = data[info.header_offset:info.header_offset + 30]
    if len(head) != 30:
        raise ZipRefused(f"entry {info.filename} has no local header")
    sig, version, flags, method, _time, _date, crc, csize, usize, _n, _e = struct.unpack("<4sHHHHHIIIHH", head)
    if sig != LOCAL or flags != info.flag_bits or method != info.compress_type or version > MAX_EXTRACT_VERSION:
        raise ZipRefused(f"entry {info.filename} has a local header that contradicts the archive's directory")
    agrees = _descriptor_agrees(data, info) if flags & 0x08 else (crc, csize, usize) == (
        info.CRC, info.compress_size, info.file_size)
    if not agrees:
        raise ZipRefused(f"entry {info.filename} has a local header that contradicts the archive's directory")


class SafeZip:
    """The entries of an archive held in memory, each read whole and checked.

    Args:
        data: the archive's bytes.
    Raises:
        ZipRefused: what is wrong with its structure.
    """

    def __init__(self, data):
        self.data = data
        self.archive = zipfile.ZipFile(io.BytesIO(data))
        self.entries = {info.filename: info for info in self.archive.infolist()}
        if len(self.entries) != len(self.archive.infolist()):
            raise ZipRefused("its archive names one entry twice")
        _end_records(data, self.archive.infolist())
        for info in self.entries.values():
            _entry_plain(data, info)

    def names(self):
        """The entries' names, in the archive's order."""
        return list(self.entries)

    def read(self, name, expected=None):
        """An entry's bytes (CRC checked), its sizes checked before it inflates.

        Args:
            name: the entry.
            expected: the size it must have, if known.
        """
        info = self.entries[name]
        if info.compress_size > len(self.data) or info.file_size > MAX_INFLATION * info.compress_size + 1024:
            raise ZipRefused(f"entry {name} declares {info.file_size} bytes from {info.compress_size} stored "
                             f"(refused: out of proportion)")
        if expected is not None and info.file_size != expected:
            raise ZipRefused(f"entry {name} holds {info.file_size} bytes, its storage needs {expected}")
        with self.archive.open(info) as f:
            raw = f.read(info.file_size + 1)
        if len(raw) != info.file_size:
            raise ZipRefused(f"entry {name} is not the size it declares")
        return raw
