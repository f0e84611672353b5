//! Leaving QEMU with a verdict through the `isa-debug-exit` device.

use x86_64::instructions::port::Port;

/// The value written to port 0xf4; QEMU exits with `(value << 1) | 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    Success = 0x10,
    Failure = 0x11,
}

/// Powers QEMU off with `code`. Never returns.
pub fn exit(code: ExitCode) -> ! {
    // SAFETY: port 0xf4 is the isa-debug-exit device the runner always
    // configures; writing it ends the VM and touches no memory.
    unsafe { Port::<u32>::new(0xf4).write(code as u32) };
    halt_forever()
}

/// Halts the CPU for good (if the exit device is absent, at least stop here).
pub fn halt_forever() -> ! {
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}

/// QEMU's firmware configuration device (`docs/specs/fw_cfg.rst`): a
/// 16-bit selector port and an 8-bit data port; the kernel reads its
/// command line and its initramfs from named files there. Only the boot
/// task reads it, before init starts (`crate::cmdline::get`,
/// `crate::initramfs::init`): the device has one read cursor.
const FW_CFG_SELECTOR: u16 = 0x510;
const FW_CFG_DATA: u16 = 0x511;
/// Selectors: the signature (`"QEMU"`) and the file directory.
const FW_CFG_SIGNATURE: u16 = 0x0000;
const FW_CFG_FILE_DIR: u16 = 0x0019;

/// Selects fw_cfg item `key` and reads `buf.len()` bytes from its start
/// (or its current position, with `select` false).
fn fw_cfg_read(key: Option<u16>, buf: &mut [u8]) {
    // SAFETY: 1. Ports 0x510/0x511 are QEMU's fw_cfg device on the PC
    // machine; selecting an item and reading its bytes has no side effect
    // beyond the device's read cursor. Only the boot task reads fw_cfg,
    // before init starts (no concurrent use of the cursor). 2. `rep insb` writes exactly `buf.len()` bytes at
    // `buf` (rdi, rcx), which we own mutably; the direction flag is clear
    // (the ABI's state at any call).
    unsafe {
        if let Some(key) = key {
            Port::<u16>::new(FW_CFG_SELECTOR).write(key);
        }
        core::arch::asm!(
            "rep insb",
            in("dx") FW_CFG_DATA,
            inout("rdi") buf.as_mut_ptr() => _,
            inout("rcx") buf.len() => _,
            options(nostack, preserves_flags)
        );
    }
}

/// The selector and size of fw_cfg file `name`, if QEMU has the device and
/// the file.
fn fw_cfg_find(name: &[u8]) -> Option<(u16, u32)> {
    let mut sig = [0u8; 4];
    fw_cfg_read(Some(FW_CFG_SIGNATURE), &mut sig);
    if &sig != b"QEMU" {
        return None;
    }
    let mut count = [0u8; 4];
    fw_cfg_read(Some(FW_CFG_FILE_DIR), &mut count);
    // Each entry: size (BE u32), select (BE u16), reserved u16, name[56].
    let mut found = None;
    for _ in 0..u32::from_be_bytes(count) {
        let mut e = [0u8; 64];
        fw_cfg_read(None, &mut e);
        let len = e[8..].iter().position(|&b| b == 0).unwrap_or(56);
        if found.is_none() && &e[8..8 + len] == name {
            let size = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            found = Some((u16::from_be_bytes([e[4], e[5]]), size));
        }
    }
    found
}

/// Size of the pieces [`fw_cfg_file_chunks`] reads a file into.
pub const FW_CFG_CHUNK: usize = 64 * 1024;

/// The contents of fw_cfg file `name` in pieces of [`FW_CFG_CHUNK`] bytes
/// (the last one shorter), so that a file of many megabytes needs no
/// physically contiguous buffer; `None` without the device or the file, or
/// without memory for it.
pub fn fw_cfg_file_chunks(name: &[u8]) -> Option<alloc::vec::Vec<alloc::boxed::Box<[u8]>>> {
    let (select, size) = fw_cfg_find(name)?;
    let mut chunks = alloc::vec::Vec::new();
    let mut left = size as usize;
    let mut first = true;
    while left > 0 {
        let n = left.min(FW_CFG_CHUNK);
        let mut v = alloc::vec::Vec::new();
        v.try_reserve_exact(n).ok()?;
        v.resize(n, 0u8);
        fw_cfg_read(first.then_some(select), &mut v);
        first = false;
        chunks.push(v.into_boxed_slice());
        left -= n;
    }
    Some(chunks)
}

/// The contents of the small fw_cfg file `name` (at most 64 KiB read),
/// if QEMU has the device and the file.
pub fn fw_cfg_file(name: &[u8]) -> Option<alloc::vec::Vec<u8>> {
    let (select, size) = fw_cfg_find(name)?;
    let mut data = alloc::vec![0u8; (size as usize).min(FW_CFG_CHUNK)];
    fw_cfg_read(Some(select), &mut data);
    Some(data)
}
