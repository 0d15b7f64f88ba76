//! Command line: `serve` (default), `check-config`, `token`, `keys ...`.

use crate::api::auth::{ApiKeyStore, JwtKey, Role};
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: camera-service [--config PATH] [COMMAND]

commands:
  serve                         run the service (default)
  check-config                  print the effective config (secrets redacted) or its errors
  token --role ROLE [--ttl D] [--user NAME]
                                mint a JWT (ROLE viewer|operator|admin, D like 24h; default 24h)
  keys create --role ROLE [--name NAME] [--ttl D]
                                create an API key; the key is printed once
  keys list                     list API keys (never the keys themselves)
  keys revoke ID                revoke a key
  keys rotate ID                revoke a key and create its replacement

options:
  --config PATH                 config file (default /etc/camera-service/config.toml)
  --version                     print version and exit
  --help                        print this help

Every config key can be overridden by CAMERA_SERVICE_<SECTION>_<KEY> (see docs/config.md).";

#[derive(Debug, PartialEq)]
pub enum Command {
    Serve,
    CheckConfig,
    Token {
        role: Role,
        ttl: Duration,
        user: String,
    },
    KeysCreate {
        role: Role,
        name: String,
        ttl: Option<Duration>,
    },
    KeysList,
    KeysRevoke(String),
    KeysRotate(String),
    Version,
    Help,
}

#[derive(Debug, PartialEq)]
pub struct Invocation {
    pub config: Option<PathBuf>,
    pub command: Command,
}

fn parse_role(v: Option<String>) -> Result<Role, String> {
    let v = v.ok_or("--role is required (viewer, operator or admin)")?;
    Role::parse(&v).ok_or_else(|| format!("--role must be viewer, operator or admin (got {v:?})"))
}

fn parse_ttl(v: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(v).map_err(|e| format!("--ttl {v:?}: {e} (use e.g. 30m, 24h, 7d)"))?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(10 * 365 * 86400) {
        return Err("--ttl must be between 1s and 10 years".into());
    }
    Ok(d)
}

pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Invocation, String> {
    let mut config = None;
    let mut words = Vec::new();
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--version" | "-V" => {
                return Ok(Invocation {
                    config,
                    command: Command::Version,
                })
            }
            "--help" | "-h" => {
                return Ok(Invocation {
                    config,
                    command: Command::Help,
                })
            }
            "--config" | "-c" => config = Some(PathBuf::from(it.next().ok_or("--config needs a path")?)),
            "--role" | "--ttl" | "--name" | "--user" => {
                flags.push((a.clone(), it.next().ok_or_else(|| format!("{a} needs a value"))?))
            }
            s if s.starts_with("--config=") => config = Some(PathBuf::from(&s["--config=".len()..])),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => words.push(a),
        }
    }
    let flag = |name: &str| flags.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let allow_flags = |allowed: &[&str]| -> Result<(), String> {
        match flags.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(format!("{k} is not an option of this command")),
            None => Ok(()),
        }
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let command = match words.as_slice() {
        [] | ["serve"] => {
            allow_flags(&[])?;
            Command::Serve
        }
        ["check-config"] => {
            allow_flags(&[])?;
            Command::CheckConfig
        }
        ["token"] => {
            allow_flags(&["--role", "--ttl", "--user"])?;
            Command::Token {
                role: parse_role(flag("--role"))?,
                ttl: parse_ttl(&flag("--ttl").unwrap_or_else(|| "24h".into()))?,
                user: flag("--user").unwrap_or_else(|| "cli".into()),
            }
        }
        ["keys", "create"] => {
            allow_flags(&["--role", "--ttl", "--name"])?;
            Command::KeysCreate {
                role: parse_role(flag("--role"))?,
                name: flag("--name").unwrap_or_else(|| "unnamed".into()),
                ttl: flag("--ttl").map(|t| parse_ttl(&t)).transpose()?,
            }
        }
        ["keys", "list"] => Command::KeysList,
        ["keys", "revoke", id] => Command::KeysRevoke(id.to_string()),
        ["keys", "rotate", id] => Command::KeysRotate(id.to_string()),
        ["keys", ..] => return Err("keys needs: create --role R | list | revoke ID | rotate ID".into()),
        other => return Err(format!("unknown command {:?}", other.join(" "))),
    };
    Ok(Invocation { config, command })
}

fn load_config(inv: &Invocation) -> Result<Config, String> {
    let (path, explicit) = match &inv.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    Config::load(&path, explicit, std::env::vars()).map_err(|e| e.to_string().trim_end().to_string())
}

