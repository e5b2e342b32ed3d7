//! What the host is, read once at start for the recording's header: CPU model, memory and
//! OS (through `sysinfo`), so reports and the JSON say which machine measured what.
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::recording::Inventory;

pub fn read() -> Inventory {
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let cpu_model = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|b| !b.is_empty());
    let memory_bytes = Some(sys.total_memory()).filter(|&m| m > 0);
    Inventory {
        cpu_model,
        memory_bytes,
        os: System::long_os_version(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_host_has_memory_and_an_os() {
        let inv = super::read();
        let meminfo = std::fs::read_to_string("/proc/meminfo").expect("procfs");
        let total_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("MemTotal");
        assert_eq!(inv.memory_bytes, Some(total_kib * 1024));
        assert!(inv.os.is_some_and(|o| !o.is_empty()));
    }
}
