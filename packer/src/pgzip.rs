//! Parallel gzip, pigz-style: the stream is cut into 1 MiB blocks, each compressed on its own
//! thread as an independent gzip member, and the members are written in order. Concatenated
//! members are one valid gzip file (RFC 1952 §2.2; `gzip -d`, `tar xzf` and flate2's
//! `MultiGzDecoder` read them). Costs about 0.1% in size for using every core; deflate is the
//! bottleneck of bundle writing (see ARCHITECTURE.md). Each block is one call to libdeflate,
//! which compresses a whole buffer at once (about twice zlib's speed at the same level).
//!
//! A block that would not shrink (random bytes, JPEG, an already-compressed file, ciphertext) is
//! stored (deflate level 0, stored blocks) instead of being deflated for nothing: whether it
//! would shrink is judged from a few small samples compressed at level 1, a few percent of the
//! cost of deflating the block. A stored member is still plain gzip; nothing reads it differently.
//!
//! Because members stand alone, an entry's body can be compressed ahead of time (a dump, as
//! pg_dump produces it) into a file of members, and that file copied into the bundle's stream
//! unchanged ([`ParallelGz::append_members`]): every byte is compressed once.
//!
//! Streams compressed side by side (the dumps taken at once, a SQLite copy beside them) share
//! one [`Cores`]: a stream alone compresses on every core, streams together never run more
//! blocks at once than there are cores, and a core one stream leaves idle (its dump waiting
//! on the server, or finished) goes to the others.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::mpsc;

use restorer::pool::{Buffers, Pool};

use libdeflater::{CompressionLvl, Compressor};

const BLOCK: usize = 1024 * 1024;
/// Samples taken from a block to judge it: spread over the block, as its content can change
/// from one file to the next inside the tar stream.
const SAMPLES: usize = 4;
const SAMPLE: usize = 16 * 1024;
/// A block is stored when level 1 saves less than this share (in percent) of its samples: what
/// deflate would still save on such data is not worth deflating a whole block for. Random data
/// comes out at about 100%, JPEG at 98-99%; text, JSON and tar headers far below.
const STORE_ABOVE_PERCENT: usize = 97;

/// Threads that compress blocks, shared by every stream that holds a clone: `n` of them at
/// most compress at once, whichever streams their blocks come from, and a thread one stream
/// leaves idle (its dump waiting on the server, or finished) takes another's blocks.
/// Blocks and members go back to the cores' [`Buffers`] once used, so a stream's memory is
/// the same few buffers over and over.
#[derive(Clone)]
pub struct Cores {
    pool: Pool,
    /// Blocks to fill...
    blocks: Buffers,
    /// ...and members to compress them into (two lists: a member can be larger).
    members: Buffers,
}

impl Cores {
    /// `n` compressing threads (at least 1), living as long as the clones.
    pub fn new(n: usize) -> Cores {
        Cores { pool: Pool::new(n, "gzip"), blocks: Buffers::default(), members: Buffers::default() }
    }
}

/// The error a stream that announces its members stops with when their reader went away
/// (see [`ParallelGz::announcing`]): the reader's own error is the one to tell.
#[derive(Debug)]
pub struct ReadBackStopped;

impl std::fmt::Display for ReadBackStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the read-back of the bundle stopped")
    }
}

impl std::error::Error for ReadBackStopped {}

impl ReadBackStopped {
    /// Whether `e` is, or was caused by, this error.
    pub fn caused(e: &anyhow::Error) -> bool {
        e.chain().any(|c| {
            c.is::<ReadBackStopped>()
                || c.downcast_ref::<io::Error>().and_then(io::Error::get_ref).is_some_and(|i| i.is::<ReadBackStopped>())
        })
    }
}

/// A `Write` that gzips what it is given using `threads` threads.
pub struct ParallelGz<W: Write> {
    inner: W,
    level: u32,
    /// Blocks of this stream in flight (waiting for a core, compressing, or compressed and not
    /// yet written): twice the cores, so that the dump feeding the stream can read on while
    /// every core compresses (the gain measured was within the machine's noise). The pool
    /// bounds the blocks of all streams together.
    in_flight_max: usize,
    cores: Cores,
    block: Vec<u8>,
    in_flight: VecDeque<mpsc::Receiver<io::Result<Vec<u8>>>>,
    /// The compressed length of every member written, in order: a reader that knows them can
    /// inflate members in parallel (`restorer::gunzip`).
    members: Vec<u64>,
    /// Where each member's length is sent once the member is written to `inner`.
    announce: Option<mpsc::Sender<u64>>,
}

