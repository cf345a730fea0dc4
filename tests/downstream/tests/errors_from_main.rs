//! An error returned from a user's `main` reads as a message: Rust prints
//! `Error: {:?}`, and kiln's `Debug` is the message, not the variant's fields.

#[test]
fn an_error_returned_from_main_prints_its_message() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fails"))
        .output()
        .expect("run the fails binary");
    assert!(!out.status.success(), "the binary should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "Error: batch size mismatch in cross_entropy: logits has 2 samples but labels has 3",
    );
}
