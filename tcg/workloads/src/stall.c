/*
 * A stalled vCPU: the last hart makes SLEEPS long nanosleep host calls while
 * the other harts share the code-heavy job of kernels.h, over and over, until
 * the sleeper is awake for good: so the buffer is under pressure for as long
 * as the sleeper sleeps. Every repetition computes the same slice results,
 * so the output does not depend on how many there were. On one hart, hart 0
 * does the job once and then sleeps. The harts count themselves done with an
 * amoadd, and hart 0 prints the checksum. nanosleep's return value is
 * ignored: an engine without it just does not sleep.
 */
#include "kernels.h"

#define SYS_NANOSLEEP 101
#define SLEEPS 4u
#define SLEEP_MS 100u

static volatile u32 awake;

int main(int hart, int harts)
{
    u32 workers = harts > 1 ? (u32)harts - 1 : 1u;
    if ((u32)hart < workers) {
        do
            work_share((u32)hart, workers);
        while (harts > 1 && !__atomic_load_n(&awake, __ATOMIC_ACQUIRE));
    }
    if (hart == harts - 1) {
        volatile i32 timespec[2] = {0, (i32)(SLEEP_MS * 1000000u)}; /* tv_sec, tv_nsec */
        for (u32 i = 0; i < SLEEPS; i++)
            syscall3(SYS_NANOSLEEP, (long)timespec, 0, 0);
        __atomic_store_n(&awake, 1u, __ATOMIC_RELEASE);
    }
    finish();
    if (hart != 0)
        return 0;
    u32 checksum = combine((u32)harts);
    print_str("stall:");
    print_field_u32("sleeps", SLEEPS);
    print_field_u32("ms", SLEEP_MS);
    print_field_hex("checksum", checksum);
    print_end();
    sys_exit_group(0);
}
