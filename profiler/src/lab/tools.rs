//! Where the lab's servers and load generators are installed.
use std::path::{Path, PathBuf};

/// Directories searched besides PATH: root's sbin directories may be missing from a user's PATH.
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// The full path of a tool, or None when it is not installed.
pub fn find(name: &str) -> Option<PathBuf> {
    if let Some(program) = name.strip_prefix("postgres:") {
        return postgres_bin(program);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// PostgreSQL's server programs live in a versioned directory outside PATH on Debian;
/// the newest installed version wins.
fn postgres_bin(name: &str) -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin").join(name)))
        })
        .filter(|(_, p)| is_executable(p))
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How a missing tool is installed, for the skip message.
pub fn display_name(name: &str) -> &str {
    name.strip_prefix("postgres:").unwrap_or(name)
}
