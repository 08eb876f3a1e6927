//! A few long-lived worker threads that run the jobs handed to them, each job's result coming
//! back on a channel of its own. Compressing or inflating a bundle is thousands of 1 MiB jobs,
//! and a thread started per job (as before) is thousands of thread starts, each free to take
//! a malloc arena of its own; the pool's threads are made once and live as long as a clone of
//! the pool does.

use std::io;
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError};

/// Buffers kept for reuse at most: enough for every block in flight on a few cores.
const KEPT: usize = 16;

/// Large buffers (1 MiB blocks, members, their outputs) handed back and forth between the
/// threads of a pool instead of allocated and freed by the thousand: a buffer freed on another
/// thread than the one that made it stays in that thread's malloc arena, and with a few arenas
/// each keeping some the process grew by tens of MiB (measured: 20 MiB of a 58 MiB create).
/// Clones share the buffers.
#[derive(Clone, Default)]
pub struct Buffers(Arc<Mutex<Vec<Vec<u8>>>>);

impl Buffers {
    /// An empty buffer that can hold `capacity` bytes: a kept one when there is one.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut b = kept.unwrap_or_default();
        b.clear();
        b.reserve(capacity);
        b
    }

    /// A buffer of exactly `len` bytes to be written over: a kept one is only zeroed where it
    /// grows (zeroing a whole 1 MiB output for every member cost 2% of a create).
    pub fn take_len(&self, len: usize) -> Vec<u8> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut b = kept.unwrap_or_default();
        b.resize(len, 0);
        b
    }

    /// Keeps `buffer` for a later [`Buffers::take`] (up to a few; the others are freed).
    pub fn give(&self, buffer: Vec<u8>) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < KEPT && buffer.capacity() > 0 {
            kept.push(buffer);
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Worker threads shared by every holder of a clone: at most [`Pool::size`] jobs run at
/// once, whichever holder they come from, and at most twice that many are submitted and not
/// yet done ([`Pool::submit`] waits): a job holds its input (a 1 MiB block), so however many
/// streams share the pool, what waits in its queue stays a few MiB.
#[derive(Clone)]
pub struct Pool {
    jobs: mpsc::Sender<Job>,
    size: usize,
    pending: Arc<(Mutex<usize>, Condvar)>,
}

/// Counts a job done when dropped: after it ran, or while a panic unwinds through it.
struct Done(Arc<(Mutex<usize>, Condvar)>);

impl Drop for Done {
    fn drop(&mut self) {
        let (count, changed) = &*self.0;
        *count.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        changed.notify_all();
    }
}

impl Pool {
    /// Starts `n` worker threads (at least 1), named `name`. One that cannot start leaves the
    /// work to the others; with none, [`Pool::submit`] fails with an error that says so.
    pub fn new(n: usize, name: &str) -> Pool {
        let size = n.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..size {
            let queue = Arc::clone(&queue);
            let _ = std::thread::Builder::new().name(name.to_string()).spawn(move || loop {
                // The lock is held while waiting, and let go as soon as a job is taken.
                let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                match job {
                    // A job that panics loses its own result (its channel disconnects), not
                    // the worker.
                    Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
                    Err(_) => return, // every clone of the pool is gone
                }
            });
        }
        Pool { jobs, size, pending: Arc::default() }
    }

    /// How many jobs run at once at most.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `job` on a worker; its result arrives on the returned channel (which reports a
    /// disconnection instead if the job panicked). Waits first while twice [`Pool::size`] jobs
    /// are submitted and not done.
    pub fn submit<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> io::Result<mpsc::Receiver<T>> {
        {
            let (count, changed) = &*self.pending;
            let mut n = count.lock().unwrap_or_else(PoisonError::into_inner);
            while *n >= 2 * self.size {
                n = changed.wait(n).unwrap_or_else(PoisonError::into_inner);
            }
            *n += 1;
        }
        let counted = Done(Arc::clone(&self.pending));
        let (done, result) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move || {
                let _counted = counted;
                let _ = done.send(job());
            }))
            .map_err(|_| io::Error::other("no worker thread could be started"))?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer given back is the one taken next, emptied, with room for what is asked.
    #[test]
    fn buffers_are_reused_empty() {
        let buffers = Buffers::default();
        let mut a = buffers.take(1000);
        a.extend_from_slice(&[1; 1000]);
        let ptr = a.as_ptr();
        buffers.give(a);
        let b = buffers.take(500);
        assert_eq!((b.as_ptr(), b.len()), (ptr, 0));
        assert!(buffers.take(2000).capacity() >= 2000, "a new one when none is kept");
        buffers.give(vec![9; 10]);
        assert_eq!(buffers.take_len(12), [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0], "grown with zeros");
        buffers.give(vec![9; 10]);
        assert_eq!(buffers.take_len(3), [9, 9, 9]);
    }

    /// Every job's result comes back on its own channel, whatever the order they finish in,
    /// from several holders at once; a job that panics is a disconnection for its own result
    /// only, and the pool goes on serving.
    #[test]
    fn results_come_back_to_their_own_submitter() {
        let pool = Pool::new(2, "test");
        let results: Vec<_> = (0..20u64)
            .map(|i| {
                pool.submit(move || {
                    std::thread::sleep(std::time::Duration::from_millis(20 - i));
                    i * i
                })
                .unwrap()
            })
            .collect();
        let other = pool.clone();
        let beside = std::thread::spawn(move || other.submit(|| "beside").unwrap().recv().unwrap());
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.recv().unwrap(), (i * i) as u64);
        }
        assert_eq!(beside.join().unwrap(), "beside");
        let panicked = pool.submit(|| -> u8 { panic!("a job that fails") }).unwrap();
        assert!(panicked.recv().is_err());
        assert_eq!(pool.submit(|| 7).unwrap().recv().unwrap(), 7, "still serving");
    }
}
