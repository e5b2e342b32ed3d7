//! The tracepoints chokepoint attaches, the fields each program reads, and how their offsets
//! are resolved into the programs' read-only data.
use std::path::{Path, PathBuf};

use chokepoint_common::TracepointOffsets;

use super::format::{Format, FormatError};

/// Where tracefs is normally mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// What a probe family measures; a failure to attach one names the family in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    ConnectionSetup,
    Cpu,
}

/// A field a program reads: name, and the sizes it may have (the program reads exactly one).
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub size: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Tracepoint {
    pub group: &'static str,
    pub name: &'static str,
    /// The program's function name in the kernel object.
    pub program: &'static str,
    pub family: Family,
    pub fields: &'static [FieldSpec],
}

const fn f(name: &'static str, size: u32) -> FieldSpec {
    FieldSpec { name, size }
}

/// Every tracepoint chokepoint uses, in attach order.
pub const TRACEPOINTS: &[Tracepoint] = &[
    Tracepoint {
        group: "sock",
        name: "inet_sock_set_state",
        program: "inet_sock_set_state",
        family: Family::ConnectionSetup,
        fields: &[
            f("skaddr", 8),
            f("oldstate", 4),
            f("newstate", 4),
            f("sport", 2),
            f("dport", 2),
            f("family", 2),
            f("protocol", 2),
        ],
    },
    Tracepoint {
        group: "tcp",
        name: "tcp_retransmit_skb",
        program: "tcp_retransmit_skb",
        family: Family::ConnectionSetup,
        fields: &[f("state", 4)],
    },
    Tracepoint {
        group: "tcp",
        name: "tcp_retransmit_synack",
        program: "tcp_retransmit_synack",
        family: Family::ConnectionSetup,
        fields: &[],
    },
    Tracepoint {
        group: "tcp",
        name: "tcp_send_reset",
        program: "tcp_send_reset",
        family: Family::ConnectionSetup,
        fields: &[],
    },
    Tracepoint {
        group: "tcp",
        name: "tcp_receive_reset",
        program: "tcp_receive_reset",
        family: Family::ConnectionSetup,
        fields: &[],
    },
    Tracepoint {
        group: "skb",
        name: "kfree_skb",
        program: "kfree_skb",
        family: Family::ConnectionSetup,
        fields: &[f("reason", 4)],
    },
    Tracepoint {
        group: "sched",
        name: "sched_switch",
        program: "sched_switch",
        family: Family::Cpu,
        fields: &[f("prev_comm", 16), f("prev_pid", 4), f("prev_state", 8), f("next_pid", 4)],
    },
    Tracepoint {
        group: "sched",
        name: "sched_wakeup",
        program: "sched_wakeup",
        family: Family::Cpu,
        fields: &[f("pid", 4)],
    },
    Tracepoint {
        group: "sched",
        name: "sched_wakeup_new",
        program: "sched_wakeup_new",
        family: Family::Cpu,
        fields: &[f("pid", 4)],
    },
    Tracepoint {
        group: "sched",
        name: "sched_process_fork",
        program: "sched_process_fork",
        family: Family::Cpu,
        fields: &[f("child_pid", 4)],
    },
    Tracepoint {
        group: "sched",
        name: "sched_process_exit",
        program: "sched_process_exit",
        family: Family::Cpu,
        fields: &[f("pid", 4)],
    },
];

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("tracepoint {group}/{name} is not available: {source}")]
    Missing {
        group: &'static str,
        name: &'static str,
        #[source]
        source: FormatError,
    },
    #[error("tracepoint {group}/{name} has no field `{field}`")]
    NoField { group: &'static str, name: &'static str, field: &'static str },
    #[error("tracepoint {group}/{name} field `{field}` is {actual} bytes, expected {expected}")]
    WrongSize {
        group: &'static str,
        name: &'static str,
        field: &'static str,
        actual: u32,
        expected: u32,
    },
}

impl Tracepoint {
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }

    pub fn format_path(&self, tracefs: &Path) -> PathBuf {
        tracefs.join("events").join(self.group).join(self.name).join("format")
    }

    /// Reads this kernel's layout and checks every field the program needs.
    pub fn layout(&self, tracefs: &Path) -> Result<Format, LayoutError> {
        let (group, name) = (self.group, self.name);
        let format = Format::read(&self.format_path(tracefs))
            .map_err(|source| LayoutError::Missing { group, name, source })?;
        for spec in self.fields {
            let field = format
                .fields
                .get(spec.name)
                .ok_or(LayoutError::NoField { group, name, field: spec.name })?;
            if field.size != spec.size {
                return Err(LayoutError::WrongSize {
                    group,
                    name,
                    field: spec.name,
                    actual: field.size,
                    expected: spec.size,
                });
            }
        }
        Ok(format)
    }
}

/// Fills the programs' offsets from the layouts that were read. A tracepoint missing from
/// `layouts` leaves its offsets at zero: its program is then not attached.
pub fn offsets(layouts: &[(Tracepoint, Format)]) -> TracepointOffsets {
    let mut o = TracepointOffsets::default();
    for (tp, format) in layouts {
        let at = |field: &str| format.fields.get(field).map_or(0, |f| f.offset);
        match tp.name {
            "inet_sock_set_state" => {
                o.set_state_skaddr = at("skaddr");
                o.set_state_oldstate = at("oldstate");
                o.set_state_newstate = at("newstate");
                o.set_state_sport = at("sport");
                o.set_state_dport = at("dport");
                o.set_state_family = at("family");
                o.set_state_protocol = at("protocol");
            }
            "tcp_retransmit_skb" => o.retransmit_skb_state = at("state"),
            "kfree_skb" => o.kfree_skb_reason = at("reason"),
            "sched_switch" => {
                o.switch_prev_pid = at("prev_pid");
                o.switch_prev_state = at("prev_state");
                o.switch_prev_comm = at("prev_comm");
                o.switch_next_pid = at("next_pid");
            }
            "sched_wakeup" | "sched_wakeup_new" => o.wakeup_pid = at("pid"),
            "sched_process_fork" => o.fork_child_pid = at("child_pid"),
            "sched_process_exit" => o.exit_pid = at("pid"),
            _ => {}
        }
    }
    o
}

/// `enum skb_drop_reason` names from the kfree_skb format's `__print_symbolic` table, so drop
/// reasons are named as this kernel names them.
pub fn drop_reason_names(tracefs: &Path) -> Vec<(u32, String)> {
    let path = tracefs.join("events/skb/kfree_skb/format");
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    parse_symbolic(&text)
}

fn parse_symbolic(text: &str) -> Vec<(u32, String)> {
    let Some(start) = text.find("__print_symbolic(") else { return Vec::new() };
    let mut out = Vec::new();
    for chunk in text[start..].split('{').skip(1) {
        let Some(end) = chunk.find('}') else { continue };
        let mut parts = chunk[..end].splitn(2, ',');
        let (Some(num), Some(name)) = (parts.next(), parts.next()) else { continue };
        if let Ok(num) = num.trim().parse::<u32>() {
            out.push((num, name.trim().trim_matches('"').to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_table_is_parsed() {
        let t = r#"print fmt: "reason: %s", __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" })"#;
        assert_eq!(
            parse_symbolic(t),
            vec![(2, "NOT_SPECIFIED".to_string()), (3, "NO_SOCKET".to_string())]
        );
    }

    #[test]
    fn every_program_reads_declared_fields_only() {
        for tp in TRACEPOINTS {
            assert!(!tp.program.is_empty());
            for field in tp.fields {
                assert!(field.size > 0, "{} {}", tp.id(), field.name);
            }
        }
    }
}
