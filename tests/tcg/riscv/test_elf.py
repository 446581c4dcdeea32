"""The ELF loader: valid executables load exactly; anything else is a LoaderError."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcg.riscv import DEFAULT_RAM_SIZE, LoaderError, load_elf, parse_elf
from tcg.workloads import WORKLOADS

from .helpers import EHDR, make_elf

CODE = bytes.fromhex("13050000") * 4  # addi a0, x0, 0 (x4)


def good(**kwargs: object) -> bytes:
    segs = [(0x10000, CODE, 16, 5), (0x11000, b"data", 0x100, 6)]
    return make_elf(segs, 0x10000, **kwargs)  # type: ignore[arg-type]


def test_loads_segments_and_zero_fills() -> None:
    program = load_elf(good(), ram_size=1 << 20)
    assert program.entry == 0x10000
    assert program.ranges == ((0x10000, 0x10010), (0x11000, 0x11100))
    assert len(program.ram) == 1 << 20
    assert program.ram[0x10000:0x10010] == CODE
    assert program.ram[0x11000:0x11004] == b"data"
    assert program.ram[0x11004:0x11100] == bytes(0xFC)
    assert not any(program.ram[:0x10000])


def test_default_ram_is_16_mib() -> None:
    assert len(load_elf(good()).ram) == DEFAULT_RAM_SIZE == 16 * 1024 * 1024


def test_bss_is_zeroed_over_existing_contents() -> None:
    image = parse_elf(good())
    ram = bytearray(b"\xff" * (1 << 20))
    image.load(ram)
    assert ram[0x11004:0x11100] == bytes(0xFC)
    assert ram[0x11100] == 0xFF


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_workload_builds_load(name: str) -> None:
    path = WORKLOADS[name].path
    data = path.read_bytes()
    program = load_elf(path)
    _ident, *_rest = EHDR.unpack_from(data)
    entry = struct.unpack_from("<I", data, 24)[0]
    assert program.entry == entry
    assert program.ranges
    assert all(lo < hi for lo, hi in program.ranges)
    # The entry point holds _start's first instruction: a jal to main (call).
    first = int.from_bytes(program.ram[entry : entry + 4], "little")
    assert first & 0x7F in (0x6F, 0x17)  # jal, or auipc of an auipc/jalr pair


def test_accepts_path_like(tmp_path: Path) -> None:
    f = tmp_path / "p.elf"
    f.write_bytes(good())
    assert load_elf(f, ram_size=1 << 20).entry == 0x10000
    assert load_elf(str(f), ram_size=1 << 20).entry == 0x10000


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


MALFORMED = {
    "empty": b"",
    "short header": good()[:40],
    "bad magic": b"\x7fELG" + good()[4:],
    "64-bit class": _patch(good(), 4, "<B", 2),
    "big endian": _patch(good(), 5, "<B", 2),
    "bad ident version": _patch(good(), 6, "<B", 0),
    "bad e_version": _patch(good(), 20, "<I", 7),
    "x86 machine": _patch(good(), 18, "<H", 3),
    "shared object": _patch(good(), 16, "<H", 3),
    "relocatable": _patch(good(), 16, "<H", 1),
    "compressed code": _patch(good(), 36, "<I", 0x1),
    "double-float ABI": _patch(good(), 36, "<I", 0x4),
    "RV32E": _patch(good(), 36, "<I", 0x8),
    "no program headers": _patch(good(), 44, "<H", 0),
    "bad phentsize": _patch(good(), 42, "<H", 40),
    "program headers past end": _patch(good(), 28, "<I", 0xFFFFFF00),
    "too many program headers": _patch(good(), 44, "<H", 0xFFFF),
    "filesz above memsz": make_elf([(0x10000, CODE, 8, 5)], 0x10000),
    "segment data past end of file": _patch(good(), 52 + 4, "<I", 0x7FFFFFF0),
    "segment beyond RAM": make_elf([(0x10000, CODE, 16, 5), (0xFFFFF000, b"", 0x2000, 6)], 0x10000),
    "segment end past RAM": make_elf([(DEFAULT_RAM_SIZE - 8, CODE, 16, 5)], DEFAULT_RAM_SIZE - 8),
    "no PT_LOAD": make_elf([(0x10000, CODE, 16, 5)], 0x10000, p_types=[4]),
    "dynamic": make_elf([(0x10000, CODE, 16, 5)], 0x10000, p_types=[3]),
    "overlapping segments": make_elf([(0x10000, CODE, 16, 5), (0x10008, CODE, 16, 6)], 0x10000),
    "misaligned entry": make_elf([(0x10000, CODE, 16, 5)], 0x10002),
    "entry outside code": make_elf([(0x10000, CODE, 16, 5)], 0x20000),
    "entry in data segment": make_elf([(0x10000, CODE, 16, 6)], 0x10000),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_raises_loader_error(case: str) -> None:
    with pytest.raises(LoaderError) as info:
        load_elf(MALFORMED[case])
    assert str(info.value)  # a message, not an empty exception
    assert isinstance(info.value, ValueError)


def test_segment_that_does_not_fit_a_small_ram() -> None:
    with pytest.raises(LoaderError, match="does not fit"):
        load_elf(good(), ram_size=0x10000)


def test_image_load_checks_ram_size() -> None:
    image = parse_elf(good())
    with pytest.raises(LoaderError, match="past the end"):
        image.load(bytearray(0x11000))


@pytest.mark.parametrize("bad", [0, -4096, 4095, 1 << 33, 5000])
def test_bad_ram_size_is_a_value_error(bad: int) -> None:
    with pytest.raises(ValueError, match="ram_size"):
        load_elf(good(), ram_size=bad)


def test_bad_argument_types() -> None:
    with pytest.raises(TypeError):
        parse_elf(12)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        load_elf(good(), ram_size="big")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_elf(good()).load(b"")  # type: ignore[arg-type]


@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data: bytes) -> None:
    with contextlib.suppress(LoaderError):
        parse_elf(data, ram_size=1 << 20)


@given(st.binary(min_size=0, max_size=64))
def test_fuzz_random_bytes_after_valid_magic(tail: bytes) -> None:
    with contextlib.suppress(LoaderError):
        parse_elf(b"\x7fELF\x01\x01\x01" + tail, ram_size=1 << 20)


REAL = WORKLOADS["sort"].path.read_bytes()


@given(
    st.lists(
        st.tuples(st.integers(0, 52 + 32 * 4 - 1), st.integers(0, 255)), min_size=1, max_size=6
    ),
    st.integers(0, len(REAL)),
)
def test_fuzz_mutated_real_elf(mutations: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(REAL)
    for offset, value in mutations:
        data[offset] = value
    data = data[: max(cut, 52 + 32 * 4)]
    ram = bytearray(1 << 20)
    try:
        image = parse_elf(bytes(data), ram_size=len(ram))
    except LoaderError:
        return
    image.load(ram)  # a validated image always loads
    for seg in image.segments:
        assert ram[seg.vaddr : seg.vaddr + len(seg.data)] == seg.data
