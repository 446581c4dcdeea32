/* Integer matrix multiply C = A x B (wrapping 32-bit arithmetic). */
#include "runtime.h"

#define N 40
#define SEED 99u

static u32 A[N][N], B[N][N], C[N][N];

int main(int hart, int harts)
{
    (void)harts;
    if (hart != 0)
        return 0;
    u32 state = SEED;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            A[i][j] = lcg_next(&state) >> 20;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            B[i][j] = lcg_next(&state) >> 20;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            u32 s = 0;
            for (int k = 0; k < N; k++)
                s += A[i][k] * B[k][j];
            C[i][j] = s;
        }
    u32 checksum = 0, trace = 0;
    for (int i = 0; i < N; i++) {
        trace += C[i][i];
        for (int j = 0; j < N; j++)
            checksum = (checksum ^ C[i][j]) * 16777619u; /* FNV-1 style mix */
    }
    print_str("matmul:");
    print_field_u32("n", N);
    print_field_u32("trace", trace);
    print_field_hex("checksum", checksum);
    print_end();
    return 0;
}
