//! Launches the kernel's disk images under QEMU.
//!
//! Used by the `cargo run` runner (`src/main.rs`) and by the QEMU-driven test
//! targets in `tests/`. The kernel reports its verdict through QEMU's
//! `isa-debug-exit` device (port 0xf4): it writes [`EXIT_SUCCESS`] or
//! [`EXIT_FAILURE`], and QEMU exits with `(value << 1) | 1`. Anything else (a
//! triple fault under `-no-reboot` exits QEMU with 0, a timeout, a crash of
//! QEMU itself) is a failure too: a run succeeds only when the kernel says so.

pub mod profile;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The BIOS disk image of the kernel that `cargo run` boots.
pub const KERNEL_BIOS_IMAGE: &str = env!("KERNEL_BIOS_IMAGE");
/// The UEFI disk image of the same kernel (empty if it could not be built).
pub const KERNEL_UEFI_IMAGE: &str = env!("KERNEL_UEFI_IMAGE");
/// The kernel ELF, with symbols, for GDB.
pub const KERNEL_ELF: &str = env!("KERNEL_ELF");
/// The BIOS disk image of the in-kernel test harness.
pub const KTEST_BIOS_IMAGE: &str = env!("KTEST_BIOS_IMAGE");
/// The UEFI disk image of the in-kernel test harness.
pub const KTEST_UEFI_IMAGE: &str = env!("KTEST_UEFI_IMAGE");
/// The test harness ELF, with symbols, for GDB.
pub const KTEST_ELF: &str = env!("KTEST_ELF");
/// A test image whose second test faults on purpose (fault reporting).
pub const KFAULT_BIOS_IMAGE: &str = env!("KFAULT_BIOS_IMAGE");
/// A test image whose second test overflows a thread's stack on purpose
/// (stack guard reporting).
pub const KSTACK_BIOS_IMAGE: &str = env!("KSTACK_BIOS_IMAGE");
/// The BIOS disk image of the in-kernel benchmarks (`cargo run -- --bench`).
pub const KBENCH_BIOS_IMAGE: &str = env!("KBENCH_BIOS_IMAGE");
/// The UEFI disk image of the in-kernel benchmarks.
pub const KBENCH_UEFI_IMAGE: &str = env!("KBENCH_UEFI_IMAGE");
/// The benchmark ELF, with symbols, for GDB.
pub const KBENCH_ELF: &str = env!("KBENCH_ELF");

/// Value the kernel writes to the debug-exit port on success.
pub const EXIT_SUCCESS: u32 = 0x10;
/// Value the kernel writes to the debug-exit port on failure.
pub const EXIT_FAILURE: u32 = 0x11;

/// The QEMU binary the runner starts.
pub const QEMU: &str = "qemu-system-x86_64";

/// How to boot one image.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// Raw disk image to boot.
    pub image: PathBuf,
    /// Guest RAM in MiB.
    pub mem_mib: u64,
    /// Number of virtual CPUs.
    pub smp: u32,
    /// QEMU's `-cpu` model and features, e.g. `max` or `max,la57=off`.
    pub cpu: String,
    /// Boot through UEFI firmware (OVMF) instead of BIOS.
    pub uefi: bool,
    /// Stop at the first instruction and wait for GDB on localhost:1234.
    pub gdb: bool,
    /// Kill QEMU and report a failure after this long.
    pub timeout: Option<Duration>,
    /// Print the guest's serial output as it arrives.
    pub echo: bool,
    /// The kernel command line (Linux's): kernel parameters such as
    /// `quiet`, then `--`, then the words init gets as `argv[1..]`. Handed
    /// to the kernel through QEMU's fw_cfg ([`CMDLINE_FILE`]).
    pub cmdline: String,
    /// Files packed, read-only, into the initramfs (a `newc` cpio archive,
    /// fw_cfg [`INITRD_FILE`]); `/init`, if there, is run as PID 1.
    pub files: Vec<PackedFile>,
    /// Extra arguments passed to QEMU unchanged.
    pub extra_args: Vec<String>,
}

/// A host file packed into the initramfs at `guest` (an absolute path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedFile {
    pub host: PathBuf,
    pub guest: String,
}

