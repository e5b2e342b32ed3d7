//! The daemon's parts without the kernel: the hub fed synthetic intervals, the metrics text,
//! and the control API answering malformed requests. The live daemon (real probes, a real
//! Prometheus scraping it) is tested in tests/e2e/daemon.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode},
};
use tower::ServiceExt;

use super::{
    api,
    hub::{Hub, HubError, HubSink},
    metrics::{MAX_SERVICES, Metrics},
    parse_listen, parse_loopback,
};
use crate::{
    analysis::fixtures::{header, interval, process},
    recording::{Recording, Role},
    session::{MarkSender, Sink},
};

fn hub(
    dir: &std::path::Path,
) -> (
    Arc<Mutex<Hub>>,
    tokio::sync::mpsc::Receiver<crate::recording::Mark>,
) {
    let (marks, rx) = MarkSender::channel();
    (
        Arc::new(Mutex::new(Hub::new(header(), dir.to_path_buf(), 5, marks))),
        rx,
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_named_recording_holds_the_intervals_between_start_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, _rx) = hub(dir.path());
    let rt = runtime();
    rt.block_on(async {
        let mut sink = HubSink(shared.clone());
        let nginx = |i| {
            let mut iv = interval(i, 0.5);
            iv.processes = vec![process(40, "nginx", Role::Server, &[0.4])];
            iv.tcp.active_opens = 7;
            iv
        };
        sink.interval(&nginx(0));
        let path = shared.lock().unwrap().start("stage-1").unwrap();
        assert!(matches!(
            shared.lock().unwrap().start("stage-1"),
            Err(HubError::Open(_))
        ));
        assert!(matches!(
            shared.lock().unwrap().start("../x"),
            Err(HubError::BadName(_))
        ));
        sink.interval(&nginx(1));
        sink.interval(&nginx(2));
        let rx = shared.lock().unwrap().stop("stage-1").unwrap();
        sink.interval(&nginx(3));
        let stopped = rx.await.unwrap();
        assert!(stopped.complete);
        assert_eq!(stopped.intervals, 3);
        assert_eq!(stopped.path, path);
        // Its file is a recording like any other, numbered from 0, nginx described in it.
        let rec = Recording::read(&path).unwrap();
        let idx: Vec<u32> = rec.intervals.iter().map(|i| i.index).collect();
        assert_eq!(idx, vec![0, 1, 2]);
        assert!(rec.end.is_some());
        assert!(matches!(
            shared.lock().unwrap().start("stage-1"),
            Err(HubError::Exists(_))
        ));
        assert!(matches!(
            shared.lock().unwrap().stop("stage-1"),
            Err(HubError::Unknown(_))
        ));
        // The window keeps its last 5 intervals only.
        for i in 4..20 {
            sink.interval(&nginx(i));
        }
        let status = shared.lock().unwrap().status();
        assert_eq!(status["window_intervals"], 5);
        assert_eq!(status["intervals_read"], 20);
    });
}

#[test]
fn counters_export_in_base_units_with_total_and_bounded_service_labels() {
    let mut m = Metrics::new();
    let mut iv = interval(0, 0.5);
    iv.tcp.active_opens = 5;
    iv.tcp.passive_opens = 4;
    iv.processes = (0..MAX_SERVICES as u32 + 10)
        .map(|i| process(100 + i, &format!("svc{i}"), Role::Server, &[0.1]))
        .collect();
    m.observe(&iv);
    m.observe(&iv);
    let text = m.encode();
    assert!(
        text.contains("chokepoint_tcp_active_opens_total 10\n"),
        "{text}"
    );
    assert!(text.contains("chokepoint_tcp_passive_opens_total 8\n"));
    assert!(text.contains("# TYPE chokepoint_runqueue_wait_seconds histogram"));
    assert!(text.trim_end().ends_with("# EOF"));
    let services: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("chokepoint_service_cpu_seconds_total{"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(services.contains("other"), "{services:?}");
    assert_eq!(services.len(), MAX_SERVICES + 1);
    assert!(!text.contains("pid"), "no pid labels");
}

async fn call(router: axum::Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let resp = router
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[test]
fn malformed_requests_get_a_4xx_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, mut rx) = hub(dir.path());
    let router = api::router(shared, std::time::Duration::from_millis(10));
    runtime().block_on(async {
        let cases = [
            (
                "POST",
                "/v1/recordings",
                "{not json",
                StatusCode::BAD_REQUEST,
            ),
            (
                "POST",
                "/v1/recordings",
                r#"{"name":"a","cmd":"rm -rf /"}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "POST",
                "/v1/recordings",
                r#"{"name":"../../etc/x"}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "POST",
                "/v1/recordings/nope/stop",
                "",
                StatusCode::NOT_FOUND,
            ),
            (
                "POST",
                "/v1/marks",
                r#"{"text":""}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "POST",
                "/v1/marks",
                r#"{"text":"a\nb"}"#,
                StatusCode::BAD_REQUEST,
            ),
            ("GET", "/v1/marks", "", StatusCode::METHOD_NOT_ALLOWED),
            ("GET", "/v1/figures", "", StatusCode::SERVICE_UNAVAILABLE),
            ("GET", "/v1/exec", "", StatusCode::NOT_FOUND),
        ];
        for (method, uri, body, want) in cases {
            let (status, text) = call(router.clone(), method, uri, body).await;
            assert_eq!(status, want, "{method} {uri} {body}: {text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{text}");
        }
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(api::MAX_MARK + 1));
        assert_eq!(
            call(router.clone(), "POST", "/v1/marks", &long).await.0,
            StatusCode::BAD_REQUEST
        );
        let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(64 * 1024));
        assert_eq!(
            call(router.clone(), "POST", "/v1/marks", &big).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        // A good mark reaches the session's queue.
        let (status, _) = call(
            router.clone(),
            "POST",
            "/v1/marks",
            r#"{"text":"stage 3: 1000 VUs"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(rx.try_recv().unwrap().text, "stage 3: 1000 VUs");
    });
}

#[test]
fn listen_addresses_default_to_loopback_and_the_api_refuses_others() {
    assert_eq!(parse_listen(":9464").unwrap().to_string(), "127.0.0.1:9464");
    assert_eq!(
        parse_listen("0.0.0.0:9464").unwrap().to_string(),
        "0.0.0.0:9464"
    );
    assert!(parse_listen("9464").is_err());
    assert!(parse_loopback("[::1]:9465").is_ok());
    assert!(parse_loopback("0.0.0.0:9465").is_err());
}
