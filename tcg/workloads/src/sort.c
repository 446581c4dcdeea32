/* Quicksort of pseudo-random words; prints a position-weighted checksum. */
#include "runtime.h"

#define N 4000
#define SEED 2024u

static u32 a[N];

static void quicksort(u32 *v, int lo, int hi)
{
    while (lo < hi) {
        u32 pivot = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                u32 t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        /* Recurse into the smaller half, loop on the larger: O(log n) stack. */
        if (j - lo < hi - i) {
            quicksort(v, lo, j);
            lo = i;
        } else {
            quicksort(v, i, hi);
            hi = j;
        }
    }
}

int main(int hart, int harts)
{
    (void)harts;
    if (hart != 0)
        return 0;
    u32 state = SEED;
    for (int i = 0; i < N; i++)
        a[i] = lcg_next(&state);
    quicksort(a, 0, N - 1);
    u32 sorted = 1, checksum = 0;
    for (int i = 0; i < N; i++) {
        if (i && a[i - 1] > a[i])
            sorted = 0;
        checksum = checksum * 31u + a[i] * (u32)(i + 1);
    }
    print_str("sort:");
    print_field_u32("n", N);
    print_field_u32("sorted", sorted);
    print_field_hex("min", a[0]);
    print_field_hex("max", a[N - 1]);
    print_field_hex("checksum", checksum);
    print_end();
    return 0;
}
