//! The kernel command line (Linux's `init/main.c`: `parse_args`,
//! `unknown_bootoption`), read from QEMU's fw_cfg file
//! `opt/mmkernel/cmdline` (`cargo run -- --append PARAMS --init ...`).
//!
//! Words are separated by spaces; double quotes group a value with spaces
//! (`foo="a b"`, `"a b"`). Before the first `--` are parameters: the ones
//! this kernel knows (below) are consumed; as on Linux, an unknown one
//! becomes an environment variable of init if it has an `=`, an argument
//! of init otherwise (unless it has a `.` before any `=`: a module
//! parameter, dropped). Everything after `--` is init's `argv[1..]`.
//!
//! | parameter            | effect                                          |
//! |----------------------|-------------------------------------------------|
//! | `quiet`              | console log level 4: only warnings and errors    |
//! | `debug`              | console log level 10: everything                 |
//! | `loglevel=N`         | console log level N (0-7; 7 = info, 8+ = debug)  |
//! | `init=PATH`          | run PATH (in the initramfs) as init              |
//! | `rdinit=PATH`        | the initramfs program to run (default `/init`)   |
//! | `page_mapcount=off`  | do not keep per-page mapcounts in large folios  |
//! |                      | (Linux's CONFIG_NO_PAGE_MAPCOUNT); `on` default  |
//! | `pt_reclaim=0/1`     | `/proc/sys/vm/pt_reclaim` at boot                |
//! | `thp_anon=SPEC`      | anonymous folio sizes (Linux 6.13's syntax:     |
//! |                      | `16K,64K:always;32K:never`, ranges `16K-64K`):  |
//! |                      | `always`/`inherit` enable a size, `madvise`/    |
//! |                      | `never` disable it (no per-VMA madvise policy)  |
//! | `profile=N`          | sample the kernel's RIP and call stack N times a |
//! |                      | second (a multiple of HZ) and print the samples  |
//! |                      | at power-off (`time::profile`; Linux's option of |
//! |                      | that name takes a bucket shift instead)          |

use alloc::string::String;
use alloc::vec::Vec;

use spin::Once;

/// The fw_cfg file that holds the command line.
pub const CMDLINE_FILE: &[u8] = b"opt/mmkernel/cmdline";

/// What the command line asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// The text as given (`/proc/cmdline`).
    pub raw: String,
    /// Linux's console log level: a record prints if its level is below it.
    pub loglevel: Option<u8>,
    pub init: Option<String>,
    pub rdinit: Option<String>,
    /// init's `argv[1..]`.
    pub init_args: Vec<String>,
    /// init's extra environment (`HOME=/` and `TERM=linux` come first).
    pub init_env: Vec<String>,
    /// `page_mapcount=off`.
    pub no_page_mapcount: bool,
    pub pt_reclaim: Option<bool>,
    /// `thp_anon=`: (orders to enable, orders to disable) as bitmasks.
    pub thp_anon: Option<(u32, u32)>,
    /// `profile=N`: the sampling profiler's rate in Hz.
    pub profile_hz: Option<u32>,
    /// Parameters with a bad value, reported at boot.
    pub bad: Vec<String>,
}

/// Splits `text` into words: spaces separate, double quotes group (and are
/// removed), as Linux's `next_arg`.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(core::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