thread_local! {
    /// The compressors of this worker thread, by level, made once: a libdeflate compressor is
    /// hundreds of KiB of match-finder tables, too much to allocate and clear for every block.
    static COMPRESSORS: RefCell<Vec<(i32, Compressor)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's compressor for `level`.
fn with_compressor<T>(level: i32, f: impl FnOnce(&mut Compressor) -> T) -> io::Result<T> {
    let lvl = CompressionLvl::new(level)
        .map_err(|_| io::Error::other(format!("gzip level {level} is not one libdeflate knows")))?;
    Ok(COMPRESSORS.with(|c| {
        let mut c = c.borrow_mut();
        let i = match c.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                c.push((level, Compressor::new(lvl)));
                c.len() - 1
            }
        };
        f(&mut c[i].1)
    }))
}

/// One block as one gzip member at `level` (0 stores it), or stored when it would not shrink;
/// the member in one of `buffers`.
fn compress_block(block: &[u8], level: u32, buffers: &Buffers) -> io::Result<Vec<u8>> {
    let level = if level > 0 && incompressible(block) { 0 } else { level };
    with_compressor(level as i32, |c| {
        let bound = c.gzip_compress_bound(block.len());
        let mut out = buffers.take_len(bound);
        let n =
            c.gzip_compress(block, &mut out).map_err(|e| io::Error::other(format!("compressing a block: {e:?}")))?;
        out.truncate(n);
        Ok(out)
    })?
}

impl<W: Write> ParallelGz<W> {
    /// Compresses into `inner` at `level` on `threads` threads of its own.
    pub fn new(inner: W, level: u32, threads: usize) -> Self {
        Self::sharing(inner, level, &Cores::new(threads))
    }

    /// Compresses into `inner` at `level` on the `cores` it shares with other streams (up to
    /// all of them when the others leave them idle).
    pub fn sharing(inner: W, level: u32, cores: &Cores) -> Self {
        ParallelGz {
            inner,
            level,
            in_flight_max: cores.pool.size() * 2,
            cores: cores.clone(),
            block: cores.blocks.take(BLOCK),
            in_flight: VecDeque::new(),
            members: Vec::new(),
            announce: None,
        }
    }

    /// Sends each member's length to `to` as soon as the member is written to the inner writer
    /// (which must pass what it is given straight on: a file, not a buffer), so that a reader
    /// can follow the output while it is written. The channel closes when `self` is dropped.
    pub fn announcing(mut self, to: mpsc::Sender<u64>) -> Self {
        self.announce = Some(to);
        self
    }

    /// Records (and announces) a member of `len` bytes just written. A reader that went away
    /// stopped for a reason of its own (it refused what it read): writing stops too, with
    /// [`ReadBackStopped`].
    fn written(&mut self, len: u64) -> io::Result<()> {
        self.members.push(len);
        match &self.announce {
            Some(to) if to.send(len).is_err() => Err(io::Error::other(ReadBackStopped)),
            _ => Ok(()),
        }
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(member) = self.in_flight.pop_front() {
            let member = member.recv().map_err(|_| io::Error::other("a compression thread panicked"))??;
            self.write_member(&member)?;
            self.cores.members.give(member);
        }
        Ok(())
    }

    fn write_member(&mut self, member: &[u8]) -> io::Result<()> {
        self.inner.write_all(member)?;
        self.written(member.len() as u64)
    }

    /// Writes the members already compressed, oldest first, up to the first still in work.
    fn write_finished(&mut self) -> io::Result<()> {
        while let Some(Ok(member)) = self.in_flight.front().map(mpsc::Receiver::try_recv) {
            self.in_flight.pop_front();
            let member = member?;
            self.write_member(&member)?;
            self.cores.members.give(member);
        }
        Ok(())
    }

    fn dispatch(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= self.in_flight_max {
            self.write_oldest()?;
        }
        let block = std::mem::replace(&mut self.block, self.cores.blocks.take(BLOCK));
        let level = self.level;
        let (blocks, members) = (self.cores.blocks.clone(), self.cores.members.clone());
        self.in_flight.push_back(self.cores.pool.submit(move || {
            let member = compress_block(&block, level, &members);
            blocks.give(block);
            member
        })?);
        Ok(())
    }

    /// Compresses what follows at `level` (0 stores it): the block so far is sent off first, so
    /// the switch falls on a member boundary. A sealed bundle's payload is ciphertext, which
    /// deflate cannot shrink: it is stored, not compressed a second time for nothing.
    pub fn set_level(&mut self, level: u32) -> io::Result<()> {
        self.dispatch()?;
        self.level = level;
        Ok(())
    }

