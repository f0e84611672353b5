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
/// "command line" from a named file there.
const FW_CFG_SELECTOR: u16 = 0x510;
const FW_CFG_DATA: u16 = 0x511;
/// Selectors: the signature (`"QEMU"`) and the file directory.
const FW_CFG_SIGNATURE: u16 = 0x0000;
const FW_CFG_FILE_DIR: u16 = 0x0019;

/// The fw_cfg file that holds init's arguments, space-separated
/// (`-fw_cfg name=opt/mmkernel/init,string=test`; `cargo run -- --init test`).
pub const INIT_ARGS_FILE: &[u8] = b"opt/mmkernel/init";

/// Selects fw_cfg item `key` and reads `buf.len()` bytes from its start
/// (or its current position, with `select` false).
fn fw_cfg_read(key: Option<u16>, buf: &mut [u8]) {
    // SAFETY: 1. Ports 0x510/0x511 are QEMU's fw_cfg device on the PC
    // machine; selecting an item and reading its bytes has no side effect
    // beyond the device's read cursor. 2. Only the boot task calls this,
    // before any process runs (no concurrent use of the cursor).
    unsafe {
        if let Some(key) = key {
            Port::<u16>::new(FW_CFG_SELECTOR).write(key);
        }
        let mut data = Port::<u8>::new(FW_CFG_DATA);
        for b in buf {
            *b = data.read();
        }
    }
}

/// The contents of fw_cfg file `name`, if QEMU has the device and the file.
pub fn fw_cfg_file(name: &[u8]) -> Option<alloc::vec::Vec<u8>> {
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
    let (select, size) = found?;
    let mut data = alloc::vec![0u8; size.min(4096) as usize];
    fw_cfg_read(Some(select), &mut data);
    Some(data)
}

/// init's arguments: `init` followed by the words of [`INIT_ARGS_FILE`].
pub fn init_argv() -> alloc::vec::Vec<alloc::string::String> {
    let mut argv = alloc::vec![alloc::string::String::from("init")];
    if let Some(text) = fw_cfg_file(INIT_ARGS_FILE) {
        let text = alloc::string::String::from_utf8_lossy(&text);
        argv.extend(
            text.split_whitespace()
                .filter(|w| !w.is_empty())
                .map(alloc::string::String::from),
        );
    }
    argv
}
