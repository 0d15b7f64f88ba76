//! Shared by the benchmarks: start the service binary with a config file and learn its
//! address from the line it prints once listening.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `camera-service serve` (release build) and returns it with its `host:port`.
pub fn start_service(config: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_camera-service"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start camera-service");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .trim_start_matches("camera-service listening on ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    (child, addr)
}