impl Cmdline {
    /// Parses a command line (see the module docs).
    pub fn parse(text: &str) -> Self {
        let mut c = Cmdline {
            raw: String::from(text.trim()),
            ..Cmdline::default()
        };
        let mut it = words(text).into_iter();
        for w in it.by_ref() {
            if w == "--" {
                break;
            }
            let (key, value) = match w.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (w.as_str(), None),
            };
            match (key, value) {
                ("quiet", None) => c.loglevel = Some(4),
                ("debug", None) => c.loglevel = Some(10),
                ("loglevel", Some(v)) => match v.parse() {
                    Ok(n) => c.loglevel = Some(n),
                    Err(_) => c.bad.push(w.clone()),
                },
                ("init", Some(v)) => c.init = Some(String::from(v)),
                ("rdinit", Some(v)) => c.rdinit = Some(String::from(v)),
                ("page_mapcount", Some("off")) => c.no_page_mapcount = true,
                ("page_mapcount", Some("on")) => c.no_page_mapcount = false,
                ("pt_reclaim", Some("0")) => c.pt_reclaim = Some(false),
                ("pt_reclaim", Some("1")) => c.pt_reclaim = Some(true),
                ("thp_anon", Some(v)) => match parse_thp_anon(v) {
                    Some(masks) => c.thp_anon = Some(masks),
                    None => c.bad.push(w.clone()),
                },
                ("profile", Some(v)) => match v.parse() {
                    Ok(n) if n > 0 => c.profile_hz = Some(n),
                    _ => c.bad.push(w.clone()),
                },
                ("page_mapcount" | "pt_reclaim" | "profile", _) => c.bad.push(w.clone()),
                // Module parameters (`mod.param=..`) are not init's.
                (k, _) if k.contains('.') => {}
                (_, Some(_)) => c.init_env.push(w.clone()),
                (_, None) => c.init_args.push(w.clone()),
            }
        }
        c.init_args.extend(it);
        c
    }

    /// The `log` filter for the console log level (Linux's message levels:
    /// 3 err, 4 warning, 6 info, 7 debug; a message prints if its level is
    /// below the console's, which is 7 by default and 4 under `quiet`).
    pub fn log_filter(&self) -> log::LevelFilter {
        match self.loglevel {
            None | Some(7) => log::LevelFilter::Info,
            Some(0..=3) => log::LevelFilter::Off,
            Some(4) => log::LevelFilter::Error,
            Some(5..=6) => log::LevelFilter::Warn,
            Some(8) => log::LevelFilter::Debug,
            Some(_) => log::LevelFilter::Trace,
        }
    }

    /// Whether informational console lines (the boot banner, init's exit
    /// summary) are shown: Linux prints them at KERN_INFO (6).
    pub fn shows_info(&self) -> bool {
        self.loglevel.is_none_or(|l| l > 6)
    }
}

/// A folio size of `thp_anon=` (`64K`, `2M`) as an order, for the sizes
/// anonymous faults may use here (8 KiB .. 2 MiB: orders 1..=9).
fn thp_order(size: &str) -> Option<u32> {
    let (num, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let bytes = n.checked_mul(match unit {
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        _ => return None,
    })?;
    if !bytes.is_power_of_two() || !(8192..=2 << 20).contains(&bytes) {
        return None;
    }
    Some(bytes.trailing_zeros() - 12)
}

/// `thp_anon=` (Linux's `setup_thp_anon`): `;`-separated
/// `SIZES:POLICY`, SIZES a `,` list of sizes or `A-B` ranges.
fn parse_thp_anon(spec: &str) -> Option<(u32, u32)> {
    let (mut on, mut off) = (0u32, 0u32);
    for part in spec.split(';') {
        let (sizes, policy) = part.split_once(':')?;
        let mut mask = 0u32;
        for s in sizes.split(',') {
            let (a, b) = match s.split_once('-') {
                Some((a, b)) => (thp_order(a)?, thp_order(b)?),
                None => (thp_order(s)?, thp_order(s)?),
            };
            if a > b {
                return None;
            }
            for o in a..=b {
                mask |= 1 << o;
            }
        }
        match policy {
            "always" | "inherit" => {
                on |= mask;
                off &= !mask;
            }
            "madvise" | "never" => {
                off |= mask;
                on &= !mask;
            }
            _ => return None,
        }
    }
    Some((on, off))
}

static CMDLINE: Once<Cmdline> = Once::new();

/// The command line, read from fw_cfg on first use (empty without QEMU's
/// device or the file).
pub fn get() -> &'static Cmdline {
    CMDLINE.call_once(|| {
        let text = crate::qemu::fw_cfg_file(CMDLINE_FILE)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Cmdline::parse(&text)
    })
}

/// Applies the memory-management parameters to the shared `Vm` (before
/// any process runs: `page_mapcount` may change only while no large folio
/// is mapped).
pub fn apply_mm_params(c: &Cmdline) {
    use core::sync::atomic::Ordering::Relaxed;
    let vm = crate::process::vm();
    if c.no_page_mapcount {
        vm.no_page_mapcount.store(true, Relaxed);
        log::info!("mm: large folios keep no per-page mapcounts (page_mapcount=off)");
    }
    if let Some(on) = c.pt_reclaim {
        vm.pt_reclaim.store(on, Relaxed);
    }
    if let Some((on, off)) = c.thp_anon {
        // Order 0 always stays (the fallback).
        let orders = (vm.anon_orders.load(Relaxed) | on) & !off | 1;
        vm.anon_orders.store(orders, Relaxed);
        log::info!("mm: anonymous folio orders {orders:#x} (thp_anon=)");
    }
}
