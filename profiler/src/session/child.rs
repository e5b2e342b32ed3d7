//! The load generator `run` starts: its own process group (so Ctrl-C reaches it once, through
//! us), its output passed through to ours and kept for the timeline readers.
use std::{
    process::Stdio,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    process::{Child, Command},
    task::JoinHandle,
};

/// Output kept for the timeline readers; more than this is passed through but not kept.
const KEEP_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("command `{0}` not found (not on PATH and not a file)")]
    NotFound(String),
    #[error("cannot start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct LoadCommand {
    pub child: Child,
    pub pid: u32,
    pub output: Arc<Mutex<Vec<u8>>>,
    copies: Vec<JoinHandle<()>>,
}

impl LoadCommand {
    pub fn spawn(argv: &[String]) -> Result<Self, SpawnError> {
        let program = argv
            .first()
            .ok_or_else(|| SpawnError::NotFound(String::new()))?;
        let mut cmd = Command::new(program);
        cmd.args(&argv[1..])
            .stdin(Stdio::inherit())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                SpawnError::NotFound(program.clone())
            } else {
                SpawnError::Spawn {
                    command: program.clone(),
                    source,
                }
            }
        })?;
        let pid = child.id().unwrap_or(0);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut copies = Vec::new();
        if let Some(out) = child.stdout.take() {
            copies.push(tokio::spawn(tee(out, tokio::io::stdout(), output.clone())));
        }
        if let Some(err) = child.stderr.take() {
            copies.push(tokio::spawn(tee(err, tokio::io::stderr(), output.clone())));
        }
        Ok(Self {
            child,
            pid,
            output,
            copies,
        })
    }

    /// Waits for the output copies to drain, returning what was kept.
    pub async fn finish_output(&mut self) -> Vec<u8> {
        for c in self.copies.drain(..) {
            let _ = c.await;
        }
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

async fn tee(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    keep: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = to.write_all(&buf[..n]).await;
        let _ = to.flush().await;
        if let Ok(mut k) = keep.lock()
            && k.len() + n <= KEEP_BYTES
        {
            k.extend_from_slice(&buf[..n]);
        }
    }
}

/// Sends `signal` to the command's whole process group (it leads its own group).
pub fn signal_group(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), signal);
}
