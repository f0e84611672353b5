fn main() {
    let out = boot::run(&boot::QemuConfig::new(boot::KTEST_BIOS_IMAGE)).unwrap();
    assert!(out.verdict.is_success());
}
