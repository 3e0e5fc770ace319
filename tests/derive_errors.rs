//! Misuses of `#[derive(Record)]` are compile errors that point at the user's token and
//! say what to write instead: the expected messages are in `tests/ui/*.stderr`.

#[test]
fn misuses_of_derive_record_are_compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
