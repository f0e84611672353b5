//! The smaller memory APIs: memory-deny-write-execute (`map_deny_write_exec`
//! in mmap and mprotect, inheritance over fork).

use super::tests::with_mm;
use super::*;
use crate::errno::Errno;

const R: Prot = Prot::READ;
const RW: Prot = Prot::READ.union(Prot::WRITE);
const RX: Prot = Prot::READ.union(Prot::EXEC);
const RWX: Prot = RW.union(Prot::EXEC);
const ANON: MapFlags = MapFlags::PRIVATE.union(MapFlags::ANONYMOUS);
const PG: u64 = PAGE_SIZE;

#[test]
fn mdwe_rule_is_linuxs_map_deny_write_exec() {
    let on = MmFlags::HAS_MDWE;
    let (x, w, rx, rwx) = (
        VmFlags::EXEC,
        VmFlags::WRITE,
        VmFlags::READ | VmFlags::EXEC,
        VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC,
    );
    assert!(!map_deny_write_exec(MmFlags::empty(), w, rwx), "off");
    assert!(!map_deny_write_exec(on, rx, rx), "exec kept");
    assert!(!map_deny_write_exec(on, rwx, w), "exec dropped");
    assert!(map_deny_write_exec(on, rwx, rwx), "write+exec");
    assert!(map_deny_write_exec(on, w, x), "exec gained");
    assert!(map_deny_write_exec(on, VmFlags::READ, rx), "exec gained");
}

#[test]
fn mdwe_refuses_exec_gain_in_mmap_and_mprotect() {
    with_mm(|mm| {
        // Before MDWE anything goes.
        let a = mm.mmap(0, PG, RWX, ANON, -1, 0).unwrap();
        mm.set_mm_flags(MmFlags::HAS_MDWE);
        assert_eq!(mm.mmap(0, PG, RWX, ANON, -1, 0), Err(Errno::EACCES));
        assert_eq!(
            mm.mmap(0, PG, Prot::WRITE | Prot::EXEC, ANON, -1, 0),
            Err(Errno::EACCES)
        );
        // Executable from the start and never writable: allowed.
        let x = mm.mmap(0, PG, RX, ANON, -1, 0).unwrap();
        assert_eq!(mm.mprotect(x, PG, RX), Ok(()));
        assert_eq!(mm.mprotect(x, PG, RWX), Err(Errno::EACCES));
        // Dropping exec is fine; getting it back is not.
        assert_eq!(mm.mprotect(x, PG, R), Ok(()));
        assert_eq!(mm.mprotect(x, PG, RX), Err(Errno::EACCES));
        let d = mm.mmap(0, 2 * PG, RW, ANON, -1, 0).unwrap();
        assert_eq!(mm.mprotect(d, PG, RX), Err(Errno::EACCES));
        assert_eq!(
            mm.vma_lookup(d).unwrap().flags & VmFlags::ACCESS,
            VmFlags::READ | VmFlags::WRITE
        );
        // The RWX mapping from before keeps working: exec kept, write dropped.
        assert_eq!(mm.mprotect(a, PG, RX), Ok(()));
        assert_eq!(mm.mprotect(a, PG, RWX), Err(Errno::EACCES));
        // A refused mmap left nothing behind.
        assert_eq!(mm.map_count(), 3);
    });
}

#[test]
fn mdwe_passes_to_a_fork_child_unless_no_inherit() {
    with_mm(|mm| {
        let c0 = mm.fork().unwrap();
        assert_eq!(c0.mm_flags(), MmFlags::empty());
        mm.set_mm_flags(MmFlags::HAS_MDWE);
        let c1 = mm.fork().unwrap();
        assert_eq!(c1.mm_flags(), MmFlags::HAS_MDWE);
        assert_eq!(c1.mmap(0, PG, RWX, ANON, -1, 0), Err(Errno::EACCES));
        mm.set_mm_flags(MmFlags::HAS_MDWE_NO_INHERIT);
        let c2 = mm.fork().unwrap();
        assert_eq!(c2.mm_flags(), MmFlags::empty());
        assert!(c2.mmap(0, PG, RWX, ANON, -1, 0).is_ok());
        assert_eq!(
            (MmFlags::HAS_MDWE | MmFlags::HAS_MDWE_NO_INHERIT).init(),
            MmFlags::empty()
        );
        assert_eq!(MmFlags::HAS_MDWE.init(), MmFlags::HAS_MDWE);
    });
}