/// The fw_cfg file holding the kernel command line.
pub const CMDLINE_FILE: &str = "opt/mmkernel/cmdline";
/// The fw_cfg file holding the initramfs.
pub const INITRD_FILE: &str = "opt/mmkernel/initrd";

impl QemuConfig {
    /// The defaults: 512 MiB, one CPU of QEMU's `max` model, BIOS, no GDB,
    /// a 10-minute timeout.
    pub fn new(image: impl Into<PathBuf>) -> Self {
        Self {
            image: image.into(),
            mem_mib: 512,
            smp: 1,
            cpu: "max".into(),
            uefi: false,
            gdb: false,
            timeout: Some(Duration::from_secs(600)),
            echo: true,
            cmdline: String::new(),
            files: Vec::new(),
            extra_args: Vec::new(),
        }
    }

    /// Boots `image` with the static Linux executable `program` as PID 1
    /// (packed as `/init`), `argv` = `["/init", args..]`, and the kernel's
    /// log quiet, so that the serial log is the program's output.
    pub fn with_program(
        image: impl Into<PathBuf>,
        program: impl Into<PathBuf>,
        args: &[&str],
    ) -> Self {
        let mut cfg = Self::new(image);
        cfg.files.push(PackedFile {
            host: program.into(),
            guest: "/init".into(),
        });
        cfg.cmdline = cmdline_with_args("quiet", args.iter().copied());
        cfg
    }
}

/// A kernel command line: `params`, then `--` and `args` (each quoted if
/// it has a space, as Linux's parser allows).
pub fn cmdline_with_args<'a>(params: &str, args: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = String::from(params.trim());
    let mut args = args.into_iter().peekable();
    if args.peek().is_some() {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str("--");
        for a in args {
            line.push(' ');
            if a.is_empty() || a.contains(char::is_whitespace) {
                line.push('"');
                line.push_str(a);
                line.push('"');
            } else {
                line.push_str(a);
            }
        }
    }
    line
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The kernel wrote [`EXIT_SUCCESS`] to the debug-exit port.
    Success,
    /// The kernel wrote [`EXIT_FAILURE`] to the debug-exit port (init
    /// exited non-zero or was killed, or the kernel found a bug).
    Failure,
    /// QEMU exited without a verdict from the kernel (status code, if any).
    NoVerdict(Option<i32>),
    /// The run exceeded its timeout and QEMU was killed.
    Timeout(Duration),
}

impl Verdict {
    /// Whether the kernel reported success.
    pub fn is_success(&self) -> bool {
        *self == Verdict::Success
    }
}

/// The result of one QEMU run: verdict plus everything the guest printed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub verdict: Verdict,
    pub serial: String,
    pub elapsed: Duration,
    /// How init ended, from the kernel's last line about it.
    pub init_exit: Option<InitExit>,
}

/// How PID 1 ended, as the kernel reports it on the serial line
/// (`init: exited with status N`, `init: killed by signal N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitExit {
    Exited(i32),
    Signaled(i32),
}

impl InitExit {
    /// The last such line in `serial`.
    pub fn parse(serial: &str) -> Option<Self> {
        serial.lines().rev().find_map(|l| {
            let l = l.trim();
            if let Some(n) = l.strip_prefix("init: exited with status ") {
                n.parse().ok().map(InitExit::Exited)
            } else if let Some(n) = l.strip_prefix("init: killed by signal ") {
                n.split_whitespace()
                    .next()?
                    .parse()
                    .ok()
                    .map(InitExit::Signaled)
            } else {
                None
            }
        })
    }

    /// A shell's view of it: the status, or 128 + the signal.
    pub fn shell_status(self) -> u8 {
        match self {
            InitExit::Exited(code) => code as u8,
            InitExit::Signaled(sig) => (128 + sig) as u8,
        }
    }
}

