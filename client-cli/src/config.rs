//! The user's config file: the server, token file, CA certificate and
//! database a user would otherwise repeat on every command, with named
//! profiles for several servers.
//!
//! ```toml
//! # ~/.config/retake/config.toml
//! server = "https://retake.internal:50051"
//! token_file = "~/.config/retake/token"
//! ca_cert = "ca.pem"                 # relative to this file
//!
//! [profile.local]
//! server = ""                        # none: the engine in this process
//! db = "~/retake/retake.db"
//! ```
//!
//! The file is `$RETAKE_CONFIG`, else `$XDG_CONFIG_HOME/retake/config.toml`,
//! else `~/.config/retake/config.toml`. A flag or an environment variable
//! wins over the profile chosen with `--profile` (or `RETAKE_PROFILE`),
//! which wins over the file's top-level values.

use crate::cli::GlobalArgs;
use clap::parser::ValueSource;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    server: Option<String>,
    token_file: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
    db: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: Option<String>,
    token_file: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
    db: Option<PathBuf>,
    #[serde(default)]
    profile: BTreeMap<String, Profile>,
}

/// Where the config file is, whether or not it exists.
pub fn path() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(file) = var("RETAKE_CONFIG") {
        return Some(PathBuf::from(file));
    }
    let base = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("retake").join("config.toml"))
}

/// Fills in `global` what the command line and environment left unset,
/// from the config file's `profile` (when given) and its top level.
/// Errors name the file and what is wrong with it.
pub fn apply(
    global: &mut GlobalArgs,
    matches: &clap::ArgMatches,
    profile: Option<&str>,
) -> Result<(), String> {
    let Some(path) = path() else {
        return match profile {
            Some(name) => Err(format!(
                "--profile {name}: no config file (set HOME, XDG_CONFIG_HOME or RETAKE_CONFIG)"
            )),
            None => Ok(()),
        };
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && profile.is_none() => return Ok(()),
        Err(e) => {
            return Err(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ));
        }
    };
    let file: ConfigFile =
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    let chosen = match profile {
        Some(name) => Some(file.profile.get(name).ok_or_else(|| {
            let known: Vec<&str> = file.profile.keys().map(String::as_str).collect();
            format!(
                "--profile {name}: {} defines no such profile (it has: {})",
                path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })?),
        None => None,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let pick = |from_profile: Option<&PathBuf>, top: &Option<PathBuf>| {
        from_profile.or(top.as_ref()).map(|p| resolve(dir, p))
    };
    // A global option given after a command is that command's: look
    // down the chain of commands too.
    let unset = |id: &str| {
        let mut level = Some(matches);
        while let Some(m) = level {
            let given = m.try_contains_id(id).unwrap_or(false)
                && !matches!(m.value_source(id), None | Some(ValueSource::DefaultValue));
            if given {
                return false;
            }
            level = m.subcommand().map(|(_, sub)| sub);
        }
        true
    };
    if unset("server")
        && let Some(server) = chosen.and_then(|p| p.server.clone()).or(file.server)
    {
        global.server = Some(server);
    }
    if unset("token_file") && unset("token") {
        global.token_file = pick(chosen.and_then(|p| p.token_file.as_ref()), &file.token_file)
            .or(global.token_file.take());
    }
    if unset("ca_cert") {
        global.ca_cert =
            pick(chosen.and_then(|p| p.ca_cert.as_ref()), &file.ca_cert).or(global.ca_cert.take());
    }
    if unset("db")
        && let Some(db) = pick(chosen.and_then(|p| p.db.as_ref()), &file.db)
    {
        global.db = db;
    }
    Ok(())
}

/// `~/x` from the home directory, a relative path from the config file's
/// directory.
fn resolve(dir: &Path, path: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if path.is_relative() {
        dir.join(path)
    } else {
        path.to_path_buf()
    }
}
