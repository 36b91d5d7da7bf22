//! Long-lived worker threads with big stacks, fed through a channel, with a wall-clock timeout.
//!
//! A job's slot moves `Queued -> Running -> Done`. A caller that times out marks the slot
//! `Abandoned`: a queued job is then skipped by the workers; a running job's worker is written
//! off (it finishes its job and exits) and a replacement worker is spawned, so the pool keeps its
//! size. jaq cannot be interrupted, so an abandoned worker keeps burning CPU until its filter ends.

use crate::JqError;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Work sent to a worker: a closure producing the outcome.
type Work<T> = Box<dyn FnOnce() -> T + Send>;

enum State<T> {
    Queued,
    Running,
    Done(T),
    Abandoned,
    Taken,
}

/// One-shot rendezvous between a caller and the worker that runs its job.
struct Slot<T> {
    state: Mutex<State<T>>,
    cv: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Job<T> {
    work: Work<T>,
    slot: Arc<Slot<T>>,
}

struct Shared<T> {
    rx: Mutex<Receiver<Job<T>>>,
    stack_size: usize,
    /// Workers written off after a timeout that are still running their filter.
    runaway: AtomicUsize,
    /// Live workers, abandoned ones included.
    threads: AtomicUsize,
}

/// A pool of worker threads running closures that return `Result<T, JqError>`.
pub struct Pool<T: Send + 'static> {
    tx: Sender<Job<Result<T, JqError>>>,
    shared: Arc<Shared<Result<T, JqError>>>,
}

impl<T: Send + 'static> Pool<T> {
    /// Start `workers` threads with `stack_size` bytes of stack each.
    pub fn new(workers: usize, stack_size: usize) -> Self {
        let (tx, rx) = channel();
        let shared = Arc::new(Shared {
            rx: Mutex::new(rx),
            stack_size,
            runaway: AtomicUsize::new(0),
            threads: AtomicUsize::new(0),
        });
        for _ in 0..workers.max(1) {
            spawn_worker(&shared);
        }
        Pool { tx, shared }
    }

    /// Number of abandoned workers still running a filter that timed out.
    pub fn runaway(&self) -> usize {
        self.shared.runaway.load(Ordering::Relaxed)
    }

    /// Number of live worker threads (including runaway ones).
    pub fn threads(&self) -> usize {
        self.shared.threads.load(Ordering::Relaxed)
    }

    /// Run `work` on a worker and wait at most `timeout` (queueing included) for its result.
    pub fn run(&self, timeout: Duration, work: Work<Result<T, JqError>>) -> Result<T, JqError> {
        let deadline = Instant::now() + timeout;
        let slot = Arc::new(Slot { state: Mutex::new(State::Queued), cv: Condvar::new() });
        if self.tx.send(Job { work, slot: Arc::clone(&slot) }).is_err() {
            return Err(JqError::Limit("jq worker pool is not running".to_owned()));
        }
        let mut state = lock(&slot.state);
        loop {
            match std::mem::replace(&mut *state, State::Taken) {
                State::Done(out) => return out,
                s @ (State::Queued | State::Running) => {
                    let now = Instant::now();
                    if now >= deadline {
                        let running = matches!(s, State::Running);
                        *state = State::Abandoned;
                        drop(state);
                        if running {
                            self.shared.runaway.fetch_add(1, Ordering::Relaxed);
                            spawn_worker(&self.shared);
                        }
                        let ms = timeout.as_millis();
                        return Err(JqError::Limit(if running {
                            format!("jq evaluation exceeded the time limit of {ms} ms")
                        } else {
                            format!("jq evaluation waited longer than {ms} ms for a free worker")
                        }));
                    }
                    *state = s;
                    state = slot.cv.wait_timeout(state, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
                }
                State::Abandoned | State::Taken => {
                    return Err(JqError::Limit("jq job lost".to_owned()));
                }
            }
        }
    }
}

