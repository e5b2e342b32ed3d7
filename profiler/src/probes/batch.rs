//! Batched reads and deletes of hash maps (`BPF_MAP_LOOKUP_BATCH`, `BPF_MAP_DELETE_BATCH`,
//! Linux 5.6+). A key-by-key walk costs two system calls an entry (the next key, then its
//! value) and a delete one more: under connection churn the sockets table holds thousands of
//! entries at a sample's end, and walking it was most of the recorder's map-reading time. A
//! batch reads whole hash buckets a call.
//!
//! aya (0.14) has no batch operations; these are the two commands on the map's own fd. Where
//! the kernel refuses them (`EINVAL` before 5.6, or a map type without them), the caller walks
//! the keys as before.
use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd},
};

use aya::Pod;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// The batch member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: `attr` is a batch `bpf_attr`; its pointers are null or point to buffers of
    // `count` keys (and values) of the map's sizes that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            size_of::<BatchAttr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn zeroed<T: Pod>(n: usize) -> Vec<T> {
    // SAFETY: `Pod` types are valid for any bit pattern, zeros included.
    vec![unsafe { std::mem::zeroed::<T>() }; n]
}

/// Entries a call to begin with; grown when one hash bucket holds more (`ENOSPC`).
const CHUNK: usize = 512;

/// Appends every entry of a hash map (not per-CPU: one value an entry) of `K` keys and `V`
/// values to `out`. An error where the kernel refuses batches: nothing is appended then.
pub fn lookup_all<K: Pod, V: Pod>(fd: BorrowedFd<'_>, out: &mut Vec<(K, V)>) -> io::Result<()> {
    let mut chunk = CHUNK;
    let (mut keys, mut values) = (zeroed::<K>(chunk), zeroed::<V>(chunk));
    // The kernel's position between calls (a bucket index for hash maps, 4 bytes; 8 here).
    let (mut position, mut next) = (0u64, 0u64);
    let mut first = true;
    let start = out.len();
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &position as *const u64 as u64
            },
            out_batch: &mut next as *mut u64 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..Default::default()
        };
        let done = match bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) {
            Ok(()) => false,
            // The end of the map (the last entries are in this call's buffers).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            // One bucket holds more entries than a call takes: again, larger.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && chunk < 1 << 20 => {
                chunk *= 4;
                keys = zeroed(chunk);
                values = zeroed(chunk);
                continue;
            }
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        let n = (attr.count as usize).min(chunk);
        out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
        if done {
            return Ok(());
        }
        position = next;
        first = false;
    }
}

/// Deletes `keys` from a map in as few calls as it takes (a key already gone is skipped: the
/// kernel stops a batch at the first key it cannot delete). How many were deleted; an error
/// where the kernel refuses batches before deleting any.
pub fn delete<K: Pod>(fd: BorrowedFd<'_>, keys: &[K]) -> io::Result<usize> {
    let (mut at, mut deleted) = (0, 0);
    while at < keys.len() {
        let rest = &keys[at..];
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            count: rest.len() as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..Default::default()
        };
        let r = bpf(BPF_MAP_DELETE_BATCH, &mut attr);
        let n = (attr.count as usize).min(rest.len());
        deleted += n;
        match r {
            Ok(()) => return Ok(deleted),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => at += n + 1,
            Err(e) if deleted == 0 && at == 0 => return Err(e),
            // Deleted what it could; the rest is left to the next read.
            Err(_) => return Ok(deleted),
        }
    }
    Ok(deleted)
}
