//! Parallel gunzip of a stream whose gzip members' lengths are known: the packer, which wrote
//! the members, reads its fresh bundle back this way before publishing it. Each member is
//! inflated on one of a few worker threads ([`crate::pool`]), with its CRC32 and ISIZE checked, and
//! the output comes out in order: the same bytes, and the same refusals, as a sequential
//! multi-member decoder, on every core. A member that does not end exactly where its length
//! says is damage, as is a stream longer or shorter than the lengths.
//!
//! A member is inflated by libdeflate in one call into a buffer of exactly its ISIZE (the
//! trailer's last field): no growing buffers, and about twice flate2's speed with a CRC32 done
//! with carry-less multiplication (measured on the packer's read-back: zlib-rs spent a third of
//! its time in a table-driven CRC32).

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc::Receiver;

use crate::pool::{Buffers, Pool};

use libdeflater::Decompressor;

/// Largest member this reader inflates: the packer writes 1 MiB blocks, so far more than this
/// is not one of its members.
const MEMBER_OUTPUT_LIMIT: u64 = 64 * 1024 * 1024;

/// A `Read` of the decompressed stream of `inner`, which holds the members of `lengths`.
///
/// The lengths may arrive as the stream is written (the packer reads its bundle back while
/// writing it, each member announced once it is in the file): the next length is asked for
/// only when its member is to be read, and `inner` is read no further than the lengths given.
pub struct ParallelGunzip<R: Read, L: Iterator<Item = u64>> {
    inner: R,
    lengths: L,
    workers: Pool,
    /// Members read go back here once inflated...
    members: Buffers,
    /// ...and what they inflated to once read (two lists: their sizes differ).
    outputs: Buffers,
    in_flight: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    current: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl<R: Read, L: Iterator<Item = u64>> ParallelGunzip<R, L> {
    /// Reads the members of `lengths` (their compressed sizes, in order) from `inner`, with up
    /// to `threads` members inflating at once.
    pub fn new(inner: R, lengths: impl IntoIterator<IntoIter = L>, threads: usize) -> Self {
        ParallelGunzip {
            inner,
            lengths: lengths.into_iter(),
            workers: Pool::new(threads, "gunzip"),
            members: Buffers::default(),
            outputs: Buffers::default(),
            in_flight: VecDeque::new(),
            current: Vec::new(),
            pos: 0,
            ended: false,
        }
    }

    /// The inner reader, once everything was read (the caller checks that it is at its end).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads members and sends them off until `threads` are in flight or none is left.
    fn fill(&mut self) -> io::Result<()> {
        while self.in_flight.len() < self.workers.size() {
            let Some(len) = self.lengths.next() else { break };
            let mut member = self.members.take(len.min(MEMBER_OUTPUT_LIMIT) as usize);
            (&mut self.inner).take(len).read_to_end(&mut member)?;
            if member.len() as u64 != len {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the gzip stream ends inside a member"));
            }
            let (members, outputs) = (self.members.clone(), self.outputs.clone());
            self.in_flight.push_back(self.workers.submit(move || {
                let out = inflate(&member, &outputs);
                members.give(member);
                out
            })?);
        }
        Ok(())
    }
}

/// One whole member: its output (in one of `buffers`), with its trailer checked and nothing
/// after it.
fn inflate(member: &[u8], buffers: &Buffers) -> io::Result<Vec<u8>> {
    thread_local! {
        // One per worker thread, made once: libdeflate's decompressor is a few tens of KiB.
        static DECOMPRESSOR: std::cell::RefCell<Decompressor> = std::cell::RefCell::new(Decompressor::new());
    }
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("a gzip member {what}"));
    // Header (10 bytes at least), then the deflate data, then CRC32 and ISIZE (4 bytes each).
    let Some(trailer) = member.len().checked_sub(8).filter(|&t| t >= 10).map(|t| &member[t..]) else {
        return Err(bad("is too short to be one"));
    };
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if u64::from(size) > MEMBER_OUTPUT_LIMIT {
        return Err(bad("inflates to more than 64 MiB"));
    }
    let mut out = buffers.take_len(size as usize);
    let n = DECOMPRESSOR
        .with(|d| d.borrow_mut().gzip_decompress(member, &mut out))
        .map_err(|e| bad(&format!("is damaged ({e:?})")))?;
    // libdeflate checked the CRC32 and ISIZE that follow the deflate data wherever that ends;
    // the output filling the buffer exactly and matching the trailer at the recorded end too
    // means the member ends where its length says.
    if n != out.len() || libdeflater::crc32(&out) != crc {
        return Err(bad("does not end at its recorded length"));
    }
    Ok(out)
}

