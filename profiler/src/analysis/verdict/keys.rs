//! Evidence keys as a stable name plus labels: `process.nginx[2902].cores` is the name
//! `process.cores` with the labels `{process: "nginx", pid: "2902"}`. The name never carries
//! a pid, a tid, a service or a device, so two runs (or an exporter) can match figures by it;
//! the key stays as it was (docs/json.md). Labels that differ from run to run by nature (pid,
//! tid) are named in `RUN_LABELS` so a comparison can leave them out.
use std::collections::BTreeMap;

/// Labels that name one run's process or thread, not a thing two runs share.
pub const RUN_LABELS: [&str; 2] = ["pid", "tid"];

/// A key's stable name and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stable {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// The families whose middle part is a label, and that label's name.
const LABELLED: &[(&str, &str)] = &[
    ("generator.thread", "thread"),
    ("process", "process"),
    ("thread", "thread"),
    ("service", "service"),
    ("pool", "pool"),
    ("cgroup", "cgroup"),
    ("send_limits", "port"),
    ("qdisc", "device"),
];

/// `comm[1234]` → (`comm`, 1234).
fn with_id(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_suffix(']')?;
    let open = inner.rfind('[')?;
    let id = &inner[open + 1..];
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| (&inner[..open], id))
}

/// Splits an evidence key into its stable name and labels (a key of no labelled family is
/// its own name, without labels).
pub fn stable(key: &str) -> Stable {
    for (family, label) in LABELLED {
        let Some(rest) = key.strip_prefix(family).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        // The field is the last part; what lies between is the label (it may hold dots: a
        // cgroup path, a device name).
        let Some((middle, field)) = rest.rsplit_once('.') else {
            continue;
        };
        if middle.is_empty() || field.is_empty() {
            continue;
        }
        let mut labels = BTreeMap::new();
        let id_label = if *label == "thread" { "tid" } else { "pid" };
        match (*family, with_id(middle)) {
            (_, Some((name, id))) => {
                labels.insert(label.to_string(), name.to_string());
                labels.insert(id_label.to_string(), id.to_string());
            }
            ("qdisc", None) => match middle.rsplit_once('.') {
                Some((device, handle)) => {
                    labels.insert("device".into(), device.into());
                    labels.insert("qdisc".into(), handle.into());
                }
                None => {
                    labels.insert("device".into(), middle.into());
                }
            },
            _ => {
                labels.insert(label.to_string(), middle.to_string());
            }
        }
        return Stable {
            name: format!("{family}.{field}"),
            labels,
        };
    }
    Stable {
        name: key.to_string(),
        labels: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_split_into_a_name_and_labels() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            (
                "process.nginx[2902].cores",
                "process.cores",
                &[("process", "nginx"), ("pid", "2902")],
            ),
            (
                "generator.thread.wrk[12021].core_share",
                "generator.thread.core_share",
                &[("thread", "wrk"), ("tid", "12021")],
            ),
            (
                "thread.redis-server[7].core_share",
                "thread.core_share",
                &[("thread", "redis-server"), ("tid", "7")],
            ),
            (
                "service.nginx.requests_waiting",
                "service.requests_waiting",
                &[("service", "nginx")],
            ),
            (
                "process.nginx.offcpu_write_per_s",
                "process.offcpu_write_per_s",
                &[("process", "nginx")],
            ),
            (
                "pool.wrk->nginx.utilisation",
                "pool.utilisation",
                &[("pool", "wrk->nginx")],
            ),
            (
                "cgroup./system.slice/x.service.used_cores",
                "cgroup.used_cores",
                &[("cgroup", "/system.slice/x.service")],
            ),
            (
                "send_limits.8080.limited_share",
                "send_limits.limited_share",
                &[("port", "8080")],
            ),
            (
                "qdisc.veth0.1:.rate",
                "qdisc.rate",
                &[("device", "veth0"), ("qdisc", "1:")],
            ),
            ("host.cpu_busy", "host.cpu_busy", &[]),
            ("tcp.opens_per_s", "tcp.opens_per_s", &[]),
            ("generator.cores", "generator.cores", &[]),
        ];
        for (key, name, want) in cases {
            let s = stable(key);
            assert_eq!(s.name, *name, "{key}");
            assert_eq!(s.labels, labels(want), "{key}");
        }
    }
}