fn fmt_time(unix: Option<i64>) -> String {
    unix.and_then(|u| time::OffsetDateTime::from_unix_timestamp(u).ok())
        .map(crate::clock::rfc3339)
        .unwrap_or_else(|| "-".into())
}

/// Runs the command; returns the process exit code.
pub fn run(inv: Invocation) -> i32 {
    match run_inner(inv) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("camera-service: {e}");
            1
        }
    }
}

fn run_inner(inv: Invocation) -> Result<(), String> {
    match &inv.command {
        Command::Help => {
            println!("{USAGE}");
            return Ok(());
        }
        Command::Version => {
            println!(
                "camera-service {} ({} {}, built {})",
                env!("CARGO_PKG_VERSION"),
                env!("CS_GIT_COMMIT"),
                std::env::consts::ARCH,
                env!("CS_BUILD_DATE")
            );
            return Ok(());
        }
        _ => {}
    }
    let config = load_config(&inv)?;
    let now = crate::clock::unix_now();
    match inv.command {
        Command::Serve => {
            crate::service::init_logging(&config);
            crate::service::serve(config)
        }
        Command::CheckConfig => {
            crate::service::load_jwt_secret(&config)?;
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        Command::Token { role, ttl, user } => {
            let secret = crate::service::load_jwt_secret(&config)?;
            println!(
                "{}",
                JwtKey::new(secret.expose().as_bytes()).mint(&user, role, ttl, now)
            );
            Ok(())
        }
        Command::KeysCreate { role, name, ttl } => {
            let (rec, plain) = ApiKeyStore::new(&config.security.api_keys_file)
                .create(&name, role, ttl, now)
                .map_err(|e| e.to_string())?;
            eprintln!(
                "created API key {} ({}, role {}, expires {}); store it now, it is not shown again:",
                rec.id,
                rec.name,
                rec.role.as_str(),
                fmt_time(rec.expires_at)
            );
            println!("{plain}");
            Ok(())
        }
        Command::KeysList => {
            let keys = ApiKeyStore::new(&config.security.api_keys_file)
                .list()
                .map_err(|e| e.to_string())?;
            println!(
                "{:<14} {:<16} {:<9} {:<12} {:<25} {:<25} STATE",
                "ID", "NAME", "ROLE", "KEY", "CREATED", "EXPIRES"
            );
            for k in keys {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else if !k.is_active(now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<14} {:<16} {:<9} {:<12} {:<25} {:<25} {}",
                    k.id,
                    k.name,
                    k.role.as_str(),
                    format!("{}…", k.hint),
                    fmt_time(Some(k.created_at)),
                    fmt_time(k.expires_at),
                    state
                );
            }
            Ok(())
        }
        Command::KeysRevoke(id) => {
            let rec = ApiKeyStore::new(&config.security.api_keys_file)
                .revoke(&id, now)
                .map_err(|e| e.to_string())?;
            println!("revoked {} ({})", rec.id, rec.name);
            Ok(())
        }
        Command::KeysRotate(id) => {
            let (rec, plain) = ApiKeyStore::new(&config.security.api_keys_file)
                .rotate(&id, now)
                .map_err(|e| e.to_string())?;
            eprintln!(
                "revoked {id}; its replacement is {} (role {}); store it now, it is not shown again:",
                rec.id,
                rec.role.as_str()
            );
            println!("{plain}");
            Ok(())
        }
        Command::Help | Command::Version => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn p(s: &str) -> Result<Invocation, String> {
        parse_args(s.split_whitespace().map(String::from))
    }
    #[test]
    fn parses_commands() {
        assert_eq!(p("").unwrap().command, Command::Serve);
        assert_eq!(
            p("--config /x.toml check-config").unwrap().config,
            Some(PathBuf::from("/x.toml"))
        );
        assert_eq!(
            p("token --role operator --ttl 1h").unwrap().command,
            Command::Token {
                role: Role::Operator,
                ttl: Duration::from_secs(3600),
                user: "cli".into()
            }
        );
        assert_eq!(
            p("keys revoke key_1").unwrap().command,
            Command::KeysRevoke("key_1".into())
        );
        assert!(p("token --role root").unwrap_err().contains("--role"));
        assert!(p("token").unwrap_err().contains("--role is required"));
        assert!(p("serve --role admin").is_err());
        assert!(p("frobnicate").is_err());
        assert!(p("token --role admin --ttl forever").unwrap_err().contains("--ttl"));
    }
}
