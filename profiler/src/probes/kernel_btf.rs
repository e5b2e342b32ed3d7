//! Offsets of kernel struct members from the running kernel's BTF (`/sys/kernel/btf/vmlinux`):
//! what lets the programs read a task's own accounting instead of rebuilding it from events.
use std::path::Path;

use btf_rs::{Btf, Type};
use chokepoint_common::KernelOffsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: btf_rs::Error,
    },
    #[error("struct {0} is not in the kernel's BTF")]
    NoStruct(String),
    #[error("{0} has no member {1}")]
    NoMember(String, String),
    #[error("{0} is a bit field")]
    BitField(String),
    #[error("BTF: {0}")]
    Btf(#[from] btf_rs::Error),
}

/// The offsets the programs use, from the BTF file at `path`.
pub fn kernel_offsets(path: &Path) -> Result<KernelOffsets, BtfError> {
    let btf = Btf::from_file(path).map_err(|source| BtfError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(KernelOffsets {
        task_sum_exec_runtime: member_offset(&btf, "task_struct", &["se", "sum_exec_runtime"])?,
        task_pid: member_offset(&btf, "task_struct", &["pid"])?,
        task_comm: member_offset(&btf, "task_struct", &["comm"])?,
        // Absent without CONFIG_IPV6: IPv6 sockets are then known by their ports only.
        sock_v6_daddr: optional(&btf, "sock_common", &["skc_v6_daddr"]),
        sock_v6_rcv_saddr: optional(&btf, "sock_common", &["skc_v6_rcv_saddr"]),
        // Only the system-call fallback of the connection-use programs needs these.
        task_files: optional(&btf, "task_struct", &["files"]),
        files_fdt: optional(&btf, "files_struct", &["fdt"]),
        fdtable_fd: optional(&btf, "fdtable", &["fd"]),
        file_private_data: optional(&btf, "file", &["private_data"]),
        socket_file: optional(&btf, "socket", &["file"]),
        socket_sk: optional(&btf, "socket", &["sk"]),
        sock_family: optional(&btf, "sock_common", &["skc_family"]),
        sock_protocol: optional(&btf, "sock", &["sk_protocol"]),
        // Names the device of a dropped packet (raw kfree_skb).
        skb_dev: optional(&btf, "sk_buff", &["dev"]),
        netdev_name: optional(&btf, "net_device", &["name"]),
        // Tells a wait its own timeout ended (the timer program).
        hrtimer_function: optional(&btf, "hrtimer", &["function"]),
        hrtimer_sleeper_task: optional(&btf, "hrtimer_sleeper", &["task"]),
    })
}

/// An offset whose absence only disables what needs it (0).
fn optional(btf: &Btf, strukt: &str, path: &[&str]) -> u32 {
    member_offset(btf, strukt, path).unwrap_or(0)
}

/// Byte offset of `strukt.path[0].path[1]...`, looking through anonymous struct and union
/// members on the way (the kernel wraps many fields in them).
pub fn member_offset(btf: &Btf, strukt: &str, path: &[&str]) -> Result<u32, BtfError> {
    let mut ty = btf
        .resolve_types_by_name(strukt)
        .map_err(|_| BtfError::NoStruct(strukt.into()))?
        .into_iter()
        .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))
        .ok_or_else(|| BtfError::NoStruct(strukt.into()))?;
    let mut offset = 0;
    let mut name = strukt.to_string();
    for member in path {
        let (bits, next) = find_member(btf, &ty, member)?
            .ok_or_else(|| BtfError::NoMember(name.clone(), (*member).into()))?;
        name = format!("{name}.{member}");
        if bits % 8 != 0 {
            return Err(BtfError::BitField(name));
        }
        offset += bits / 8;
        ty = next;
    }
    Ok(offset)
}

/// (bit offset, type) of member `name` in `ty`, searching anonymous members too.
fn find_member(btf: &Btf, ty: &Type, name: &str) -> Result<Option<(u32, Type)>, BtfError> {
    let members = match ty {
        Type::Struct(s) | Type::Union(s) => &s.members,
        _ => return Ok(None),
    };
    for m in members {
        let member_name = btf.resolve_name(m).unwrap_or_default();
        let member_ty = strip(btf, btf.resolve_chained_type(m)?)?;
        if member_name == name {
            if m.bitfield_size().is_some_and(|s| s != 0) {
                return Err(BtfError::BitField(name.into()));
            }
            return Ok(Some((m.bit_offset(), member_ty)));
        }
        if member_name.is_empty()
            && let Some((bits, t)) = find_member(btf, &member_ty, name)?
        {
            return Ok(Some((m.bit_offset() + bits, t)));
        }
    }
    Ok(None)
}

/// Looks through typedefs and qualifiers to the type they name.
fn strip(btf: &Btf, mut ty: Type) -> Result<Type, BtfError> {
    loop {
        ty = match &ty {
            Type::Typedef(t) => btf.resolve_chained_type(t)?,
            Type::Const(t) => btf.resolve_chained_type(t)?,
            Type::Volatile(t) => btf.resolve_chained_type(t)?,
            Type::Restrict(t) => btf.resolve_chained_type(t)?,
            Type::TypeTag(t) => btf.resolve_chained_type(t)?,
            _ => return Ok(ty),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The machines chokepoint targets (and CI) run kernels with BTF; these read the real one.
    fn vmlinux() -> Btf {
        Btf::from_file(VMLINUX_BTF).expect("this kernel exposes BTF")
    }

    #[test]
    fn finds_the_run_time_total_of_a_task_inside_its_sched_entity() {
        let btf = vmlinux();
        let se = member_offset(&btf, "task_struct", &["se"]).expect("task_struct.se");
        let sum = member_offset(&btf, "sched_entity", &["sum_exec_runtime"]).expect("sum");
        let both = member_offset(&btf, "task_struct", &["se", "sum_exec_runtime"]).expect("path");
        assert_eq!(both, se + sum);
        assert!(
            se > 0 && both.is_multiple_of(8),
            "se at {se}, sum_exec_runtime at {both}"
        );
    }

    #[test]
    fn looks_through_anonymous_unions() {
        // `struct sock_common` keeps its addresses and ports inside anonymous unions.
        let btf = vmlinux();
        let dport = member_offset(&btf, "sock_common", &["skc_dport"]).expect("skc_dport");
        let daddr = member_offset(&btf, "sock_common", &["skc_daddr"]).expect("skc_daddr");
        // The layout the socket programs were written against (Linux 6.x).
        assert_eq!((daddr, dport), (0, 12));
    }

    #[test]
    fn this_kernel_offers_the_fd_to_socket_walk() {
        let k = kernel_offsets(Path::new(VMLINUX_BTF)).expect("offsets");
        assert!(k.has_fd_walk(), "{k:?}");
        // skc_family follows skc_daddr, skc_rcv_saddr, skc_hash, skc_dport and skc_num.
        assert_eq!(k.sock_family, 16);
    }

    #[test]
    fn names_what_is_missing() {
        let btf = vmlinux();
        let e = member_offset(&btf, "task_struct", &["se", "no_such_member"])
            .expect_err("no such member");
        assert_eq!(e.to_string(), "task_struct.se has no member no_such_member");
        let e = member_offset(&btf, "no_such_struct_xyz", &["a"]).expect_err("no such struct");
        assert_eq!(
            e.to_string(),
            "struct no_such_struct_xyz is not in the kernel's BTF"
        );
        let e = kernel_offsets(Path::new("/nonexistent/vmlinux")).expect_err("no file");
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/vmlinux"),
            "{e}"
        );
    }
}
