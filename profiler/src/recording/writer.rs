//! Appends lines to a recording, flushing each one.
use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use super::{End, Header, Interval, Line};

pub struct RecordingWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl RecordingWriter {
    /// Creates the file with mode 0600: a recording names processes and ports.
    pub fn create(path: &Path, header: &Header) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        let mut writer = Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        };
        writer.write(&Line::Header(header.clone()))?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn interval(&mut self, interval: &Interval) -> io::Result<()> {
        self.write(&Line::Interval(interval.clone()))
    }

    pub fn end(mut self, end: &End) -> io::Result<()> {
        self.write(&Line::End(end.clone()))?;
        self.out.get_ref().sync_all()
    }

    fn write(&mut self, line: &Line) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}
