//! Raw input files: compression detection, checksums, and reading in chunks of whole lines so
//! that parsing can run in parallel while every error still names its exact line.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{DatasetError, Progress};

/// Compression of a raw input file, detected from its first bytes (not its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Uncompressed text.
    Plain,
    /// gzip (`.gz`).
    Gzip,
    /// Zstandard (`.zst`).
    Zstd,
}

/// Where a prepared dataset came from, recorded in its manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The raw file as it was given to `prepare`.
    pub path: String,
    /// Its compression.
    pub format: InputFormat,
    /// Size of the file as stored (compressed where it is).
    pub bytes: u64,
    /// SHA-256 of the stored file; absent when reading stopped early (`--max-rows`).
    pub sha256: Option<String>,
}

/// Target size of one chunk of lines: large enough to amortise the per-chunk work, small enough
/// that a batch of chunks per core keeps memory flat.
const CHUNK_BYTES: usize = 4 << 20;

/// Longest line accepted; anything longer is not a data row.
const MAX_LINE_BYTES: usize = 64 << 20;

/// What a pass has seen of the stored file: its size so far and, if asked for, its hash.
#[derive(Default)]
struct Tally {
    bytes: u64,
    hasher: Option<Sha256>,
}

impl Tally {
    fn add(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(bytes);
        }
    }
}

/// Reads the stored file, keeping the tally and reporting progress.
struct Meter<'a> {
    file: File,
    tally: Arc<Mutex<Tally>>,
    progress: &'a dyn Progress,
}

impl Read for Meter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.tally.lock().expect("tally lock").add(&buf[..n]);
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// A block of complete lines from the input, with the number of its first line.
pub(crate) struct Chunk {
    pub first_line: u64,
    pub data: Vec<u8>,
}

impl Chunk {
    /// The lines of the chunk with their 1-based line numbers, without `\n` or `\r\n`.
    pub(crate) fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let body = self.data.strip_suffix(b"\n").unwrap_or(&self.data);
        body.split(|&b| b == b'\n')
            .enumerate()
            .map(move |(i, line)| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                (self.first_line + i as u64, line)
            })
    }
}

/// Reads a raw text file (plain, gzip or zstd) as a sequence of [`Chunk`]s of whole lines.
pub(crate) struct LineReader<'a> {
    path: PathBuf,
    format: InputFormat,
    stored_bytes: u64,
    reader: Box<dyn Read + Send + 'a>,
    tally: Arc<Mutex<Tally>>,
    carry: Vec<u8>,
    next_line: u64,
    at_eof: bool,
}

impl<'a> LineReader<'a> {
    /// Opens `path`; with `checksum`, the stored bytes are hashed as they are read.
    pub(crate) fn open(
        path: &Path,
        checksum: bool,
        progress: &'a dyn Progress,
    ) -> Result<Self, DatasetError> {
        let mut file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
        let metadata = file.metadata().map_err(|e| DatasetError::io(path, e))?;
        if metadata.is_dir() {
            return Err(DatasetError::invalid(
                path,
                "is a directory, expected a file",
            ));
        }
        let mut magic = [0u8; 4];
        let magic_len = read_up_to(&mut file, &mut magic).map_err(|e| DatasetError::io(path, e))?;
        let format = match &magic[..magic_len] {
            [0x1f, 0x8b, ..] => InputFormat::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd] => InputFormat::Zstd,
            _ => InputFormat::Plain,
        };
        let mut tally = Tally {
            bytes: 0,
            hasher: checksum.then(Sha256::new),
        };
        tally.add(&magic[..magic_len]);
        let tally = Arc::new(Mutex::new(tally));
        progress.advance(magic_len as u64);
        let meter = std::io::Cursor::new(magic[..magic_len].to_vec()).chain(Meter {
            file,
            tally: tally.clone(),
            progress,
        });
        let reader: Box<dyn Read + Send + 'a> = match format {
            InputFormat::Plain => Box::new(meter),
            InputFormat::Gzip => Box::new(flate2::read::MultiGzDecoder::new(meter)),
            InputFormat::Zstd => Box::new(
                zstd::stream::read::Decoder::new(meter).map_err(|e| DatasetError::io(path, e))?,
            ),
        };
        Ok(Self {
            path: path.to_path_buf(),
            format,
            stored_bytes: metadata.len(),
            reader,
            tally,
            carry: Vec::new(),
            next_line: 1,
            at_eof: false,
        })
    }

    /// Size of the file as stored, for progress totals.
    pub(crate) fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    /// The next block of whole lines, or `None` at the end of the file.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Chunk>, DatasetError> {
        if self.at_eof {
            return Ok(None);
        }
        let mut data = std::mem::take(&mut self.carry);
        data.reserve(CHUNK_BYTES + CHUNK_BYTES / 8);
        loop {
            let filled = data.len();
            data.resize(filled + CHUNK_BYTES.max(1 << 16) / 4, 0);
            let n = self
                .reader
                .read(&mut data[filled..])
                .map_err(|e| DatasetError::io(&self.path, e))?;
            data.truncate(filled + n);
            if n == 0 {
                self.at_eof = true;
                break;
            }
            if data.len() >= CHUNK_BYTES {
                if let Some(last_newline) = memchr::memrchr(b'\n', &data) {
                    self.carry = data.split_off(last_newline + 1);
                    break;
                }
                if data.len() > MAX_LINE_BYTES {
                    return Err(DatasetError::Malformed {
                        path: self.path.clone(),
                        line: self.next_line,
                        message: format!(
                            "line longer than {MAX_LINE_BYTES} bytes (not a text file?)"
                        ),
                    });
                }
            }
        }
        if data.is_empty() {
            return Ok(None);
        }
        let first_line = self.next_line;
        self.next_line += memchr::memchr_iter(b'\n', &data).count() as u64;
        if self.at_eof && !data.ends_with(b"\n") {
            self.next_line += 1;
        }
        Ok(Some(Chunk { first_line, data }))
    }

    /// Reads up to `count` chunks: the unit of parallel work.
    pub(crate) fn next_batch(&mut self, count: usize) -> Result<Vec<Chunk>, DatasetError> {
        let mut batch = Vec::with_capacity(count);
        while batch.len() < count {
            match self.next_chunk()? {
                Some(chunk) => batch.push(chunk),
                None => break,
            }
        }
        Ok(batch)
    }

    /// What the manifest records about this source; the checksum only if all of it was read.
    pub(crate) fn source_info(&mut self) -> SourceInfo {
        let mut tally = self.tally.lock().expect("tally lock");
        let complete = self.at_eof && tally.bytes == self.stored_bytes;
        let sha256 = tally.hasher.take().filter(|_| complete).map(|hasher| {
            let digest = hasher.finalize();
            digest.iter().map(|b| format!("{b:02x}")).collect()
        });
        SourceInfo {
            path: self.path.display().to_string(),
            format: self.format,
            bytes: self.stored_bytes,
            sha256,
        }
    }
}

/// Number of chunks parsed together: enough to keep every core busy.
pub(crate) fn batch_width() -> usize {
    2 * rayon::current_num_threads()
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
