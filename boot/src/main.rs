//! `cargo run`: boots the kernel under QEMU and exits with its verdict.
//!
//! ```text
//! cargo run -- [--mem SIZE] [--smp N] [--cpu MODEL] [--gdb] [--uefi] [--timeout SECS] [--test | --bench]
//!               [--append PARAMS] [--file HOST:GUEST]... [--verbose] [--profile]
//!               [--init PROGRAM|MODE [ARG...]]
//!               [-- QEMU ARGS...]
//! ```
//!
//! The runner exits with init's status (128 + the signal if it was
//! killed), as a shell would, or 1 if the kernel failed on its own.

use std::process::ExitCode;
use std::time::Duration;

use boot::{QemuConfig, Verdict};

const USAGE: &str = "\
usage: cargo run -- [options] [-- extra QEMU arguments]

options:
  --mem SIZE       guest RAM (512 = 512 MiB; suffixes K, M, G)   [512M]
  --smp N          number of CPUs                                 [1]
  --cpu MODEL      QEMU's -cpu model and features, e.g. max,la57=off  [max]
  --gdb            wait for GDB on localhost:1234 before booting
  --uefi           boot through OVMF instead of BIOS
  --timeout SECS   kill QEMU after SECS seconds (0 = never)       [600]
  --test           boot the in-kernel test image instead of the kernel
  --bench          boot the in-kernel benchmark image instead of the kernel
  --append PARAMS  kernel command line parameters, e.g. quiet, loglevel=7,
                   page_mapcount=off (words after a `--` in it go to init)
  --file HOST:GUEST  pack HOST_PATH read-only into the initramfs at GUEST_PATH
                   (init can open or execve it); may be repeated
  --verbose        keep the kernel's log when running a PROGRAM (default quiet)
  --profile        sample the kernel's RIP and call stack (kernel parameter
                   profile=4000, or the rate --append profile=N gives) and
                   print a flat profile and the commonest stacks at the end
  --init PROGRAM [ARG...]
                   run the static x86_64 Linux executable PROGRAM (a host
                   path) as PID 1, with ARGs as argv[1..]; every word up to
                   the next `--` is an argument
  --init MODE [ARG...]
                   run the built-in init in MODE: test, \"fuzz 7 50000\",
                   bench, \"bench 6400\" (default: the memory tour)
  -h, --help       this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cfg, elf, profile) = match parse(&args) {
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
        Ok(outcome) => {
            if profile {
                print_profile(&outcome.serial, elf);
            }
            exit_code(&outcome)
        }
        Err(e) => {
            eprintln!("boot: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Symbolizes and prints the kernel's sample dump (`--profile`).
fn print_profile(serial: &str, elf: &str) {
    let Some(samples) = boot::profile::parse(serial) else {
        eprintln!("boot: --profile: the kernel printed no samples (did it power off normally?)");
        return;
    };
    match boot::profile::Symbols::read(std::path::Path::new(elf)) {
        Ok(syms) => print!("{}", boot::profile::report(&samples, &syms, 40)),
        Err(e) => eprintln!("boot: --profile: {e}"),
    }
}

/// The runner's exit status for a finished run.
fn exit_code(outcome: &boot::Outcome) -> ExitCode {
    match outcome.verdict {
        Verdict::Success => ExitCode::SUCCESS,
        Verdict::Failure => match outcome.init_exit {
            Some(e) if e != boot::InitExit::Exited(0) => ExitCode::from(e.shell_status()),
            _ => {
                eprintln!("boot: the kernel reported failure");
                ExitCode::FAILURE
            }
        },
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
fn parse(args: &[String]) -> Result<Option<(QemuConfig, &'static str, bool)>, String> {
    let mut cfg = QemuConfig::new(boot::KERNEL_BIOS_IMAGE);
    let mut image = Image::Kernel;
    let mut params: Vec<String> = Vec::new();
    let mut init_args: Vec<String> = Vec::new();
    let mut program = false;
    let mut verbose = false;
    let mut profile = false;
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
            "--cpu" => cfg.cpu = value("--cpu")?,
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: u64 = v.parse().map_err(|_| format!("bad --timeout {v:?}"))?;
                cfg.timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "--append" => params.push(value("--append")?),
            "--file" => {
                let v = value("--file")?;
                let (host, guest) = v
                    .rsplit_once(':')
                    .ok_or(format!("--file wants HOST:GUEST, not {v:?}"))?;
                cfg.files.push(boot::PackedFile {
                    host: host.into(),
                    guest: guest.into(),
                });
            }
            "--verbose" => verbose = true,
            "--profile" => profile = true,
            "--init" => {
                let first = value("--init")?;
                if std::path::Path::new(&first).is_file() {
                    program = true;
                    cfg.files.push(boot::PackedFile {
                        host: first.into(),
                        guest: "/init".into(),
                    });
                } else {
                    // A built-in mode; "fuzz 7 50000" as one word works too.
                    init_args.extend(first.split_whitespace().map(String::from));
                }
                for a in it.by_ref() {
                    if a == "--" {
                        cfg.extra_args.extend(it.by_ref().cloned());
                        break;
                    }
                    init_args.push(a.clone());
                }
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
    if profile
        && !params
            .iter()
            .any(|p| p.split_whitespace().any(|w| w.starts_with("profile=")))
    {
        params.push("profile=4000".into());
    }
    if program && !verbose {
        params.insert(0, "quiet".into());
    }
    cfg.cmdline = boot::cmdline_with_args(&params.join(" "), init_args.iter().map(String::as_str));
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
    Ok(Some((cfg, elf, profile)))
}
