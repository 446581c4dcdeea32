"""Stop-the-world safe work, as QEMU's cpus-common does it."""
