#include "runtime.h"

long sys_write(int fd, const void *buf, u32 len)
{
    return syscall3(SYS_WRITE, fd, (long)buf, len);
}

void sys_exit(int code)
{
    syscall3(SYS_EXIT, code, 0, 0);
    for (;;) {
    }
}

void sys_exit_group(int code)
{
    syscall3(SYS_EXIT_GROUP, code, 0, 0);
    for (;;) {
    }
}

static u32 str_len(const char *s)
{
    u32 n = 0;
    while (s[n])
        n++;
    return n;
}

void print_str(const char *s)
{
    sys_write(1, s, str_len(s));
}

static char *fmt_u32(char *end, u32 v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static char *fmt_hex(char *end, u32 v)
{
    for (int i = 0; i < 8; i++) {
        *--end = "0123456789abcdef"[v & 15];
        v >>= 4;
    }
    *--end = 'x';
    *--end = '0';
    return end;
}

void print_u32(u32 v)
{
    char buf[16];
    char *start = fmt_u32(buf + sizeof buf, v);
    sys_write(1, start, (u32)(buf + sizeof buf - start));
}

void print_hex(u32 v)
{
    char buf[16];
    char *start = fmt_hex(buf + sizeof buf, v);
    sys_write(1, start, (u32)(buf + sizeof buf - start));
}

static void print_field(const char *name, u32 v, int hex)
{
    char buf[64];
    char *end = buf + sizeof buf;
    char *p = hex ? fmt_hex(end, v) : fmt_u32(end, v);
    u32 n = str_len(name);
    if (n > 40)
        n = 40;
    *--p = '=';
    p -= n;
    memcpy(p, name, n);
    *--p = ' ';
    sys_write(1, p, (u32)(end - p));
}

void print_field_u32(const char *name, u32 v)
{
    print_field(name, v, 0);
}

void print_field_hex(const char *name, u32 v)
{
    print_field(name, v, 1);
}

void print_end(void)
{
    sys_write(1, "\n", 1);
}

void *memset(void *dst, int c, unsigned long n)
{
    u8 *d = dst;
    while (n--)
        *d++ = (u8)c;
    return dst;
}

void *memcpy(void *dst, const void *src, unsigned long n)
{
    u8 *d = dst;
    const u8 *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}
