/* A tiny freestanding runtime: system calls, printing, memset/memcpy. */
#ifndef RUNTIME_H
#define RUNTIME_H

typedef unsigned int u32;
typedef int i32;
typedef unsigned char u8;

#define SYS_WRITE 64
#define SYS_EXIT 93
#define SYS_EXIT_GROUP 94

static inline long syscall3(long n, long a, long b, long c)
{
    register long a0 asm("a0") = a;
    register long a1 asm("a1") = b;
    register long a2 asm("a2") = c;
    register long a7 asm("a7") = n;
    asm volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a7) : "memory");
    return a0;
}

long sys_write(int fd, const void *buf, u32 len);
void sys_exit(int code) __attribute__((noreturn));
void sys_exit_group(int code) __attribute__((noreturn));

/* Output is buffered per call: each print_* is one write(1, ...). */
void print_str(const char *s);
void print_u32(u32 v);
void print_hex(u32 v);
/* "name=value " fields; print_end() writes the newline. */
void print_field_u32(const char *name, u32 v);
void print_field_hex(const char *name, u32 v);
void print_end(void);

void *memset(void *dst, int c, unsigned long n);
void *memcpy(void *dst, const void *src, unsigned long n);

/* The same linear congruential generator as the Python models (Numerical Recipes). */
static inline u32 lcg_next(u32 *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state;
}

#endif
