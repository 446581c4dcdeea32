/* Sieve of Eratosthenes: count, sum and largest prime below a limit. */
#include "runtime.h"

#define LIMIT 120000

static u8 composite[LIMIT];

int main(int hart, int harts)
{
    (void)harts;
    if (hart != 0)
        return 0;
    for (u32 i = 2; i * i < LIMIT; i++)
        if (!composite[i])
            for (u32 j = i * i; j < LIMIT; j += i)
                composite[j] = 1;
    u32 count = 0, sum = 0, largest = 0;
    for (u32 i = 2; i < LIMIT; i++)
        if (!composite[i]) {
            count++;
            sum += i;
            largest = i;
        }
    print_str("sieve:");
    print_field_u32("limit", LIMIT);
    print_field_u32("count", count);
    print_field_u32("sum", sum);
    print_field_u32("largest", largest);
    print_end();
    return 0;
}
