//! mremap (`mm/mremap.c`, the 6.16 `vma_remap_struct` flow).
