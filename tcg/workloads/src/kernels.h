/*
 * The code-heavy job shared by parallel.c and stall.c: SLICES independent
 * slices of LEN words each. Slice s is filled from its own LCG seed, sorted
 * (insertion sort), CRC-32'd (bitwise, as zlib computes it), and the CRC is
 * passed through all FNS distinct small functions, starting at a different
 * one per slice, so that the job's code footprint (not only its loops)
 * matters to a translation buffer. Which hart runs a slice does not change
 * its result; combine() folds the results in slice order.
 */
#ifndef KERNELS_H
#define KERNELS_H

#include "runtime.h"

#define SLICES 8u
#define LEN 128u
#define SEED 0x51CEu
#define FNS 128u

typedef u32 (*fn_t)(u32);

/* Function number i: one of four shapes, with constants derived from i. */
#define F(i)                                                                   \
    __attribute__((noinline)) static u32 f##i(u32 x)                           \
    {                                                                          \
        const u32 c = (u32)(i) * 0x9E3779B9u + 0x7F4A7C15u;                   \
        switch ((i) & 3) {                                                     \
        case 0: return x * (c | 1u) + (u32)(i);                               \
        case 1: return (x ^ c) + (x >> (1 + (i) % 29));                        \
        case 2: return (x << (1 + (i) % 23)) ^ (x + c);                        \
        default: return (x | c) - (x & ((u32)(i) << 3));                     \
        }                                                                      \
    }
#define F8(i) F(i##0) F(i##1) F(i##2) F(i##3) F(i##4) F(i##5) F(i##6) F(i##7)
#define F64(i) F8(i##0) F8(i##1) F8(i##2) F8(i##3) F8(i##4) F8(i##5) F8(i##6) F8(i##7)
#define T(i) f##i,
#define T8(i) T(i##0) T(i##1) T(i##2) T(i##3) T(i##4) T(i##5) T(i##6) T(i##7)
#define T64(i) T8(i##0) T8(i##1) T8(i##2) T8(i##3) T8(i##4) T8(i##5) T8(i##6) T8(i##7)

/* f100..f177 and f200..f277 (decimal numbers whose last two digits are 0-7). */
F64(1)
F64(2)

static const fn_t table[FNS] = {T64(1) T64(2)};

static u32 data[SLICES * LEN];
static volatile u32 results[SLICES];
static volatile u32 done;

static void insertion_sort(u32 *v, u32 n)
{
    for (u32 i = 1; i < n; i++) {
        u32 x = v[i];
        u32 j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

static u32 crc32(const u8 *p, u32 n)
{
    u32 crc = 0xFFFFFFFFu;
    for (u32 i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1u));
    }
    return ~crc;
}

/* The result of slice s (the same whichever hart computes it). */
static u32 work_slice(u32 s)
{
    u32 *v = data + s * LEN;
    u32 state = SEED + s * 7919u;
    for (u32 i = 0; i < LEN; i++)
        v[i] = lcg_next(&state);
    insertion_sort(v, LEN);
    u32 acc = crc32((const u8 *)v, LEN * 4);
    for (u32 k = 0; k < FNS; k++)
        acc = table[(k + s * 17u) % FNS](acc + v[k % LEN]);
    return acc;
}

/* Slices first, first + step, ... : one hart's share. */
static void work_share(u32 first, u32 step)
{
    for (u32 s = first; s < SLICES; s += step)
        results[s] = work_slice(s);
}

/* Count this hart as done (amoadd.w, release). */
static void finish(void)
{
    __atomic_fetch_add(&done, 1u, __ATOMIC_RELEASE);
}

/* Hart 0: wait until all harts are done; then the combined checksum. */
static u32 combine(u32 harts)
{
    while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) != harts)
        ;
    u32 checksum = 0;
    for (u32 s = 0; s < SLICES; s++)
        checksum = (checksum * 31u) ^ results[s];
    return checksum;
}

#endif
