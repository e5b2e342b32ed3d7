//! The daemon's command-line clients: `chokepoint mark` and `chokepoint ctl`, which talk to
//! the control socket (HTTP/1.1 over the Unix socket, hyper's client).
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, body::Bytes};
use hyper_util::rt::TokioIo;

use super::DEFAULT_SOCKET;

/// `chokepoint mark`.
#[derive(Debug, clap::Args)]
pub struct MarkArgs {
    /// What changed, e.g. "stage 3: 1000 VUs" (one line, at most 1024 bytes).
    pub text: String,
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET, env = "CHOKEPOINT_SOCKET")]
    pub socket: PathBuf,
}

/// `chokepoint ctl`.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    #[command(subcommand)]
    pub command: CtlCommand,
    /// The daemon's control socket.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET, env = "CHOKEPOINT_SOCKET")]
    pub socket: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// Start a named recording (NAME.rec in the daemon's --dir).
    Start { name: String },
    /// Stop a named recording once the interval under way is written; prints its path.
    Stop { name: String },
    /// The daemon: open recordings, recent marks, what is attached.
    Status,
    /// The last interval's figures.
    Figures,
    /// The rolling verdict over the last intervals.
    Verdict,
}

/// One request to the daemon: the status and the JSON body. A status of 400 and up is an
/// error carrying the daemon's own message.
pub async fn call(
    socket: &Path,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| {
            format!(
                "no chokepoint daemon answers at {} (start one with `chokepoint daemon`)",
                socket.display()
            )
        })?;
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "localhost")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .context("building the request")?;
    let (status, body) = exchange(stream, req)
        .await
        .context("talking to the daemon")?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    if status.as_u16() >= 400 {
        let msg = value
            .get("error")
            .and_then(|e| e.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        bail!("the daemon refused ({status}): {msg}");
    }
    Ok(value)
}

/// One HTTP/1.1 request over a connected stream: the answer's status and whole body (the
/// control client's and the OTLP exporter's).
pub async fn exchange<S>(
    stream: S,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(hyper::StatusCode, Bytes)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.context("sending")?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    Ok((status, body))
}

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(f)
}

pub fn run_mark(args: &MarkArgs) -> anyhow::Result<i32> {
    let text =
        super::api::check_mark(&args.text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    block_on(call(
        &args.socket,
        Method::POST,
        "/v1/marks",
        Some(serde_json::json!({ "text": text })),
    ))?;
    Ok(crate::cli::exit::OK)
}

pub fn run_ctl(args: &CtlArgs) -> anyhow::Result<i32> {
    let (method, path, body) = match &args.command {
        CtlCommand::Start { name } => (
            Method::POST,
            "/v1/recordings".to_string(),
            Some(serde_json::json!({ "name": name })),
        ),
        CtlCommand::Stop { name } => (
            Method::POST,
            format!("/v1/recordings/{}/stop", encode_segment(name)),
            None,
        ),
        CtlCommand::Status => (Method::GET, "/v1/status".into(), None),
        CtlCommand::Figures => (Method::GET, "/v1/figures".into(), None),
        CtlCommand::Verdict => (Method::GET, "/v1/verdict".into(), None),
    };
    let value = block_on(call(&args.socket, method, &path, body))?;
    let text = serde_json::to_string_pretty(&value).context("printing the answer")?;
    crate::outln!("{text}");
    Ok(crate::cli::exit::OK)
}

/// A name as one path segment (anything but unreserved characters percent-encoded).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}
