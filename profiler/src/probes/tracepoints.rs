//! The tracepoints chokepoint attaches, the fields each program reads, and how their offsets
//! are resolved into the programs' read-only data.
use std::path::{Path, PathBuf};

use chokepoint_common::TracepointOffsets;

use super::format::{Format, FormatError};
use crate::recording::Family;

/// Where tracefs is normally mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";

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
    /// Has programs that read the tracepoint's own arguments instead of the trace record (no
    /// record to build): `<program>_btf` (`tp_btf`, plain loads through typed pointers), and
    /// `<program>_raw` (raw tracepoint, helper reads at BTF offsets) where the first is refused.
    pub raw: bool,
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
        raw: true,
    },
    Tracepoint {
        group: "tcp",
        name: "tcp_retransmit_skb",
        program: "tcp_retransmit_skb",
        family: Family::ConnectionSetup,
        fields: &[f("state", 4)],
        raw: false,
    },
    Tracepoint {
        group: "tcp",
        name: "tcp_retransmit_synack",
        program: "tcp_retransmit_synack",
        family: Family::ConnectionSetup,
        fields: &[],
        raw: false,
    },
    Tracepoint {
        group: "tcp",
        name: "tcp_send_reset",
        program: "tcp_send_reset",
        family: Family::ConnectionSetup,
        fields: &[],
        raw: false,
    },
    Tracepoint {
        group: "tcp",
        name: "tcp_receive_reset",
        program: "tcp_receive_reset",
        family: Family::ConnectionSetup,
        fields: &[],
        raw: false,
    },
    Tracepoint {
        group: "skb",
        name: "kfree_skb",
        program: "kfree_skb",
        family: Family::ConnectionSetup,
        fields: &[f("reason", 4)],
        raw: true,
    },
    Tracepoint {
        group: "sched",
        name: "sched_switch",
        program: "sched_switch",
        family: Family::Cpu,
        fields: &[
            f("prev_comm", 16),
            f("prev_pid", 4),
            f("prev_state", 8),
            f("next_pid", 4),
        ],
        raw: true,
    },
    Tracepoint {
        group: "sched",
        name: "sched_waking",
        program: "sched_waking",
        family: Family::Cpu,
        fields: &[f("pid", 4)],
        raw: true,
    },
    // Marks the wake-ups a sleeper's own timeout makes (`off_reason::TIMEOUT`).
    Tracepoint {
        group: "timer",
        name: "hrtimer_expire_entry",
        program: "hrtimer_expire_entry",
        family: Family::Cpu,
        fields: &[f("hrtimer", 8), f("function", 8)],
        raw: true,
    },
    Tracepoint {
        group: "sched",
        name: "sched_wakeup_new",
        program: "sched_wakeup_new",
        family: Family::Cpu,
        fields: &[f("pid", 4)],
        raw: true,
    },
    Tracepoint {
        group: "sched",
        name: "sched_process_fork",
        program: "sched_process_fork",
        family: Family::Cpu,
        fields: &[f("child_pid", 4)],
        raw: true,
    },
    Tracepoint {
        group: "sched",
        name: "sched_process_exit",
        program: "sched_process_exit",
        family: Family::Cpu,
        fields: &[f("pid", 4)],
        raw: true,
    },
    Tracepoint {
        group: "irq",
        name: "softirq_entry",
        program: "softirq_entry",
        family: Family::Cpu,
        fields: &[f("vec", 4)],
        raw: true,
    },
    Tracepoint {
        group: "irq",
        name: "softirq_exit",
        program: "softirq_exit",
        family: Family::Cpu,
        fields: &[f("vec", 4)],
        raw: true,
    },
    Tracepoint {
        group: "net",
        name: "net_dev_xmit",
        program: "net_dev_xmit",
        family: Family::NetworkPath,
        // `name` is a `__data_loc char[]`: a u32 locating the string in the record.
        fields: &[f("len", 4), f("name", 4)],
        raw: false,
    },
    Tracepoint {
        group: "net",
        name: "netif_receive_skb",
        program: "netif_receive_skb",
        family: Family::NetworkPath,
        fields: &[f("len", 4), f("name", 4)],
        raw: false,
    },
    Tracepoint {
        group: "net",
        name: "netif_rx",
        program: "netif_rx",
        family: Family::NetworkPath,
        fields: &[f("len", 4), f("name", 4)],
        raw: false,
    },
    Tracepoint {
        group: "sock",
        name: "sock_send_length",
        program: "sock_send_length",
        family: Family::ConnectionUse,
        fields: SOCK_LENGTH_FIELDS,
        raw: true,
    },
    Tracepoint {
        group: "sock",
        name: "sock_recv_length",
        program: "sock_recv_length",
        family: Family::ConnectionUse,
        fields: SOCK_LENGTH_FIELDS,
        raw: true,
    },
];