/// Why QEMU could not be run at all.
#[derive(Debug)]
pub enum RunError {
    /// `qemu-system-x86_64` is not installed.
    QemuMissing,
    /// `--uefi` was asked for but no OVMF firmware was found.
    OvmfMissing,
    /// The disk image does not exist.
    ImageMissing(PathBuf),
    /// Another I/O error starting or talking to QEMU.
    Io(std::io::Error),
    /// A file to pack could not be read (or the archive written).
    File(PathBuf, std::io::Error),
    /// A guest path that is not absolute, or names a directory.
    BadGuestPath(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::QemuMissing => write!(
                f,
                "{QEMU} not found: run ./scripts/setup.sh (or: sudo apt-get install -y qemu-system-x86)"
            ),
            RunError::OvmfMissing => write!(
                f,
                "--uefi needs OVMF firmware: apt-get install -y ovmf (looked in {})",
                OVMF_PATHS.join(", ")
            ),
            RunError::ImageMissing(p) => write!(f, "disk image {} does not exist", p.display()),
            RunError::Io(e) => write!(f, "running {QEMU}: {e}"),
            RunError::File(p, e) => write!(f, "{}: {e}", p.display()),
            RunError::BadGuestPath(p) => {
                write!(f, "guest path {p:?} must be absolute and name a file")
            }
        }
    }
}

impl std::error::Error for RunError {}

const OVMF_PATHS: [&str; 3] = [
    "/usr/share/ovmf/OVMF.fd",
    "/usr/share/OVMF/OVMF.fd",
    "/usr/share/qemu/OVMF.fd",
];

fn ovmf() -> Option<&'static str> {
    OVMF_PATHS.into_iter().find(|p| Path::new(p).exists())
}

/// The QEMU command line for `cfg`, without starting it.
pub fn qemu_command(cfg: &QemuConfig) -> Result<Command, RunError> {
    if !cfg.image.exists() {
        return Err(RunError::ImageMissing(cfg.image.clone()));
    }
    let mut cmd = Command::new(QEMU);
    cmd.arg("-drive")
        .arg(format!("format=raw,file={}", cfg.image.display()))
        .args(["-serial", "stdio", "-display", "none", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(["-accel", "tcg", "-cpu", &cfg.cpu])
        .arg("-m")
        .arg(format!("{}M", cfg.mem_mib))
        .arg("-smp")
        .arg(cfg.smp.to_string());
    if cfg.uefi {
        cmd.arg("-bios").arg(ovmf().ok_or(RunError::OvmfMissing)?);
    }
    if cfg.gdb {
        cmd.args(["-s", "-S"]);
    }
    if !cfg.cmdline.is_empty() {
        cmd.arg("-fw_cfg").arg(format!(
            "name={CMDLINE_FILE},string={}",
            cfg.cmdline.replace(',', ",,")
        ));
    }
    if !cfg.files.is_empty() {
        let path = write_initramfs(&cfg.files)?;
        cmd.arg("-fw_cfg").arg(format!(
            "name={INITRD_FILE},file={}",
            path.display().to_string().replace(',', ",,")
        ));
    }
    cmd.args(&cfg.extra_args);
    Ok(cmd)
}

/// Packs `files` into a `newc` cpio archive (Linux's initramfs format,
/// `Documentation/driver-api/early-userspace/buffer-format.rst`) in the
/// temporary directory, with the parent directories of each file, and
/// returns its path.
pub fn write_initramfs(files: &[PackedFile]) -> Result<PathBuf, RunError> {
    let mut out = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    let mut ino = 1u32;
    for f in files {
        if !f.guest.starts_with('/') || f.guest.ends_with('/') || f.guest.contains("/../") {
            return Err(RunError::BadGuestPath(f.guest.clone()));
        }
        let data = std::fs::read(&f.host).map_err(|e| RunError::File(f.host.clone(), e))?;
        let name = f.guest.trim_start_matches('/');
        let mut parent = String::new();
        for part in name
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            parent = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}/{part}")
            };
            if !dirs.contains(&parent) {
                dirs.push(parent.clone());
                cpio_entry(&mut out, ino, 0o040755, &parent, &[]);
                ino += 1;
            }
        }
        let mode = if data.starts_with(b"\x7fELF") {
            0o100755
        } else {
            0o100644
        };
        cpio_entry(&mut out, ino, mode, name, &data);
        ino += 1;
    }
    cpio_entry(&mut out, 0, 0, "TRAILER!!!", &[]);
    let path = std::env::temp_dir().join(format!(
        "mmkernel-initramfs-{}-{}.cpio",
        std::process::id(),
        INITRAMFS_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&path, out).map_err(|e| RunError::File(path.clone(), e))?;
    Ok(path)
}

