//! Compile-time diagnostics of `#[flock_bird]`, checked against the expected
//! compiler output in `tests/ui/*.stderr` (regenerate with
//! `TRYBUILD=overwrite`; the output depends on the compiler version).

#[test]
fn flock_bird_mistakes_are_reported_clearly_and_correct_uses_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
