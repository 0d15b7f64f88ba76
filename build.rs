// Build facts for `get_server_info` and `--version`: git commit, build date (honours
// SOURCE_DATE_EPOCH for reproducible Yocto/Buildroot builds) and the compiler version.
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = std::env::var("CS_BUILD_GIT_COMMIT")
        .ok()
        .or_else(|| run("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok());
    let date = match epoch {
        Some(e) => run("date", &["-u", "-d", &format!("@{e}"), "+%Y-%m-%dT%H:%M:%SZ"]),
        None => run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
    }
    .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = run(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CS_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=CS_BUILD_DATE={date}");
    println!("cargo:rustc-env=CS_RUSTC_VERSION={rustc_version}");
    println!("cargo:rerun-if-env-changed=CS_BUILD_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=.git/HEAD");
}
