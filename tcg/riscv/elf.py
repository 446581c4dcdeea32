"""Loading a RISC-V ELF32 executable into flat guest RAM.

The guest sees one flat, little-endian RAM starting at address 0 (16 MiB by
default). A statically linked executable is all the emulator runs, so loading
is small: check the ELF header says "32-bit, little-endian, RISC-V,
executable", copy every ``PT_LOAD`` segment's file bytes to its virtual
address and zero the rest of its memory size (``.bss``), and start at the
entry point. There is no dynamic linker, no relocation and no auxiliary
vector.

Everything is checked before a single byte of RAM is written:
:func:`parse_elf` validates the whole file and returns an immutable
:class:`ElfImage`; only then does :meth:`ElfImage.load` copy it. A malformed
file therefore raises :class:`~tcg.riscv.LoaderError` with a message naming
the field at fault, never an ``IndexError`` from ``struct`` halfway through a
load, and never after the guest started. The loader is fuzzed with random and
mutated files to hold it to that.

Executables built for extensions the emulator lacks are refused up front
rather than left to fault on their first unusual instruction: compressed
code (``EF_RISCV_RVC``), a hard-float ABI and RV32E all say so in
``e_flags``.
"""

from __future__ import annotations

import itertools
import os
import struct
from dataclasses import dataclass

from tcg.riscv.errors import LoaderError

__all__ = [
    "DEFAULT_RAM_SIZE",
    "PAGE_SIZE",
    "ElfImage",
    "LoadedProgram",
    "Segment",
    "check_ram_size",
    "load_elf",
    "parse_elf",
]

#: Guest RAM size unless configured otherwise: 16 MiB.
DEFAULT_RAM_SIZE = 16 * 1024 * 1024
#: Guest page size: translated blocks never cross a page, watch flags are per page.
PAGE_SIZE = 4096
#: The largest RAM a 32-bit guest can address.
MAX_RAM_SIZE = 1 << 32

_EHDR = struct.Struct("<16sHHIIIIIHHHHHH")  # 52 bytes
_PHDR = struct.Struct("<IIIIIIII")  # 32 bytes

_ET_EXEC = 2
_EM_RISCV = 243
_EV_CURRENT = 1
_PT_LOAD = 1
_PT_DYNAMIC = 2
_PT_INTERP = 3
_EF_RISCV_RVC = 0x1
_EF_RISCV_FLOAT_ABI = 0x6
_EF_RISCV_RVE = 0x8
_PF_X = 1


@dataclass(frozen=True, slots=True)
class Segment:
    """One loadable segment: ``data`` goes to ``vaddr``, zeros fill up to ``memsz``."""

    vaddr: int
    memsz: int
    data: bytes
    flags: int

    @property
    def end(self) -> int:
        """The first address past the segment."""
        return self.vaddr + self.memsz

    @property
    def executable(self) -> bool:
        """Whether the segment is marked executable (``PF_X``)."""
        return bool(self.flags & _PF_X)


@dataclass(frozen=True, slots=True)
class ElfImage:
    """A validated executable: entry point and segments, not yet in any RAM."""

    entry: int
    segments: tuple[Segment, ...]

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        """The loaded address ranges ``[start, end)``, in address order."""
        return tuple((s.vaddr, s.end) for s in self.segments)

    @property
    def highest_address(self) -> int:
        """The first address past the last segment."""
        return max(s.end for s in self.segments)

    def load(self, ram: bytearray) -> None:
        """Copy the segments into ``ram`` (file bytes, then zeros up to ``memsz``)."""
        if not isinstance(ram, bytearray):
            raise TypeError(f"ram must be a bytearray, not {type(ram).__name__}")
        if self.highest_address > len(ram):
            raise LoaderError(
                f"segments end at {self.highest_address:#x}, past the end of "
                f"guest RAM ({len(ram):#x} bytes)"
            )
        for seg in self.segments:
            filesz = len(seg.data)
            ram[seg.vaddr : seg.vaddr + filesz] = seg.data
            ram[seg.vaddr + filesz : seg.end] = bytes(seg.memsz - filesz)


@dataclass(frozen=True, slots=True)
class LoadedProgram:
    """A program loaded into a fresh guest RAM."""

    ram: bytearray
    entry: int
    ranges: tuple[tuple[int, int], ...]


def check_ram_size(ram_size: int) -> int:
    """Validate a guest RAM size: a whole number of pages, at most 4 GiB."""
    if isinstance(ram_size, bool) or not isinstance(ram_size, int):
        raise TypeError(f"ram_size must be an int, not {type(ram_size).__name__}")
    if ram_size <= 0 or ram_size > MAX_RAM_SIZE or ram_size % PAGE_SIZE:
        raise ValueError(
            f"ram_size must be a positive multiple of {PAGE_SIZE} up to 4 GiB, got {ram_size}"
        )
    return ram_size