static INITRAMFS_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// One `newc` entry: the 110-byte header, the name padded to 4 bytes,
/// the data padded to 4 bytes.
fn cpio_entry(out: &mut Vec<u8>, ino: u32, mode: u32, name: &str, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0,
        0,
        if mode & 0o040000 != 0 { 2 } else { 1 },
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Boots `cfg.image` under QEMU, streams the serial output, and waits for the
/// verdict or the timeout.
pub fn run(cfg: &QemuConfig) -> Result<Outcome, RunError> {
    let mut cmd = qemu_command(cfg)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RunError::QemuMissing,
        _ => RunError::Io(e),
    })?;

    // A reader thread forwards the serial log line by line, so the caller's
    // stdout shows it live and we still get the whole text back.
    let stdout = child.stdout.take().expect("piped stdout");
    let echo = cfg.echo;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line).replace('\r', "");
            // The profiler's dump is for the runner to read, not to show.
            if echo && !text.starts_with("profile: ") {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
            let _ = tx.send(text);
            line.clear();
        }
    });

    let timeout = if cfg.gdb { None } else { cfg.timeout };
    let status = loop {
        if let Some(status) = child.try_wait().map_err(RunError::Io)? {
            break Some(status);
        }
        if timeout.is_some_and(|t| start.elapsed() > t) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = reader.join();
    let serial: String = rx.try_iter().collect();
    let verdict = match status {
        None => Verdict::Timeout(timeout.unwrap_or_default()),
        Some(s) => match s.code() {
            Some(c) if c == ((EXIT_SUCCESS << 1) | 1) as i32 => Verdict::Success,
            Some(c) if c == ((EXIT_FAILURE << 1) | 1) as i32 => Verdict::Failure,
            code => Verdict::NoVerdict(code),
        },
    };
    Ok(Outcome {
        verdict,
        init_exit: InitExit::parse(&serial),
        serial,
        elapsed: start.elapsed(),
    })
}

/// The kernel command line that hands `args` (space-separated words) to
/// the built-in userland init as `argv[1..]`.
pub fn init_args(args: &str) -> String {
    cmdline_with_args("", args.split_whitespace())
}

/// Parses a memory size: plain MiB (`512`), or with a `K`, `M`, `G` suffix.
pub fn parse_mem_mib(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "M"),
    };
    let n: u64 = digits.parse().ok()?;
    let mib = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "K" => n / 1024,
        "M" => n,
        "G" => n.checked_mul(1024)?,
        _ => return None,
    };
    (mib > 0).then_some(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_sizes() {
        assert_eq!(parse_mem_mib("512"), Some(512));
        assert_eq!(parse_mem_mib("512M"), Some(512));
        assert_eq!(parse_mem_mib("2G"), Some(2048));
        assert_eq!(parse_mem_mib("2GiB"), Some(2048));
        assert_eq!(parse_mem_mib("1048576K"), Some(1024));
        assert_eq!(parse_mem_mib("0"), None);
        assert_eq!(parse_mem_mib("12X"), None);
        assert_eq!(parse_mem_mib(""), None);
    }

    #[test]
    fn command_line_has_the_exit_device_and_limits() {
        let cfg = QemuConfig {
            mem_mib: 1024,
            smp: 2,
            cpu: "max,la57=off".into(),
            extra_args: vec!["-d".into(), "int".into()],
            ..QemuConfig::new(KERNEL_BIOS_IMAGE)
        };
        let cmd = qemu_command(&cfg).unwrap();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(joined.contains("-m 1024M"));
        assert!(joined.contains("-smp 2"));
        assert!(joined.contains("-cpu max,la57=off"));
        assert!(joined.contains("-no-reboot"));
        assert!(joined.ends_with("-d int"));
    }

    #[test]
    fn missing_image_is_an_error() {
        let cfg = QemuConfig::new("/nonexistent/image.img");
        assert!(matches!(run(&cfg), Err(RunError::ImageMissing(_))));
    }
}
