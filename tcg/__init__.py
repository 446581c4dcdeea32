"""Translation buffer, retirement policies and a RISC-V emulator built on rcu and quiescent."""
