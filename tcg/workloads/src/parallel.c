/*
 * Every hart does a share of a code-heavy job (kernels.h): hart h computes
 * slices h, h + harts, ... The harts count themselves done with an amoadd,
 * and hart 0 prints a checksum that does not depend on the interleaving.
 */
#include "kernels.h"

int main(int hart, int harts)
{
    work_share((u32)hart, (u32)harts);
    finish();
    if (hart != 0)
        return 0;
    u32 checksum = combine((u32)harts);
    print_str("parallel:");
    print_field_u32("slices", SLICES);
    print_field_u32("harts", (u32)harts);
    print_field_hex("checksum", checksum);
    print_end();
    sys_exit_group(0);
}
