//! Disk scenarios whose load generator is the disk's own client: fio and sysbench writing
//! synchronously (each write waits for the device), and the control, fio paced far below
//! what the device sustains. Third-party generators only; the oracle is their own report
//! (IOPS, completion latency) and `/proc/pressure/io`.
use std::process::Command;

use super::{Ctx, LabError, Setup, step, tool};

/// A file of 64 MiB written at random 4 KiB offsets.
const SIZE: &str = "64M";

/// fio writing 256 KiB blocks at random offsets with O_DIRECT and O_SYNC, `extra` appended (a
/// rate limit). Large direct writes keep the job's own CPU per write (the file system's
/// journal and the syscall, about a third of its time for 4 KiB blocks on this VM's fast
/// virtual disk) well under the time the device takes.
fn fio_sync_writes(ctx: &Ctx, extra: &[&str]) -> Result<Setup, LabError> {
    let file = ctx.dir.join("fio.dat");
    let mut command = vec![
        tool("fio")?,
        "--name=sync-writes".into(),
        "--rw=randwrite".into(),
        "--bs=256k".into(),
        "--direct=1".into(),
        "--sync=1".into(),
        format!("--size={SIZE}"),
        "--time_based".into(),
        format!("--runtime={}", ctx.seconds),
        format!("--filename={}", file.display()),
    ];
    command.extend(extra.iter().map(|s| s.to_string()));
    Ok(Setup {
        command,
        ..Default::default()
    })
}

/// fio, one job, every write synchronous: the job spends most of its time in
/// uninterruptible waits for the device.
pub(super) fn disk_bound_fio(ctx: &Ctx) -> Result<Setup, LabError> {
    fio_sync_writes(ctx, &[])
}

/// The control: the same synchronous writes paced at 100 a second (`--rate_iops`), about a
/// tenth of what the device sustains: each write still waits for the disk, but the job waits
/// on its own pacing most of the time.
pub(super) fn disk_paced_fio(ctx: &Ctx) -> Result<Setup, LabError> {
    fio_sync_writes(ctx, &["--rate_iops=100"])
}

/// sysbench's file I/O test, random writes with an fsync after every one, one thread; its
/// files prepared beforehand in the scenario's directory (the run reads them from there).
pub(super) fn disk_bound_sysbench(ctx: &Ctx) -> Result<Setup, LabError> {
    let sysbench = tool("sysbench")?;
    let common = [
        "fileio".to_string(),
        format!("--file-total-size={SIZE}"),
        "--file-num=4".into(),
    ];
    step(
        "sysbench fileio prepare",
        Command::new(&sysbench)
            .current_dir(ctx.dir)
            .args(&common)
            .arg("prepare"),
    )?;
    // sysbench finds its files in its working directory: a shell enters it and execs sysbench
    // (a wrapper, never the workload).
    let run = format!(
        "cd '{}' && exec '{sysbench}' {} --file-test-mode=rndwr --file-fsync-freq=1 --threads=1 --time={} run",
        ctx.dir.display(),
        common.join(" "),
        ctx.seconds
    );
    Ok(Setup {
        command: vec![tool("sh")?, "-c".into(), run],
        ..Default::default()
    })
}