impl<R: Read, L: Iterator<Item = u64>> Read for ParallelGunzip<R, L> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            self.fill()?;
            match self.in_flight.pop_front() {
                Some(member) => {
                    let next = member.recv().map_err(|_| io::Error::other("an inflating thread panicked"))??;
                    self.outputs.give(std::mem::replace(&mut self.current, next));
                    self.pos = 0;
                }
                None => self.ended = true,
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn member(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Members of every size (empty ones included) read back to their concatenation, whatever
    /// the number of threads and the size of the reads.
    #[test]
    fn reads_members_in_order() {
        let parts: Vec<Vec<u8>> = (0..9u32).map(|i| (0..i * 70_001).map(|j| (j % 251) as u8).collect()).collect();
        let members: Vec<Vec<u8>> = parts.iter().map(|p| member(p)).collect();
        let stream: Vec<u8> = members.concat();
        let lengths: Vec<u64> = members.iter().map(|m| m.len() as u64).collect();
        for threads in [1, 2, 5] {
            let mut r = ParallelGunzip::new(&stream[..], lengths.clone(), threads);
            let mut out = Vec::new();
            let mut buf = [0u8; 4099];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert!(out == parts.concat(), "{threads} threads");
        }
    }

    /// Lengths that arrive while the file is written (each once its member is in the file)
    /// read the file no further than written: the output is the whole stream, in order.
    #[test]
    fn follows_a_file_while_it_is_written() {
        use std::sync::mpsc;
        let parts: Vec<Vec<u8>> =
            (0..40u32).map(|i| (0..(i % 7) * 50_000 + 1).map(|j| (j * i % 253) as u8).collect()).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.gz");
        let mut file = std::fs::File::create(&path).unwrap();
        let (announce, lengths) = mpsc::channel();
        let reading = std::fs::File::open(&path).unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            ParallelGunzip::new(io::BufReader::new(reading), lengths, 2).read_to_end(&mut out).map(|_| out)
        });
        for p in &parts {
            let m = member(p);
            file.write_all(&m).unwrap();
            announce.send(m.len() as u64).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        drop(announce);
        assert!(reader.join().unwrap().unwrap() == parts.concat());
    }

    /// A flipped byte inside a member, a member shorter or longer than its recorded length, and
    /// a stream that ends early are errors, never silently different output.
    #[test]
    fn damage_and_wrong_lengths_are_errors() {
        let a = member(&[7u8; 100_000]);
        let b = member(b"second member");
        let read = |stream: &[u8], lengths: Vec<u64>| {
            let mut out = Vec::new();
            ParallelGunzip::new(stream, lengths, 2).read_to_end(&mut out).map(|_| out)
        };
        let stream = [a.clone(), b.clone()].concat();
        let good = read(&stream, vec![a.len() as u64, b.len() as u64]).unwrap();
        assert_eq!(good.len(), 100_000 + 13);

        let mut flipped = stream.clone();
        flipped[a.len() - 6] ^= 0xff; // inside a's CRC32
        assert!(read(&flipped, vec![a.len() as u64, b.len() as u64]).is_err());
        assert!(read(&stream, vec![a.len() as u64 + 1, b.len() as u64 - 1]).is_err());
        assert!(read(&stream, vec![(a.len() + b.len()) as u64]).is_err(), "two members recorded as one");
        assert!(read(&stream[..stream.len() - 3], vec![a.len() as u64, b.len() as u64]).is_err());
    }
}
