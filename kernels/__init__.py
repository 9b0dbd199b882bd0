"""nbprop's compiled kernels: plain Numba functions of arrays and scalars, outputs passed in."""
