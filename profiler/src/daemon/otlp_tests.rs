#![allow(clippy::unwrap_used)]
use std::time::Duration;

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest, metrics::v1::metric,
};
use prost::Message;

use std::collections::BTreeMap;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use super::*;
use crate::{
    analysis::fixtures,
    daemon::metrics::Metrics,
    recording::{Interval, Role},
};

fn interval() -> Interval {
    let mut iv = fixtures::interval(0, 0.5);
    iv.tcp.active_opens = 7;
    iv.tcp.passive_opens = 300;
    iv.drops.insert("NO_SOCKET".into(), 4);
    let mut p = fixtures::process(10, "nginx", Role::Server, &[1.5]);
    p.runq_ns = 2_000_000;
    p.runq_latency.0[12] = 5; // 4-8 µs
    p.runq_latency.0[25] = 1; // ~33-67 ms
    p.offcpu_reason_ns.insert("futex".into(), 250_000_000);
    iv.processes.push(p);
    iv
}

fn registry_text() -> String {
    let mut m = Metrics::new();
    m.observe(&interval());
    m.observe(&interval());
    m.encode()
}

#[test]
fn every_registry_family_reads_back_from_the_text() {
    let text = registry_text();
    let families = parse_text(&text);
    let find = |n: &str| families.iter().find(|f| f.name == n).unwrap();
    let opens = find("chokepoint_tcp_passive_opens");
    assert_eq!(opens.kind, "counter");
    assert_eq!(opens.samples[0].0, "chokepoint_tcp_passive_opens_total");
    assert_eq!(opens.samples[0].2, 600.0);
    let drops = find("chokepoint_drops");
    assert_eq!(
        drops.samples[0].1,
        vec![("reason".to_string(), "NO_SOCKET".to_string())]
    );
    let runq = find("chokepoint_runqueue_wait_seconds");
    assert_eq!(runq.kind, "histogram");
    assert_eq!(runq.unit, "seconds");
    // Every sample line of the text landed in some family.
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    assert_eq!(
        families.iter().map(|f| f.samples.len()).sum::<usize>(),
        samples
    );
}

#[test]
fn labels_with_escapes_and_spaces_read_back() {
    let f = parse_text(
        "# TYPE x counter\nx_total{a=\"b c\",q=\"say \\\"hi\\\"\",n=\"1\\n2\"} 3\n# EOF\n",
    );
    assert_eq!(
        f[0].samples[0].1,
        vec![
            ("a".to_string(), "b c".to_string()),
            ("q".to_string(), "say \"hi\"".to_string()),
            ("n".to_string(), "1\n2".to_string())
        ]
    );
    assert!(
        parse_text("x_total{a=b} 3\n")
            .iter()
            .all(|f| f.samples.is_empty())
    );
}

#[test]
fn names_translate_back_to_the_prometheus_names() {
    let fam = |name: &str, unit: &str| TextFamily {
        name: name.into(),
        unit: unit.into(),
        ..Default::default()
    };
    assert_eq!(
        otel_name(&fam("chokepoint_offcpu_seconds", "seconds")),
        ("chokepoint.offcpu".into(), "s".into())
    );
    assert_eq!(
        otel_name(&fam("chokepoint_host_cpu_busy_ratio", "")),
        ("chokepoint.host_cpu_busy".into(), "1".into())
    );
    assert_eq!(
        otel_name(&fam("chokepoint_tcp_active_opens", "")),
        ("chokepoint.tcp_active_opens".into(), "".into())
    );
}

