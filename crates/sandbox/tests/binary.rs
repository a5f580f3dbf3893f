//! The `portal-sandbox` binary's output when it is not a terminal (`just dev` writes it to a
//! file): plain text, no ANSI colour codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn piped_output_has_no_colour_codes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portal-sandbox"))
        .env_clear()
        .env("SANDBOX_PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the sandbox starts");
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .take(20)
    {
        let line = line.unwrap();
        let listening = line.contains("portal-sandbox listening");
        lines.push(line);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines
            .last()
            .is_some_and(|l| l.contains("portal-sandbox listening")),
        "{lines:#?}"
    );
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "no escape codes: {line:?}");
    }
}