def parse_elf(
    data: bytes | bytearray | memoryview, *, ram_size: int = DEFAULT_RAM_SIZE
) -> ElfImage:
    """Validate an ELF32 RISC-V executable and return its image.

    Raises :class:`~tcg.riscv.LoaderError` if ``data`` is not a little-endian
    ELF32 RISC-V ``ET_EXEC`` file this emulator can run, or if a segment does
    not fit in ``ram_size`` bytes of guest RAM.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    check_ram_size(ram_size)
    blob = bytes(data)
    if len(blob) < _EHDR.size:
        raise LoaderError(f"file too short for an ELF header ({len(blob)} bytes, need 52)")
    (
        ident,
        e_type,
        e_machine,
        e_version,
        e_entry,
        e_phoff,
        _e_shoff,
        e_flags,
        _e_ehsize,
        e_phentsize,
        e_phnum,
        _e_shentsize,
        _e_shnum,
        _e_shstrndx,
    ) = _EHDR.unpack_from(blob)
    if ident[:4] != b"\x7fELF":
        raise LoaderError("not an ELF file (bad magic number)")
    if ident[4] != 1:
        raise LoaderError(f"not a 32-bit ELF file (EI_CLASS {ident[4]}, need 1)")
    if ident[5] != 1:
        raise LoaderError(f"not a little-endian ELF file (EI_DATA {ident[5]}, need 1)")
    if ident[6] != _EV_CURRENT or e_version != _EV_CURRENT:
        raise LoaderError(f"unknown ELF version {ident[6]}/{e_version}")
    if e_machine != _EM_RISCV:
        raise LoaderError(f"not a RISC-V executable (e_machine {e_machine}, need 243)")
    if e_type != _ET_EXEC:
        raise LoaderError(f"not a static executable (e_type {e_type}, need ET_EXEC = 2)")
    if e_flags & _EF_RISCV_RVC:
        raise LoaderError("compressed instructions (EF_RISCV_RVC) are not supported")
    if e_flags & _EF_RISCV_FLOAT_ABI:
        raise LoaderError("hard-float ABIs are not supported (need ilp32)")
    if e_flags & _EF_RISCV_RVE:
        raise LoaderError("RV32E executables are not supported")
    if e_phnum == 0:
        raise LoaderError("no program headers: nothing to load")
    if e_phentsize != _PHDR.size:
        raise LoaderError(f"bad program header size {e_phentsize} (need 32)")
    if e_phoff + e_phnum * _PHDR.size > len(blob):
        raise LoaderError(
            f"program headers ({e_phnum} at offset {e_phoff:#x}) run past the end of the file"
        )

    segments: list[Segment] = []
    for i in range(e_phnum):
        p_type, p_offset, p_vaddr, _p_paddr, p_filesz, p_memsz, p_flags, _p_align = (
            _PHDR.unpack_from(blob, e_phoff + i * _PHDR.size)
        )
        if p_type in (_PT_DYNAMIC, _PT_INTERP):
            raise LoaderError("dynamically linked executables are not supported")
        if p_type != _PT_LOAD or p_memsz == 0:
            continue
        if p_filesz > p_memsz:
            raise LoaderError(
                f"segment {i}: file size {p_filesz:#x} exceeds memory size {p_memsz:#x}"
            )
        if p_offset + p_filesz > len(blob):
            raise LoaderError(f"segment {i}: file bytes run past the end of the file")
        if p_vaddr + p_memsz > ram_size:
            raise LoaderError(
                f"segment {i} [{p_vaddr:#x}, {p_vaddr + p_memsz:#x}) does not fit in "
                f"guest RAM of {ram_size:#x} bytes"
            )
        segments.append(Segment(p_vaddr, p_memsz, blob[p_offset : p_offset + p_filesz], p_flags))
    if not segments:
        raise LoaderError("no loadable (PT_LOAD) segment")
    segments.sort(key=lambda s: s.vaddr)
    for before, after in itertools.pairwise(segments):
        if after.vaddr < before.end:
            raise LoaderError(
                f"segments overlap at [{after.vaddr:#x}, {min(before.end, after.end):#x})"
            )
    if e_entry % 4:
        raise LoaderError(f"entry point {e_entry:#x} is not 4-byte aligned")
    if not any(s.vaddr <= e_entry < s.end and s.executable for s in segments):
        raise LoaderError(f"entry point {e_entry:#x} is not inside an executable segment")
    return ElfImage(e_entry, tuple(segments))


def load_elf(
    source: bytes | bytearray | memoryview | str | os.PathLike[str],
    *,
    ram_size: int = DEFAULT_RAM_SIZE,
) -> LoadedProgram:
    """Validate an executable (bytes or a path) and load it into a new RAM.

    Returns the RAM (``ram_size`` bytes, zero outside the segments), the entry
    point and the loaded ranges. Raises :class:`~tcg.riscv.LoaderError` for a
    malformed file before allocating anything.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            data: bytes | bytearray | memoryview = f.read()
    else:
        data = source
    image = parse_elf(data, ram_size=ram_size)
    ram = bytearray(ram_size)
    image.load(ram)
    return LoadedProgram(ram, image.entry, image.ranges)
