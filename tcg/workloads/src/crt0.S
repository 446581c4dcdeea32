# Start code for guest programs.
#
# The emulator enters every hart here with a0 = hart id, a1 = number of
# harts and sp = the top of the hart's own stack, so nothing needs setting up
# (programs are linked with --no-relax, so gp is never used). main's return
# value becomes the hart's exit code (syscall 93, exit).

    .file "crt0.S"
    .text
    .globl _start
    .type _start, @function
_start:
    call main
    li a7, 93
    ecall
1:  j 1b
    .size _start, . - _start