    /// Copies `members` (complete gzip members of these `lengths`, as another `ParallelGz`
    /// wrote them) into the output unchanged, after everything written so far: the block so
    /// far is sent off and every member in flight written first, so the stream stays a sequence
    /// of whole members. Fails unless `members` holds exactly the lengths' sum.
    pub fn append_members(&mut self, members: &mut impl Read, lengths: &[u64]) -> io::Result<()> {
        self.dispatch()?;
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        let want: u64 = lengths.iter().sum();
        let n = io::copy(&mut members.take(want), &mut self.inner)?;
        if n != want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{n} bytes of compressed members where {want} were written"),
            ));
        }
        for &len in lengths {
            self.written(len)?;
        }
        Ok(())
    }

    /// Compresses what is left, writes every member, and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        Ok(self.finish_members()?.0)
    }

    /// [`ParallelGz::finish`], with the compressed length of every member written, in order.
    pub fn finish_members(mut self) -> io::Result<(W, Vec<u64>)> {
        self.dispatch()?;
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        if self.members.is_empty() {
            // An empty input still makes a valid (empty) gzip file.
            let empty = compress_block(&[], self.level, &self.cores.members)?;
            self.write_member(&empty)?;
        }
        Ok((self.inner, self.members))
    }
}

/// Whether deflate would not shrink `block` enough to be worth it, judged from `SAMPLES` slices
/// compressed at level 1. A block too small to sample is never judged so (deflating it is cheap).
fn incompressible(block: &[u8]) -> bool {
    if block.len() < SAMPLES * SAMPLE {
        return false;
    }
    let step = block.len() / SAMPLES;
    let packed = with_compressor(1, |c| {
        let mut out = vec![0; c.deflate_compress_bound(SAMPLE)];
        let mut packed = 0;
        for i in 0..SAMPLES {
            let sample = &block[i * step..i * step + SAMPLE];
            // The bound always fits; an error here would only mean "deflate it after all".
            packed += c.deflate_compress(sample, &mut out).ok()?;
        }
        Some(packed)
    });
    let Ok(Some(packed)) = packed else { return false };
    packed * 100 >= SAMPLES * SAMPLE * STORE_ABOVE_PERCENT
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.block.len();
        let n = room.min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.dispatch()?;
        }
        // Members already compressed go out now rather than when the queue is full: what a
        // stream holds is then mostly blocks still compressing (bounded by the shared cores),
        // whatever the number of streams side by side.
        self.write_finished()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Members are only complete at block boundaries; flushing mid-block would cost ratio.
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut w = ParallelGz::new(Vec::new(), 6, 3);
        for chunk in data.chunks(70_000) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    /// `gz` decodes to `data` with a multi-member decoder and with the system's gzip.
    fn assert_decodes(gz: Vec<u8>, data: &[u8], what: &str) {
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert!(back == data, "MultiGzDecoder, {what}");
        let mut child = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&gz).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success(), "gzip -dc, {what}");
        assert!(out.stdout == data, "gzip -dc, {what}");
    }

    /// Bytes no compressor can shrink (xorshift, deterministic so a failure repeats).
    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// n8n-like JSON lines: what the bundle is mostly made of.
    fn text(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 100);
        let mut i = 0u64;
        while out.len() < len {
            out.extend_from_slice(
                format!(
                    "{{\"node\":\"Node {}\",\"ts\":{},\"status\":200,\"items\":[{i},{}]}}\n",
                    i % 45,
                    1_700_000_000 + i * 7,
                    i * 3
                )
                .as_bytes(),
            );
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// Whatever the size (empty, one byte, exactly a block, many blocks), the output decodes to
    /// the input with a multi-member decoder and with the system's gzip.
    #[test]
    fn round_trips() {
        for size in [0usize, 1, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 12345] {
            let data: Vec<u8> = (0..size).map(|i| ((i * 7919) % 251) as u8 ^ (i >> 12) as u8).collect();
            assert_decodes(gzip(&data), &data, &format!("size {size}"));
        }
    }

    /// Random blocks are judged incompressible and stored: the output is the input plus a few
    /// bytes of framing per 64 KiB stored block and per member; it still decodes with both.
    #[test]
    fn random_data_is_stored() {
        let data = random(4 * BLOCK + 777, 7);
        assert!(incompressible(&data[..BLOCK]));
        let gz = gzip(&data);
        assert!(gz.len() >= data.len(), "random data cannot shrink");
        assert!(gz.len() < data.len() + 5 * 200, "stored framing only: {} for {}", gz.len(), data.len());
        assert_decodes(gz, &data, "random");
    }

    /// Text is still deflated, and a stream mixing random and text blocks (a tar of media and
    /// JSON) decodes to itself, each block judged on its own.
    #[test]
    fn text_still_compresses() {
        let t = text(3 * BLOCK);
        assert!(!incompressible(&t[..BLOCK]));
        let gz = gzip(&t);
        assert!(gz.len() < t.len() / 4, "text compresses: {} of {}", gz.len(), t.len());
        assert_decodes(gz, &t, "text");

        let mut mixed = random(BLOCK, 3);
        mixed.extend_from_slice(&text(BLOCK));
        mixed.extend_from_slice(&random(BLOCK / 2, 5));
        mixed.extend_from_slice(&text(BLOCK + 99));
        let gz = gzip(&mixed);
        assert!(gz.len() < mixed.len() * 3 / 4, "the text half compresses: {} of {}", gz.len(), mixed.len());
        assert_decodes(gz, &mixed, "mixed");
    }

    /// Streams written side by side on shared cores (the dumps taken at once) each decode to
    /// their own input, whatever the number of threads: one for three streams (each waits its
    /// turn, none waits on another's reader) or more threads than streams.
    #[test]
    fn streams_sharing_cores_each_decode_to_their_input() {
        for size in [1, 2, 4] {
            let cores = Cores::new(size);
            let inputs: Vec<Vec<u8>> =
                vec![text(3 * BLOCK + 17), random(2 * BLOCK + 5, 9), [text(BLOCK), random(BLOCK, 4)].concat()];
            let outputs: Vec<Vec<u8>> = std::thread::scope(|s| {
                let running: Vec<_> = inputs
                    .iter()
                    .map(|data| {
                        let cores = cores.clone();
                        s.spawn(move || {
                            let mut w = ParallelGz::sharing(Vec::new(), 3, &cores);
                            for chunk in data.chunks(100_000) {
                                w.write_all(chunk).unwrap();
                            }
                            w.finish().unwrap()
                        })
                    })
                    .collect();
                running.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for (i, (gz, data)) in outputs.into_iter().zip(&inputs).enumerate() {
                assert_decodes(gz, data, &format!("stream {i} on {size} shared cores"));
            }
        }
    }

    /// Members compressed ahead (another `ParallelGz`'s output, as a dump's body is) appended
    /// in the middle of a stream decode, with what was written before and after them, to the
    /// concatenation; with nothing written before, too.
    #[test]
    fn appended_members_join_the_stream() {
        let body = text(2 * BLOCK + 5);
        let mut w = ParallelGz::new(Vec::new(), 6, 3);
        w.write_all(&body).unwrap();
        let (ahead, ahead_lengths) = w.finish_members().unwrap();
        assert_eq!(ahead_lengths.len(), 3);
        let mut w = ParallelGz::new(Vec::new(), 6, 2);
        w.write_all(b"before").unwrap();
        w.append_members(&mut &ahead[..], &ahead_lengths).unwrap();
        w.write_all(b"after").unwrap();
        let mut want = b"before".to_vec();
        want.extend_from_slice(&body);
        want.extend_from_slice(b"after");
        let (gz, lengths) = w.finish_members().unwrap();
        assert_eq!(lengths.len(), ahead_lengths.len() + 2, "before, the appended ones, after");
        assert_eq!(lengths.iter().sum::<u64>(), gz.len() as u64);
        let mut back = Vec::new();
        restorer::gunzip::ParallelGunzip::new(&gz[..], lengths, 2).read_to_end(&mut back).unwrap();
        assert!(back == want, "read back member by member");
        assert_decodes(gz, &want, "appended");

        let mut w = ParallelGz::new(Vec::new(), 6, 2);
        w.append_members(&mut &ahead[..], &ahead_lengths).unwrap();
        assert_decodes(w.finish().unwrap(), &body, "appended first");
        // Fewer bytes than the lengths promise is an error, not a shorter stream.
        let mut w = ParallelGz::new(Vec::new(), 6, 2);
        assert!(w.append_members(&mut &ahead[..ahead.len() - 1], &ahead_lengths).is_err());
    }

    /// A block too small to sample, and a block that is half text, are deflated.
    #[test]
    fn small_or_partly_compressible_blocks_are_deflated() {
        assert!(!incompressible(&random(SAMPLES * SAMPLE - 1, 9)));
        let mut half = random(BLOCK / 2, 11);
        half.extend_from_slice(&text(BLOCK / 2));
        assert!(!incompressible(&half));
    }
}
