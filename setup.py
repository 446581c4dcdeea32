"""Build script for the optional C extension; everything else is in pyproject.toml.

The extension (rcu/_native.c) is an accelerator: ``optional=True`` lets the
install go on without it where no C compiler is available, and the package
then runs its pure-Python reference (``rcu.implementation == "python"``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rcu._native",
            sources=["rcu/_native.c"],
            extra_compile_args=["-std=c11"],
            optional=True,
        )
    ]
)
