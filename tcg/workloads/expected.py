"""Python models of the guest programs: the output each one must print.

Each model recomputes what the C program computes with ordinary Python
(``sorted``, :func:`zlib.crc32`, nested loops) from the same parameters, so a
wrong emulator cannot agree with it by accident. The parameters are repeated
from the C sources on purpose; a mismatch shows up as a failing workload test.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from tcg.workloads import bigcode

__all__ = [
    "atomics",
    "bigcode_output",
    "crc32",
    "matmul",
    "parallel",
    "sieve",
    "smc",
    "sort",
    "stall",
]

M = 0xFFFFFFFF


def _lcg(seed: int) -> Iterator[int]:
    state = seed
    while True:
        state = (state * 1664525 + 1013904223) & M
        yield state


def _line(name: str, *fields: tuple[str, int, bool]) -> bytes:
    parts = [f"{name}:"]
    for key, value, hexa in fields:
        parts.append(f" {key}={value:#010x}" if hexa else f" {key}={value}")
    return ("".join(parts) + "\n").encode()


def sort(harts: int = 1) -> bytes:
    """sort.c: quicksort of 4000 LCG words."""
    gen = _lcg(2024)
    values = sorted(next(gen) for _ in range(4000))
    checksum = 0
    for i, v in enumerate(values):
        checksum = (checksum * 31 + v * (i + 1)) & M
    return _line(
        "sort",
        ("n", 4000, False),
        ("sorted", 1, False),
        ("min", values[0], True),
        ("max", values[-1], True),
        ("checksum", checksum, True),
    )


def crc32(harts: int = 1) -> bytes:
    """crc32.c: three rounds of CRC-32 over 4 KiB, perturbing one byte per round."""
    gen = _lcg(7)
    buf = bytearray(next(gen) >> 24 for _ in range(4096))
    crc = 0
    for r in range(3):
        crc = zlib.crc32(buf, crc)
        buf[r] ^= crc & 0xFF
    return _line("crc32", ("bytes", 4096, False), ("rounds", 3, False), ("crc", crc, True))


def matmul(harts: int = 1) -> bytes:
    """matmul.c: 40 x 40 integer matrix product."""
    n = 40
    gen = _lcg(99)
    a = [[next(gen) >> 20 for _ in range(n)] for _ in range(n)]
    b = [[next(gen) >> 20 for _ in range(n)] for _ in range(n)]
    c = [[sum(a[i][k] * b[k][j] for k in range(n)) & M for j in range(n)] for i in range(n)]
    checksum = 0
    for row in c:
        for v in row:
            checksum = ((checksum ^ v) * 16777619) & M
    trace = sum(c[i][i] for i in range(n)) & M
    return _line("matmul", ("n", n, False), ("trace", trace, False), ("checksum", checksum, True))


def sieve(harts: int = 1) -> bytes:
    """sieve.c: primes below 120000 (by trial division, not a sieve)."""
    limit = 120000
    primes = [2] + [p for p in range(3, limit, 2) if _is_prime(p)]
    return _line(
        "sieve",
        ("limit", limit, False),
        ("count", len(primes), False),
        ("sum", sum(primes) & M, False),
        ("largest", primes[-1], False),
    )


def _is_prime(p: int) -> bool:
    d = 3
    while d * d <= p:
        if p % d == 0:
            return False
        d += 2
    return True


def bigcode_output(harts: int = 1) -> bytes:
    """bigcode.c: the generated functions, modelled by :mod:`tcg.workloads.bigcode`."""
    return _line(
        "bigcode",
        ("functions", bigcode.FUNCTIONS, False),
        ("rounds", bigcode.ROUNDS, False),
        ("acc", bigcode.expected_acc(), True),
    )


def _sext12(v: int) -> int:
    v &= 0xFFF
    return v - 0x1000 if v & 0x800 else v


def smc(harts: int = 1) -> bytes:
    """smc.c: 300 rounds of generated addi/xori/slli/srli sequences."""
    acc = 0x12345678
    for r in range(300):
        for k in range(1 + r % 12):
            imm = (r * 37 + k * 11) % 4096 - 2048
            op = (r + k) % 4
            if op == 0:
                acc = (acc + imm) & M
            elif op == 1:
                acc ^= _sext12(imm) & M  # xori sign-extends its immediate
            elif op == 2:
                acc = (acc << (1 + (r + k) % 3)) & M
            else:
                acc >>= 1 + (r * k) % 5
        acc = (acc + r) & M
    return _line("smc", ("rounds", 300, False), ("acc", acc, True))


def atomics(harts: int = 1) -> bytes:
    """atomics.c: exact counter values for ``harts`` harts."""
    iters = 150
    xor = 0
    for h in range(harts):
        xor ^= (h * 0x9E3779B9 + 1) & M
    return _line(
        "atomics",
        ("harts", harts, False),
        ("locked", harts * iters, False),
        ("lrsc", 2 * harts * iters, False),
        ("amo", iters * harts * (harts + 1) // 2, False),
        ("bits", (1 << harts) - 1, True),
        ("max", harts - 1, False),
        ("min", -(harts - 1) & M, True),
        ("and", ~((1 << harts) - 1) & M, True),
        ("xor", xor, True),
    )


# kernels.h: the slices shared by parallel.c and stall.c.
SLICES, SLICE_LEN, SLICE_SEED = 8, 128, 0x51CE
#: The numbers of the generated functions f100..f177 and f200..f277, in table order.
SLICE_FUNCTIONS = [d * 100 + a * 10 + b for d in (1, 2) for a in range(8) for b in range(8)]


def _slice_function(i: int, x: int) -> int:
    """Function ``f<i>`` of kernels.h."""
    c = (i * 0x9E3779B9 + 0x7F4A7C15) & M
    shape = i & 3
    if shape == 0:
        return (x * (c | 1) + i) & M
    if shape == 1:
        return ((x ^ c) + (x >> (1 + i % 29))) & M
    if shape == 2:
        return ((x << (1 + i % 23)) & M) ^ ((x + c) & M)
    return ((x | c) - (x & ((i << 3) & M))) & M


def _slice_result(s: int) -> int:
    """kernels.h ``work_slice(s)``: sort, CRC-32, then every function once."""
    gen = _lcg((SLICE_SEED + s * 7919) & M)
    values = sorted(next(gen) for _ in range(SLICE_LEN))
    acc = zlib.crc32(b"".join(v.to_bytes(4, "little") for v in values))
    n = len(SLICE_FUNCTIONS)
    for k in range(n):
        i = SLICE_FUNCTIONS[(k + s * 17) % n]
        acc = _slice_function(i, (acc + values[k % SLICE_LEN]) & M)
    return acc


def _slices_checksum() -> int:
    """kernels.h ``combine``: the slice results folded in slice order."""
    checksum = 0
    for s in range(SLICES):
        checksum = ((checksum * 31) & M) ^ _slice_result(s)
    return checksum


def parallel(harts: int = 1) -> bytes:
    """parallel.c: every hart computes a share of the slices; the checksum is theirs."""
    return _line(
        "parallel",
        ("slices", SLICES, False),
        ("harts", harts, False),
        ("checksum", _slices_checksum(), True),
    )


#: stall.c: the sleeper's nanosleep calls and their length.
STALL_SLEEPS, STALL_SLEEP_MS = 4, 100


def stall(harts: int = 1) -> bytes:
    """stall.c: the same slices, computed while one hart sleeps in host calls."""
    return _line(
        "stall",
        ("sleeps", STALL_SLEEPS, False),
        ("ms", STALL_SLEEP_MS, False),
        ("checksum", _slices_checksum(), True),
    )
