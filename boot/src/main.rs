//! `cargo run`: boots the kernel under QEMU and exits with its verdict.
//!
//! ```text
//! cargo run -- [--mem SIZE] [--smp N] [--gdb] [--uefi] [--timeout SECS] [--test | --bench] [--init ARGS] [-- QEMU ARGS...]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use boot::{QemuConfig, Verdict};

const USAGE: &str = "\
usage: cargo run -- [options] [-- extra QEMU arguments]

options:
  --mem SIZE       guest RAM (512 = 512 MiB; suffixes K, M, G)   [512M]
  --smp N          number of CPUs                                 [1]
  --gdb            wait for GDB on localhost:1234 before booting
  --uefi           boot through OVMF instead of BIOS
  --timeout SECS   kill QEMU after SECS seconds (0 = never)       [600]
  --test           boot the in-kernel test image instead of the kernel
  --bench          boot the in-kernel benchmark image instead of the kernel
  --init ARGS      arguments for the userland init, e.g. test, \"fuzz 7 50000\",
                   bench, \"bench 6400\" (passed through QEMU's fw_cfg)
  -h, --help       this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cfg, elf) = match parse(&args) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("boot: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if cfg.gdb {
        eprintln!("boot: waiting for GDB on :1234; in another terminal run");
        eprintln!(
            "      gdb -ex 'target remote :1234' -ex 'add-symbol-file {elf} -o 0xffffffff80000000'"
        );
        eprintln!(
            "      (the position-independent kernel is loaded at KERNEL_BASE; the banner prints it)"
        );
    }
    match boot::run(&cfg) {
        Ok(outcome) => match outcome.verdict {
            Verdict::Success => ExitCode::SUCCESS,
            Verdict::Failure => {
                eprintln!("boot: the kernel reported failure");
                ExitCode::FAILURE
            }
            Verdict::NoVerdict(code) => {
                eprintln!(
                    "boot: QEMU exited ({code:?}) without a verdict from the kernel (triple fault?)"
                );
                ExitCode::FAILURE
            }
            Verdict::Timeout(t) => {
                eprintln!("boot: timed out after {}s; QEMU killed", t.as_secs());
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("boot: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which image the runner boots.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Image {
    Kernel,
    Test,
    Bench,
}

/// Parses the runner's flags into the QEMU configuration and the ELF of the
/// chosen image (for GDB); `Ok(None)` means help was asked for.
fn parse(args: &[String]) -> Result<Option<(QemuConfig, &'static str)>, String> {
    let mut cfg = QemuConfig::new(boot::KERNEL_BIOS_IMAGE);
    let mut image = Image::Kernel;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--mem" => {
                let v = value("--mem")?;
                cfg.mem_mib = boot::parse_mem_mib(&v).ok_or(format!("bad --mem size {v:?}"))?;
            }
            "--smp" => {
                let v = value("--smp")?;
                cfg.smp = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or(format!("bad --smp count {v:?}"))?;
            }
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: u64 = v.parse().map_err(|_| format!("bad --timeout {v:?}"))?;
                cfg.timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "--init" => {
                let v = value("--init")?;
                cfg.extra_args.extend(boot::init_args(&v));
            }
            "--gdb" => cfg.gdb = true,
            "--uefi" => cfg.uefi = true,
            "--test" | "--bench" if image != Image::Kernel => {
                return Err("--test and --bench exclude each other".into());
            }
            "--test" => image = Image::Test,
            "--bench" => image = Image::Bench,
            "--" => {
                cfg.extra_args.extend(it.cloned());
                break;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let (bios, uefi, elf) = match image {
        Image::Kernel => (
            boot::KERNEL_BIOS_IMAGE,
            boot::KERNEL_UEFI_IMAGE,
            boot::KERNEL_ELF,
        ),
        Image::Test => (
            boot::KTEST_BIOS_IMAGE,
            boot::KTEST_UEFI_IMAGE,
            boot::KTEST_ELF,
        ),
        Image::Bench => (
            boot::KBENCH_BIOS_IMAGE,
            boot::KBENCH_UEFI_IMAGE,
            boot::KBENCH_ELF,
        ),
    };
    cfg.image = if cfg.uefi { uefi } else { bios }.into();
    if cfg.image.as_os_str().is_empty() {
        return Err("no UEFI image was built".into());
    }
    Ok(Some((cfg, elf)))
}