fn spawn_worker<T: Send + 'static>(shared: &Arc<Shared<Result<T, JqError>>>) {
    let sh = Arc::clone(shared);
    sh.threads.fetch_add(1, Ordering::Relaxed);
    let spawned =
        std::thread::Builder::new().name("portolan-jq".to_owned()).stack_size(shared.stack_size).spawn(move || {
            // Leave a quarter of the stack for what runs between two guard checks.
            crate::guard::arm(sh.stack_size / 4 * 3);
            worker(&sh);
            sh.threads.fetch_sub(1, Ordering::Relaxed);
        });
    if spawned.is_err() {
        // Out of threads or memory: the pool runs with fewer workers; callers time out.
        shared.threads.fetch_sub(1, Ordering::Relaxed);
    }
}

fn worker<T>(sh: &Shared<Result<T, JqError>>) {
    loop {
        let job = match lock(&sh.rx).recv() {
            Ok(job) => job,
            Err(_) => return, // the pool was dropped
        };
        {
            let mut state = lock(&job.slot.state);
            if !matches!(*state, State::Queued) {
                continue; // abandoned while queued
            }
            *state = State::Running;
        }
        let out = catch_unwind(AssertUnwindSafe(job.work))
            .unwrap_or_else(|_| Err(JqError::Runtime("internal error: jq evaluation panicked".to_owned())));
        let mut state = lock(&job.slot.state);
        if matches!(*state, State::Abandoned) {
            // A replacement worker was spawned when the caller gave up on us.
            drop(state);
            sh.runaway.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        *state = State::Done(out);
        drop(state);
        job.slot.cv.notify_one();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn queued_job_times_out_without_replacing_the_worker() {
        let pool: Pool<u32> = Pool::new(1, 1 << 20);
        let (release, wait) = sync_channel::<()>(0);
        std::thread::scope(|s| {
            let busy =
                s.spawn(|| pool.run(Duration::from_secs(30), Box::new(move || Ok(wait.recv().map_or(0, |()| 7)))));
            while pool.shared.rx.try_lock().is_err() && !busy.is_finished() {
                std::thread::yield_now(); // until the worker took the job and waits for the next
            }
            std::thread::sleep(Duration::from_millis(20));
            let r = pool.run(Duration::from_millis(50), Box::new(|| Ok(1)));
            assert!(matches!(r, Err(JqError::Limit(ref m)) if m.contains("free worker")), "{r:?}");
            release.send(()).unwrap();
            assert_eq!(busy.join().unwrap(), Ok(7));
        });
        assert_eq!(pool.threads(), 1);
        assert_eq!(pool.runaway(), 0);
        // The skipped job is gone; the worker serves new ones.
        assert_eq!(pool.run(Duration::from_secs(5), Box::new(|| Ok(2))), Ok(2));
    }

    #[test]
    fn running_job_times_out_and_is_replaced() {
        let pool: Pool<u32> = Pool::new(1, 1 << 20);
        let (release, wait) = sync_channel::<()>(0);
        let r = pool.run(Duration::from_millis(50), Box::new(move || Ok(wait.recv().map_or(0, |()| 7))));
        assert!(matches!(r, Err(JqError::Limit(ref m)) if m.contains("time limit")), "{r:?}");
        assert_eq!((pool.threads(), pool.runaway()), (2, 1));
        assert_eq!(pool.run(Duration::from_secs(5), Box::new(|| Ok(2))), Ok(2));
        release.send(()).unwrap(); // the abandoned worker finishes and exits
        let start = Instant::now();
        while pool.threads() > 1 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!((pool.threads(), pool.runaway()), (1, 0));
    }

    #[test]
    fn panics_become_errors() {
        let pool: Pool<u32> = Pool::new(1, 1 << 20);
        let r = pool.run(Duration::from_secs(5), Box::new(|| panic!("boom")));
        assert!(matches!(r, Err(JqError::Runtime(_))), "{r:?}");
        assert_eq!(pool.run(Duration::from_secs(5), Box::new(|| Ok(3))), Ok(3));
    }
}
