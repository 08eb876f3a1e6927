//! Parallel gunzip of a stream whose gzip members' lengths are known: the packer, which wrote
//! the members, reads its fresh bundle back this way before publishing it. Each member is
//! inflated on one of a few worker threads ([`crate::pool`]), with its CRC32 and ISIZE checked, and
//! the output comes out in order: the same bytes, and the same refusals, as a sequential
//! multi-member decoder, on every core. A member that does not end exactly where its length
//! says is damage, as is a stream longer or shorter than the lengths.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc::Receiver;

use crate::pool::Pool;

// The bufread decoder consumes exactly one member from the slice (the read one buffers ahead),
// so what is left of the slice tells whether the member ended where its length says.
use flate2::bufread::GzDecoder;

/// Largest member this reader inflates: the packer writes 1 MiB blocks, so far more than this
/// is not one of its members.
const MEMBER_OUTPUT_LIMIT: u64 = 64 * 1024 * 1024;

/// A `Read` of the decompressed stream of `inner`, which holds the members of `lengths`.
pub struct ParallelGunzip<R: Read> {
    inner: R,
    lengths: std::vec::IntoIter<u64>,
    workers: Pool,
    in_flight: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    current: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl<R: Read> ParallelGunzip<R> {
    /// Reads the members of `lengths` (their compressed sizes, in order) from `inner`, with up
    /// to `threads` members inflating at once.
    pub fn new(inner: R, lengths: Vec<u64>, threads: usize) -> Self {
        ParallelGunzip {
            inner,
            lengths: lengths.into_iter(),
            workers: Pool::new(threads, "gunzip"),
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
            let mut member = Vec::with_capacity(len as usize);
            (&mut self.inner).take(len).read_to_end(&mut member)?;
            if member.len() as u64 != len {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the gzip stream ends inside a member"));
            }
            self.in_flight.push_back(self.workers.submit(move || inflate(&member))?);
        }
        Ok(())
    }
}

/// One whole member: its output, with its trailer checked and nothing after it.
fn inflate(member: &[u8]) -> io::Result<Vec<u8>> {
    let mut rest = member;
    let mut out = Vec::with_capacity(member.len() * 2);
    let mut d = GzDecoder::new(&mut rest);
    (&mut d).take(MEMBER_OUTPUT_LIMIT + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MEMBER_OUTPUT_LIMIT {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a gzip member inflates to more than 64 MiB"));
    }
    drop(d);
    if !rest.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a gzip member ends before its recorded length"));
    }
    Ok(out)
}

impl<R: Read> Read for ParallelGunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            self.fill()?;
            match self.in_flight.pop_front() {
                Some(member) => {
                    self.current = member.recv().map_err(|_| io::Error::other("an inflating thread panicked"))??;
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
