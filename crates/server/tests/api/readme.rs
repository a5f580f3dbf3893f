//! README.md's walk-through, run as a new developer would: every ```sh block between the
//! `<!-- walk-through -->` markers, in order, in one bash (each block builds on the variables
//! of the ones before), against the `agent-portal` binary started with nothing configured
//! (on a free port instead of 8080: the blocks' `localhost:8080` is rewritten). Each block must
//! exit 0 (every command in it: `set -e`) and print what its text promises.

use crate::helpers::*;
use std::time::Duration;

fn walk_through() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let (_, rest) = readme
        .split_once("<!-- walk-through -->")
        .expect("the walk-through's start marker");
    let (section, _) = rest
        .split_once("<!-- /walk-through -->")
        .expect("the walk-through's end marker");
    section
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split_once("```").expect("a closed block").0.to_owned())
        .collect()
}

#[tokio::test]
async fn every_walk_through_block_runs_and_does_what_it_says() {
    let blocks = walk_through();
    assert!(
        blocks.len() >= 6,
        "the walk-through's blocks: {}",
        blocks.len()
    );
    let portal = start_portal(Vec::<(&str, &str)>::new());
    let mut script = String::from("set -eo pipefail\n");
    assert!(
        blocks[0].contains("http://localhost:8080"),
        "block 1 names the service as `cargo run` serves it"
    );
    for (i, block) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '@@ block {}'\n", i + 1));
        script.push_str(&block.replace("localhost:8080", &format!("localhost:{}", portal.port)));
    }
    let dir = std::env::temp_dir();
    let run = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the walk-through finishes within a minute")
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let reached = stdout
        .lines()
        .rfind(|l| l.starts_with("@@ block "))
        .unwrap_or("none")
        .to_owned();
    assert!(
        out.status.success(),
        "the walk-through failed in {reached} (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    // What each block's text promises.
    let output: Vec<&str> = stdout.split("@@ block ").skip(1).collect();
    assert_eq!(output.len(), blocks.len(), "{stdout}");
    let expect = |block: usize, parts: &[&str]| {
        for part in parts {
            assert!(
                output[block - 1].contains(part),
                "block {block} should print {part:?}:\n{}",
                output[block - 1]
            );
        }
    };
    expect(
        1,
        &["signed in as admin@acme.example; the browser lands on http://localhost:3000/dashboard"],
    );
    expect(2, &["\"email\":\"admin@acme.example\"", "\"csrfToken\":"]);
    expect(
        3,
        &[
            "\"totalMessages\"",
            "\"metrics\":",
            "\"conversation_id\"",
            "\"messages\":[",
        ],
    );
    expect(4, &["\"status\":\"queued\""]);
    expect(
        5,
        &[
            "send_ack",
            "message_update",
            "\"status\": \"delivered\"",
            "\"status\": \"read\"",
        ],
    );
    expect(
        6,
        &[
            "the browser lands on http://localhost:3000/onboarding",
            "\"genesys\":\"success\",\"whatsapp\":\"success\"",
            "/webhooks/genesys/",
            "\"onboardingRequired\":false",
        ],
    );
    assert!(
        !stderr.contains("curl:"),
        "no curl error on the way: {stderr}"
    );
}
