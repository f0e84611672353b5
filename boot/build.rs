//! Turns the kernel artifacts into bootable BIOS (and UEFI) disk images.
//!
//! Cargo builds `kernel` for `x86_64-unknown-none` as an artifact dependency
//! (`bindeps`); the `bootloader` crate wraps each ELF into a raw disk image.
//! The image paths reach the runner and the test crates as compile-time
//! environment variables (`KERNEL_BIOS_IMAGE`, `KTEST_BIOS_IMAGE`, ...).

use std::path::{Path, PathBuf};

use bootloader::{BootConfig, DiskImageBuilder};
use bootloader_boot_config::LevelFilter;

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    for (bin, var) in [
        ("kernel", "KERNEL"),
        ("ktest", "KTEST"),
        ("kfault", "KFAULT"),
        ("kstack", "KSTACK"),
        ("kbench", "KBENCH"),
    ] {
        let elf = std::env::var_os(format!("CARGO_BIN_FILE_KERNEL_{bin}"))
            .unwrap_or_else(|| panic!("cargo did not pass the `{bin}` artifact"));
        let elf = PathBuf::from(elf);
        let bios = out_dir.join(format!("{bin}-bios.img"));
        builder(&elf)
            .create_bios_image(&bios)
            .unwrap_or_else(|e| panic!("BIOS image for {}: {e}", elf.display()));
        println!("cargo:rustc-env={var}_BIOS_IMAGE={}", bios.display());
        uefi_image(&elf, &out_dir.join(format!("{bin}-uefi.img")), var);
        println!("cargo:rustc-env={var}_ELF={}", elf.display());
    }
}

/// The UEFI image is cheap to make and lets `--uefi` work where OVMF exists.
fn uefi_image(elf: &Path, out: &Path, var: &str) {
    match builder(elf).create_uefi_image(out) {
        Ok(()) => println!("cargo:rustc-env={var}_UEFI_IMAGE={}", out.display()),
        Err(e) => {
            println!("cargo:warning=no UEFI image for {}: {e}", elf.display());
            println!("cargo:rustc-env={var}_UEFI_IMAGE=");
        }
    }
}

/// The bootloader only reports warnings, so the serial log is the kernel's.
fn builder(elf: &Path) -> DiskImageBuilder {
    let mut builder = DiskImageBuilder::new(elf.to_path_buf());
    let mut config = BootConfig::default();
    config.log_level = LevelFilter::Warn;
    config.frame_buffer_logging = false;
    builder.set_boot_config(&config);
    builder
}
