//! Links the user programs as static, non-PIE ELF executables at Linux's
//! traditional base (0x400000), every PT_LOAD segment on pages of its own,
//! so the kernel's ELF loader can map each with its own permissions.
//!
//! The `x86_64-unknown-none` target compiles position-independent code and
//! would link a static PIE; `--no-pie` makes lld resolve every relocation at
//! link time instead, so the loader has no relocations to apply.

fn main() {
    for arg in [
        "--no-pie",
        "--image-base=0x400000",
        "-z",
        "separate-loadable-segments",
        "-z",
        "noexecstack",
        "--entry=_start",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
