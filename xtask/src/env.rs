//! Where things live (workspace, target dir, the lasting chokepoint data dir) and the
//! environment every child command gets.
use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

pub fn home() -> PathBuf {
    env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// Lasting data of the set-up: the LLVM link dir for bpf-linker and the Python venv.
pub fn data_dir() -> PathBuf {
    home().join(".local/share/chokepoint")
}

pub fn venv_dir() -> PathBuf {
    data_dir().join("venv")
}

pub fn cargo_bin_dir() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map_or_else(|| home().join(".cargo"), PathBuf::from)
        .join("bin")
}

/// PATH with cargo's bin dir (bpf-linker, rustup), the sbin dirs (nginx, pgbouncer, bpftool)
/// and the venv's bin dir (k6, locust) added when missing.
pub fn path_var() -> OsString {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in [
        cargo_bin_dir(),
        PathBuf::from("/usr/local/sbin"),
        PathBuf::from("/usr/local/bin"),
        PathBuf::from("/usr/sbin"),
        PathBuf::from("/usr/bin"),
        PathBuf::from("/sbin"),
        PathBuf::from("/bin"),
        venv_dir().join("bin"),
    ] {
        if !dirs.contains(&extra) {
            dirs.push(extra);
        }
    }
    env::join_paths(dirs).unwrap_or_else(|_| env::var_os("PATH").unwrap_or_default())
}

/// Sets PATH for this process, so every child (and `which`) sees the same tools.
pub fn export_path() {
    // SAFETY: called once at start-up, before any thread is spawned.
    unsafe { env::set_var("PATH", path_var()) };
}

/// The cargo that runs us (rustup's proxy sets CARGO), else `cargo` from PATH.
pub fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// The target dir cargo uses for this workspace (honours CARGO_TARGET_DIR and config).
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running `cargo metadata`")?;
    if !out.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("`cargo metadata` printed no JSON")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` has no target_directory")
}

/// target/release/chokepoint, absolute.
pub fn chokepoint_release_bin() -> anyhow::Result<PathBuf> {
    Ok(target_dir()?.join("release/chokepoint"))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Arguments as a shell would need them typed (quoted when they hold spaces).
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