#[test]
fn the_request_carries_the_registry_figures_through_protobuf() {
    let text = registry_text();
    let req = request(&text, "host-a", 1, 2);
    // Through the wire format and back, as a receiver sees it.
    let bytes = req.encode_to_vec();
    let back = ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(back, req);
    let flat = flatten(&back);
    assert_eq!(flat["chokepoint.tcp_passive_opens"], 600.0);
    assert_eq!(flat["chokepoint.tcp_active_opens"], 14.0);
    assert_eq!(flat["chokepoint.drops{reason=NO_SOCKET}"], 8.0);
    assert!((flat["chokepoint.offcpu{reason=futex}"] - 0.5).abs() < 1e-9);
    assert!((flat["chokepoint.service_cpu{service=nginx}"] - 3.0).abs() < 1e-9);
    let rm = &back.resource_metrics[0];
    let attrs = flatten_attrs(rm.resource.as_ref().unwrap());
    assert!(attrs.contains(&("host.name".into(), "host-a".into())));
    let metrics = &rm.scope_metrics[0].metrics;
    let runq = metrics
        .iter()
        .find(|m| m.name == "chokepoint.runqueue_wait")
        .unwrap();
    assert_eq!(runq.unit, "s");
    let Some(metric::Data::Histogram(h)) = &runq.data else {
        panic!("not a histogram: {runq:?}");
    };
    let p = &h.data_points[0];
    assert_eq!(p.count, 12);
    assert_eq!(p.bucket_counts.iter().sum::<u64>(), 12);
    assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
    assert!((p.sum.unwrap() - 0.004).abs() < 1e-9);
    let opens = metrics
        .iter()
        .find(|m| m.name == "chokepoint.tcp_passive_opens")
        .unwrap();
    let Some(metric::Data::Sum(s)) = &opens.data else {
        panic!("not a sum");
    };
    assert!(s.is_monotonic);
    assert_eq!(
        s.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    assert_eq!(s.data_points[0].start_time_unix_nano, 1);
    assert_eq!(s.data_points[0].time_unix_nano, 2);
}

fn flatten_attrs(r: &Resource) -> Vec<(String, String)> {
    r.attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                _ => String::new(),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

#[test]
fn endpoints_parse_and_https_is_refused_with_a_way_out() {
    assert_eq!(
        parse_endpoint("http://127.0.0.1:4318").unwrap(),
        Endpoint {
            authority: "127.0.0.1:4318".into(),
            path: "/v1/metrics".into()
        }
    );
    assert_eq!(
        parse_endpoint("http://collector:4318/custom/metrics")
            .unwrap()
            .path,
        "/custom/metrics"
    );
    assert!(
        parse_endpoint("https://x:4318")
            .unwrap_err()
            .contains("http://127.0.0.1:4318")
    );
    assert!(parse_endpoint("127.0.0.1:4318").is_err());
    assert!(parse_endpoint("http://collector").is_err());
}

#[test]
fn backoff_doubles_and_is_capped() {
    let i = Duration::from_secs(10);
    assert_eq!(backoff(i, 0), i);
    assert_eq!(backoff(i, 1), Duration::from_secs(20));
    assert_eq!(backoff(i, 3), Duration::from_secs(80));
    assert_eq!(backoff(i, 40), MAX_BACKOFF);
}

/// A receiver that decodes what it gets, as a collector would: the first request arrives
/// decoded, and an endpoint that refuses connections is counted as failed and retried while
/// the caller goes on.
#[tokio::test]
async fn a_receiver_decodes_the_export_and_a_dead_endpoint_is_counted() {
    use hyper::{Response, server::conn::http1, service::service_fn};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(http1::Builder::new().serve_connection(
                TokioIo::new(stream),
                service_fn(move |req: Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let decoded = ExportMetricsServiceRequest::decode(body).unwrap();
                        tx.send((path, decoded)).unwrap();
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                }),
            ));
        }
    });
    let status = SharedStatus::default();
    let text = registry_text();
    let task = tokio::spawn(run(
        parse_endpoint(&format!("http://{addr}")).unwrap(),
        Duration::from_millis(20),
        "host-b".into(),
        5,
        move || text.clone(),
        status.clone(),
    ));
    let (path, got) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    task.abort();
    assert_eq!(path, "/v1/metrics");
    assert_eq!(flatten(&got)["chokepoint.tcp_passive_opens"], 600.0);

    // Nothing listens here: every attempt fails, is counted, and backs off.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let status = SharedStatus::default();
    let task = tokio::spawn(run(
        parse_endpoint(&format!("http://{dead_addr}")).unwrap(),
        Duration::from_millis(10),
        "host-b".into(),
        5,
        String::new,
        status.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    task.abort();
    let s = status.lock().unwrap().clone();
    assert!(s.failed >= 2, "{s:?}");
    assert_eq!(s.exported, 0);
    assert_eq!(s.failing_in_a_row, s.failed);
    assert!(s.last_error.unwrap().contains("connecting to"));
    assert!(s.backoff_seconds.unwrap() > 0.01);
}

/// The figures of one request by OTel metric name and attributes, for tests and checks:
/// `name{k=v,...}` → value (sums and gauges; a histogram gives its count).
fn flatten(req: &ExportMetricsServiceRequest) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let key = |name: &str, attrs: &[KeyValue]| {
        let labels: Vec<String> = attrs
            .iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    _ => String::new(),
                };
                format!("{}={v}", kv.key)
            })
            .collect();
        if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{}}}", labels.join(","))
        }
    };
    let value = |p: &NumberDataPoint| match p.value {
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        Some(number_data_point::Value::AsDouble(d)) => d,
        None => f64::NAN,
    };
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                match &m.data {
                    Some(metric::Data::Sum(s)) => {
                        for p in &s.data_points {
                            out.insert(key(&m.name, &p.attributes), value(p));
                        }
                    }
                    Some(metric::Data::Gauge(g)) => {
                        for p in &g.data_points {
                            out.insert(key(&m.name, &p.attributes), value(p));
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        for p in &h.data_points {
                            out.insert(key(&m.name, &p.attributes), p.count as f64);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}
