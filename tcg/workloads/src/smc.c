/*
 * Self-modifying code: each round writes a new little function into the same
 * buffer (different instructions each time), runs fence.i, calls it and feeds
 * its result to the next round. An emulator that keeps running stale
 * translations of the buffer prints a wrong checksum.
 */
#include "runtime.h"

#define ROUNDS 300
#define MAX_OPS 12

/* Code buffer in .bss: flat guest RAM is executable everywhere. */
static u32 code[MAX_OPS + 1] __attribute__((aligned(64)));

#define REG_A0 10u

static u32 i_type(u32 funct3, u32 imm)
{
    /* op-imm a0, a0, imm: imm[11:0] | rs1 | funct3 | rd | 0010011 */
    return ((imm & 0xFFFu) << 20) | (REG_A0 << 15) | (funct3 << 12) | (REG_A0 << 7) | 0x13u;
}

static u32 make_op(u32 round, u32 k)
{
    i32 imm = (i32)((round * 37u + k * 11u) % 4096u) - 2048; /* -2048 .. 2047 */
    switch ((round + k) % 4u) {
    case 0:
        return i_type(0, (u32)imm); /* addi */
    case 1:
        return i_type(4, (u32)imm); /* xori: the immediate is sign-extended */
    case 2:
        return i_type(1, 1u + (round + k) % 3u); /* slli 1..3 */
    default:
        return i_type(5, 1u + (round * k) % 5u); /* srli 1..5 */
    }
}

int main(int hart, int harts)
{
    (void)harts;
    if (hart != 0)
        return 0;
    u32 acc = 0x12345678u;
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 n = 1u + r % MAX_OPS;
        for (u32 k = 0; k < n; k++)
            code[k] = make_op(r, k);
        code[n] = 0x00008067u; /* ret (jalr x0, 0(ra)) */
        asm volatile("fence.i" ::: "memory");
        u32 (*fn)(u32) = (u32 (*)(u32))(void *)code;
        acc = fn(acc) + r;
    }
    print_str("smc:");
    print_field_u32("rounds", ROUNDS);
    print_field_hex("acc", acc);
    print_end();
    return 0;
}