const SOCK_LENGTH_FIELDS: &[FieldSpec] = &[
    f("sk", 8),
    f("family", 2),
    f("protocol", 2),
    f("ret", 4),
    f("flags", 4),
];

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("tracepoint {group}/{name} is not available")]
    Missing {
        group: &'static str,
        name: &'static str,
        #[source]
        source: FormatError,
    },
    #[error("tracepoint {group}/{name} has no field `{field}`")]
    NoField {
        group: &'static str,
        name: &'static str,
        field: &'static str,
    },
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
        tracefs
            .join("events")
            .join(self.group)
            .join(self.name)
            .join("format")
    }

    /// Reads this kernel's layout and checks every field the program needs.
    pub fn layout(&self, tracefs: &Path) -> Result<Format, LayoutError> {
        let (group, name) = (self.group, self.name);
        let format =
            Format::read(&self.format_path(tracefs)).map_err(|source| LayoutError::Missing {
                group,
                name,
                source,
            })?;
        for spec in self.fields {
            let field = format.fields.get(spec.name).ok_or(LayoutError::NoField {
                group,
                name,
                field: spec.name,
            })?;
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

/// Where each (tracepoint, field) lives in `TracepointOffsets`.
type Slot = fn(&mut TracepointOffsets) -> &mut u32;
const SLOTS: &[(&str, &str, Slot)] = &[
    ("inet_sock_set_state", "skaddr", |o| &mut o.set_state_skaddr),
    ("inet_sock_set_state", "oldstate", |o| {
        &mut o.set_state_oldstate
    }),
    ("inet_sock_set_state", "newstate", |o| {
        &mut o.set_state_newstate
    }),
    ("inet_sock_set_state", "sport", |o| &mut o.set_state_sport),
    ("inet_sock_set_state", "dport", |o| &mut o.set_state_dport),
    ("inet_sock_set_state", "family", |o| &mut o.set_state_family),
    ("inet_sock_set_state", "protocol", |o| {
        &mut o.set_state_protocol
    }),
    ("tcp_retransmit_skb", "state", |o| {
        &mut o.retransmit_skb_state
    }),
    ("kfree_skb", "reason", |o| &mut o.kfree_skb_reason),
    ("sched_switch", "prev_pid", |o| &mut o.switch_prev_pid),
    ("sched_switch", "prev_state", |o| &mut o.switch_prev_state),
    ("sched_switch", "prev_comm", |o| &mut o.switch_prev_comm),
    ("sched_switch", "next_pid", |o| &mut o.switch_next_pid),
    ("sched_waking", "pid", |o| &mut o.wakeup_pid),
    ("sched_wakeup_new", "pid", |o| &mut o.wakeup_pid),
    ("sched_process_fork", "child_pid", |o| &mut o.fork_child_pid),
    ("sched_process_exit", "pid", |o| &mut o.exit_pid),
    ("hrtimer_expire_entry", "hrtimer", |o| &mut o.expire_hrtimer),
    ("hrtimer_expire_entry", "function", |o| {
        &mut o.expire_function
    }),
    ("softirq_entry", "vec", |o| &mut o.softirq_vec),
    ("softirq_exit", "vec", |o| &mut o.softirq_vec),
    ("net_dev_xmit", "len", |o| &mut o.net_xmit_len),
    ("net_dev_xmit", "name", |o| &mut o.net_xmit_name),
    ("netif_receive_skb", "len", |o| &mut o.net_receive_len),
    ("netif_receive_skb", "name", |o| &mut o.net_receive_name),
    ("netif_rx", "len", |o| &mut o.net_rx_len),
    ("netif_rx", "name", |o| &mut o.net_rx_name),
    ("sock_send_length", "sk", |o| &mut o.send_length_sk),
    ("sock_send_length", "family", |o| &mut o.send_length_family),
    ("sock_send_length", "protocol", |o| {
        &mut o.send_length_protocol
    }),
    ("sock_send_length", "ret", |o| &mut o.send_length_ret),
    ("sock_send_length", "flags", |o| &mut o.send_length_flags),
    ("sock_recv_length", "sk", |o| &mut o.recv_length_sk),
    ("sock_recv_length", "family", |o| &mut o.recv_length_family),
    ("sock_recv_length", "protocol", |o| {
        &mut o.recv_length_protocol
    }),
    ("sock_recv_length", "ret", |o| &mut o.recv_length_ret),
    ("sock_recv_length", "flags", |o| &mut o.recv_length_flags),
];

/// Fills the programs' offsets from the layouts that were read. A tracepoint missing from
/// `layouts` leaves its offsets at zero: its program is then not attached.
pub fn offsets(layouts: &[(Tracepoint, Format)]) -> TracepointOffsets {
    let mut o = TracepointOffsets::default();
    for (tp, format) in layouts {
        for (name, field, slot) in SLOTS.iter().filter(|s| s.0 == tp.name) {
            debug_assert_eq!(*name, tp.name);
            *slot(&mut o) = format.fields.get(*field).map_or(0, |f| f.offset);
        }
    }
    o
}

impl Tracepoint {
    /// Whether this kernel lays the record out as the fast program was compiled for.
    pub fn matches_built_layout(&self, format: &Format) -> bool {
        let mut built = chokepoint_common::BUILT_OFFSETS;
        SLOTS
            .iter()
            .filter(|s| s.0 == self.name)
            .all(|(_, field, slot)| {
                format.fields.get(*field).map(|f| f.offset) == Some(*slot(&mut built))
            })
    }

    /// The program to attach on this kernel: the fast one, or the `_compat` variant that reads
    /// fields at the offsets found at start-up.
    pub fn program_for(&self, format: &Format) -> String {
        if self.fields.is_empty() || self.matches_built_layout(format) {
            self.program.to_string()
        } else {
            format!("{}_compat", self.program)
        }
    }
}

/// `enum skb_drop_reason` names from the kfree_skb format's `__print_symbolic` table, so drop
/// reasons are named as this kernel names them.
pub fn drop_reason_names(tracefs: &Path) -> Vec<(u32, String)> {
    symbolic_names(tracefs, "skb/kfree_skb")
}

/// Drop reasons no device explains: the packet was dropped at a socket (its queue purged at
/// close, its buffer or filter, a closed TCP socket). The raw `kfree_skb` program counts them by
/// reason only, without reading the packet's device (`DROPS_WITHOUT_DEVICE`).
pub const SOCKET_LEVEL_DROPS: &[&str] = &[
    "QUEUE_PURGE",
    "SOCKET_CLOSE",
    "SOCKET_FILTER",
    "SOCKET_RCVBUFF",
    "SOCKET_BACKLOG",
    "TCP_CLOSE",
    "UNIX_DISCONNECT",
    "UNIX_SKIP_OOB",
];

/// The `DROPS_WITHOUT_DEVICE` bitmap (4 words of 64 reasons) of [`SOCKET_LEVEL_DROPS`] under
/// this kernel's numbering (`names`: reason -> name, from the `kfree_skb` format).
pub fn socket_level_drop_bits<'a>(
    names: impl IntoIterator<Item = (&'a u32, &'a String)>,
) -> [u64; 4] {
    let mut bits = [0u64; 4];
    for (&reason, name) in names {
        if SOCKET_LEVEL_DROPS.contains(&name.as_str()) && reason < 256 {
            bits[(reason / 64) as usize] |= 1 << (reason % 64);
        }
    }
    bits
}

/// Softirq vector names (`NET_RX`...) from the softirq_exit format.
pub fn softirq_names(tracefs: &Path) -> Vec<(u32, String)> {
    symbolic_names(tracefs, "irq/softirq_exit")
}

fn symbolic_names(tracefs: &Path, event: &str) -> Vec<(u32, String)> {
    let path = tracefs.join("events").join(event).join("format");
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    parse_symbolic(&text)
}

fn parse_symbolic(text: &str) -> Vec<(u32, String)> {
    let Some(start) = text.find("__print_symbolic(") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for chunk in text[start..].split('{').skip(1) {
        let Some(end) = chunk.find('}') else { continue };
        let mut parts = chunk[..end].splitn(2, ',');
        let (Some(num), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
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
    fn socket_level_drops_are_marked_under_this_kernels_numbering() {
        let names: std::collections::BTreeMap<u32, String> = [
            (2, "NOT_SPECIFIED"),
            (64, "QDISC_DROP"),
            (105, "QUEUE_PURGE"),
            (4, "SOCKET_CLOSE"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        let bits = socket_level_drop_bits(&names);
        assert_eq!(bits, [1 << 4, 1 << (105 - 64), 0, 0]);
    }

    #[test]
    fn no_program_of_the_table_hooks_a_system_call() {
        // Enabling any `syscalls:` tracepoint sends every system call of every task on the
        // host through the slow path: +60 ns a call measured here, about 0.6 µs a request
        // under connection churn, none of it in the programs' own run time. (The socket
        // system-call fallback, `socket_syscalls.rs`, attaches them only where the socket
        // tracepoints are missing.)
        for tp in TRACEPOINTS {
            assert_ne!(tp.group, "syscalls", "{}", tp.id());
        }
    }

    #[test]
    fn symbolic_table_is_parsed() {
        let t = r#"print fmt: "reason: %s", __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" })"#;
        assert_eq!(
            parse_symbolic(t),
            vec![
                (2, "NOT_SPECIFIED".to_string()),
                (3, "NO_SOCKET".to_string())
            ]
        );
    }

    #[test]
    fn built_layout_is_matched_field_by_field() {
        let tp = TRACEPOINTS
            .iter()
            .find(|t| t.name == "sched_switch")
            .expect("listed");
        let mut format = Format::default();
        for (name, offset) in [
            ("prev_comm", 8),
            ("prev_pid", 24),
            ("prev_state", 32),
            ("next_pid", 56),
        ] {
            format.fields.insert(
                name.into(),
                crate::probes::format::Field {
                    ctype: "int".into(),
                    offset,
                    size: 4,
                },
            );
        }
        assert!(tp.matches_built_layout(&format));
        assert_eq!(tp.program_for(&format), "sched_switch");
        format.fields.get_mut("next_pid").expect("present").offset = 60;
        assert!(!tp.matches_built_layout(&format));
        assert_eq!(tp.program_for(&format), "sched_switch_compat");
        let o = offsets(&[(*tp, format)]);
        assert_eq!((o.switch_next_pid, o.switch_prev_pid), (60, 24));
    }

    #[test]
    fn every_field_read_has_a_slot() {
        for tp in TRACEPOINTS {
            for f in tp.fields {
                assert!(
                    SLOTS.iter().any(|s| s.0 == tp.name && s.1 == f.name),
                    "{} {}",
                    tp.id(),
                    f.name
                );
            }
        }
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
