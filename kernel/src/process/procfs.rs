//! The `/proc/self` files a process can open, in Linux's formats
//! (`fs/proc/array.c`, `fs/proc/task_mmu.c`): the contents are generated at
//! `open` and read from that snapshot, as a `seq_file` read in one go.
//!
//! - `/proc/self/status`: Name, State, Pid, PPid and the memory lines
//!   (`VmSize`, `VmRSS`, `VmData`, `VmStk`, `VmExe`, `VmPTE`).
//! - `/proc/self/maps`: one line per VMA,
//!   `start-end perms offset dev inode  [name]`.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use mm::vm::VmFlags;

use super::Process;

/// The generated contents of `path` for process `p`, or `None` if there is
/// no such file.
pub fn generate(p: &Process, path: &[u8]) -> Option<Vec<u8>> {
    let text = match path {
        b"/proc/self/status" => status(p),
        b"/proc/self/maps" => maps(p),
        _ => return None,
    };
    Some(text.into_bytes())
}

fn status(p: &Process) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Name:\t{}", p.comm);
    let _ = writeln!(s, "State:\tR (running)");
    let _ = writeln!(s, "Tgid:\t{}", p.pid);
    let _ = writeln!(s, "Pid:\t{}", p.pid);
    let _ = writeln!(s, "PPid:\t0");
    if let Some(mm) = p.mm() {
        let st = mm.status();
        for (name, kb) in [
            ("VmSize", st.vm_size),
            ("VmRSS", st.vm_rss),
            ("VmData", st.vm_data),
            ("VmStk", st.vm_stk),
            ("VmExe", st.vm_exe),
            ("VmPTE", st.vm_pte),
        ] {
            let _ = writeln!(s, "{name}:\t{kb:>8} kB");
        }
    }
    let _ = writeln!(s, "Threads:\t1");
    s
}

fn maps(p: &Process) -> String {
    let mut s = String::new();
    let Some(mm) = p.mm() else {
        return s;
    };
    let heap = p.brk_range();
    for v in mm.vmas() {
        let f = v.flags;
        let perm = |flag, c| if f.contains(flag) { c } else { '-' };
        let line_start = s.len();
        let _ = write!(
            s,
            "{:08x}-{:08x} {}{}{}{} {:08x} 00:00 0",
            v.start,
            v.end,
            perm(VmFlags::READ, 'r'),
            perm(VmFlags::WRITE, 'w'),
            perm(VmFlags::EXEC, 'x'),
            if f.contains(VmFlags::SHARED) {
                's'
            } else {
                'p'
            },
            if f.contains(VmFlags::GROWSDOWN) {
                0
            } else {
                v.pgoff << mm::PAGE_SHIFT
            },
        );
        let name = if f.contains(VmFlags::GROWSDOWN) {
            Some("[stack]")
        } else if heap.start < heap.end && v.start >= heap.start && v.end <= heap.end {
            Some("[heap]")
        } else {
            None
        };
        if let Some(name) = name {
            // Linux pads the name to column 73.
            while s.len() - line_start < 73 {
                s.push(' ');
            }
            s.push_str(name);
        }
        s.push('\n');
    }
    s
}
