/* Bitwise CRC-32 (IEEE 802.3, reflected) of pseudo-random bytes, in rounds. */
#include "runtime.h"

#define N 4096
#ifndef ROUNDS
#define ROUNDS 3
#endif
#define SEED 7u

static u8 buf[N];

static u32 crc32_update(u32 crc, const u8 *p, u32 n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

int main(int hart, int harts)
{
    (void)harts;
    if (hart != 0)
        return 0;
    u32 state = SEED;
    for (int i = 0; i < N; i++)
        buf[i] = (u8)(lcg_next(&state) >> 24);
    u32 crc = 0;
    for (int r = 0; r < ROUNDS; r++) {
        crc = crc32_update(crc, buf, N);
        buf[r] ^= (u8)crc; /* each round sees different data */
    }
    print_str("crc32:");
    print_field_u32("bytes", N);
    print_field_u32("rounds", ROUNDS);
    print_field_hex("crc", crc);
    print_end();
    return 0;
}
