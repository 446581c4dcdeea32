/*
 * Multi-hart atomics: an amoswap spinlock protecting a plain counter, an
 * LR/SC counter, AMO counters, and a done counter hart 0 waits on. With N
 * harts the final values are exact: every hart adds the same amounts.
 */
#include "runtime.h"

#define ITERS 150

static volatile u32 lock;
static volatile u32 locked_counter;
static volatile u32 lrsc_counter;
static volatile u32 amo_counter;
static volatile u32 bits;
static volatile u32 max_id;
static volatile i32 min_value = 1000;
static volatile u32 and_mask = 0xFFFFFFFFu;
static volatile u32 xor_sum;
static volatile u32 done;

static void spin_lock(volatile u32 *l)
{
    while (__atomic_exchange_n(l, 1u, __ATOMIC_ACQUIRE)) /* amoswap.w.aq */
        while (*l)
            ;
}

static void spin_unlock(volatile u32 *l)
{
    __atomic_store_n(l, 0u, __ATOMIC_RELEASE);
}

static void lrsc_add(volatile u32 *p, u32 v)
{
    u32 tmp, fail;
    asm volatile("1: lr.w %0, (%2)\n"
                 "   add %0, %0, %3\n"
                 "   sc.w %1, %0, (%2)\n"
                 "   bnez %1, 1b"
                 : "=&r"(tmp), "=&r"(fail)
                 : "r"(p), "r"(v)
                 : "memory");
}

#define AMO(op, p, v) asm volatile(op " zero, %1, (%0)" : : "r"(p), "r"(v) : "memory")

int main(int hart, int harts)
{
    for (int i = 0; i < ITERS; i++) {
        spin_lock(&lock);
        locked_counter = locked_counter + 1; /* not atomic: the lock protects it */
        spin_unlock(&lock);
        lrsc_add(&lrsc_counter, 2);
        __atomic_fetch_add(&amo_counter, (u32)hart + 1, __ATOMIC_RELAXED); /* amoadd.w */
    }
    AMO("amoor.w", &bits, 1u << hart);
    AMO("amomaxu.w", &max_id, (u32)hart);
    AMO("amomin.w", &min_value, -hart);
    AMO("amoand.w", &and_mask, ~(1u << hart));
    AMO("amoxor.w", &xor_sum, (u32)hart * 0x9E3779B9u + 1u);
    __atomic_fetch_add(&done, 1u, __ATOMIC_RELEASE);
    if (hart != 0)
        return 0;
    while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) != (u32)harts)
        ;
    print_str("atomics:");
    print_field_u32("harts", (u32)harts);
    print_field_u32("locked", locked_counter);
    print_field_u32("lrsc", lrsc_counter);
    print_field_u32("amo", amo_counter);
    print_field_hex("bits", bits);
    print_field_u32("max", max_id);
    print_field_hex("min", (u32)min_value);
    print_field_hex("and", and_mask);
    print_field_hex("xor", xor_sum);
    print_end();
    sys_exit_group(0);
}
