//! A small fork–join pool for the CPU kernels: the calling thread and
//! `threads − 1` helper threads share the tasks of one call, and a call
//! performs no heap allocation.
//!
//! Why not rayon here: a rayon call from a thread outside rayon's pool
//! *injects* the job into the pool's global queue (a crossbeam `Injector`,
//! which allocates a new block every 63 pushes) and puts the caller to sleep
//! while two workers run it, so each parallel kernel costs a cross-thread
//! wake-up of the caller and, amortised, part of an allocation. Here the
//! caller works on its own tasks, helpers that are awake join, and the job
//! description lives in the pool, not on a queue.
//!
//! * One call at a time: a call made while another is in flight (another
//!   user thread), or from inside a task, runs sequentially on its caller.
//! * Helpers spin for 50 µs after each job (kernels of a training step come
//!   microseconds apart), then yield their core between checks until 200 µs,
//!   then sleep on a condition variable.
//! * A helper that has not joined a job by the time the caller has claimed
//!   every task is not waited for: the caller never depends on a helper
//!   being scheduled, only on the ones that took a task. The one exception
//!   is the pool's creation, which waits until every helper has started (see
//!   [`Pool::ready`]).
//! * The pool has [`threads`] threads in all, the size of rayon's global pool
//!   when it is first used (so [`crate::set_threads`] sets both).
//!
//! Results never depend on which thread ran a task: tasks write disjoint
//! outputs and every reduction inside a task runs in a fixed order.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The job state's "open" flag; the low bits count helpers inside the job.
const OPEN: usize = 1 << (usize::BITS - 1);
/// How long a helper spins for the next job, then yields its core between
/// checks (a machine shared with other work gets the core back), before it
/// sleeps.
const SPIN: Duration = Duration::from_micros(50);
const YIELD: Duration = Duration::from_micros(200);

/// The erased task function of the job in flight.
type Task = dyn Fn(usize) + Sync;

struct Pool {
    /// Helper threads actually started (fewer than asked when the OS refuses one).
    helpers: AtomicUsize,
    /// Helpers that have finished starting. The thread's start-up in std
    /// (which copies a named thread's name) and its packing buffer
    /// ([`super::warm_thread`]) are the only allocations a helper makes
    /// outside the tasks it runs; the pool's creation waits for this count to
    /// reach `helpers`, so they happen during the first parallel call and
    /// never during a later one (where a helper scheduled late would otherwise
    /// make them: the counted steps of `tests/zero_alloc.rs` saw it).
    ready: AtomicUsize,
    /// A caller owns the pool.
    busy: AtomicBool,
    /// Bumped for every job; helpers wait for it to change.
    generation: AtomicUsize,
    /// `OPEN | helpers inside`.
    state: AtomicUsize,
    /// The job: task function (a `*const &Task` on the caller's stack), count, next task.
    task: AtomicPtr<&'static Task>,
    tasks: AtomicUsize,
    next: AtomicUsize,
    panicked: AtomicBool,
    /// Helpers asleep on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    done_lock: Mutex<()>,
    done: Condvar,
}

thread_local! {
    /// Set while this thread runs a task (nested calls run sequentially).
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

static POOL: OnceLock<&'static Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let helpers = rayon::current_num_threads().saturating_sub(1);
        let p: &'static Pool = Box::leak(Box::new(Pool {
            helpers: AtomicUsize::new(0),
            ready: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
            generation: AtomicUsize::new(0),
            state: AtomicUsize::new(0),
            task: AtomicPtr::new(std::ptr::null_mut()),
            tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            done_lock: Mutex::new(()),
            done: Condvar::new(),
        }));
        // A helper the OS will not start is not an error: the caller runs
        // every task a missing helper would have taken (fewer threads, same results).
        for i in 0..helpers {
            let started = std::thread::Builder::new()
                .name(format!("kiln-cpu-{}", i + 1))
                .spawn(move || helper(p));
            if started.is_err() {
                break;
            }
            p.helpers.fetch_add(1, AcqRel);
        }
        // Once per process; a helper starts in tens of microseconds once it
        // is scheduled, and yielding lets it be scheduled on a busy core.
        let started = p.helpers.load(Acquire);
        while p.ready.load(Acquire) < started {
            std::thread::yield_now();
        }
        p
    })
}

/// Threads that share a parallel call (the caller and the helpers).
pub(crate) fn threads() -> usize {
    pool().helpers.load(Acquire) + 1
}

/// Runs the tasks of the job in flight until none is left.
fn drain(p: &Pool, f: &(dyn Fn(usize) + Sync + '_)) {
    let n = p.tasks.load(Acquire);
    loop {
        let i = p.next.fetch_add(1, AcqRel);
        if i >= n {
            break;
        }
        f(i);
    }
}

fn helper(p: &'static Pool) {
    IN_TASK.with(|t| t.set(true));
    // This thread's packing buffer, once for its life (not in some later job).
    super::warm_thread();
    p.ready.fetch_add(1, AcqRel);
    let mut seen = p.generation.load(Acquire);
    loop {
        // Wait for a new job: spin, then sleep.
        let start = Instant::now();
        let mut spins = 0u32;
        while p.generation.load(Acquire) == seen {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) {
                continue;
            }
            let waited = start.elapsed();
            if waited > SPIN && waited <= YIELD {
                std::thread::yield_now();
            } else if waited > YIELD {
                let mut g = p.lock.lock().unwrap_or_else(|e| e.into_inner());
                p.sleepers.fetch_add(1, SeqCst);
                while p.generation.load(SeqCst) == seen {
                    g = p.wake.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                p.sleepers.fetch_sub(1, SeqCst);
                break;
            }
        }
        seen = p.generation.load(Acquire);
        // Join the job if it is still open.
        let mut s = p.state.load(Acquire);
        let joined = loop {
            if s & OPEN == 0 {
                break false;
            }
            match p.state.compare_exchange_weak(s, s + 1, AcqRel, Acquire) {
                Ok(_) => break true,
                Err(now) => s = now,
            }
        };
        if !joined {
            continue;
        }
        // SAFETY: `task` points to `fref` on the stack of the `for_each` call
        // that opened this job, which stored it before setting `OPEN` (Release;
        // our CAS above acquired it). The CAS counted this helper in `state`
        // while `OPEN` was set, and `for_each` does not return (nor unwind:
        // its own tasks run under `catch_unwind`) before that count is back to
        // zero, so neither `fref` nor the closure it borrows can die, nor can a
        // next job replace `task`, while this helper uses `f`.
        let f: &Task = unsafe { *p.task.load(Acquire) };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drain(p, f))).is_err() {
            p.panicked.store(true, Release);
            // Claim the remaining tasks so the caller does not run them.
            p.next.store(usize::MAX / 2, Release);
        }
        if p.state.fetch_sub(1, AcqRel) == 1 {
            // Closed and this was the last helper inside: wake the caller.
            let _g = p.done_lock.lock().unwrap_or_else(|e| e.into_inner());
            p.done.notify_one();
        }
    }
}

/// Calls `f(i)` for every `i < tasks`, on the calling thread and the pool's
/// helpers; returns when all calls have returned. Allocates nothing (after the
/// pool's first use, which starts the helpers).
pub(crate) fn for_each(tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    if tasks == 0 {
        return;
    }
    let sequential = tasks == 1 || IN_TASK.with(|t| t.get());
    let p = if sequential { None } else { Some(pool()) };
    let p = match p {
        Some(p)
            if p.helpers.load(Acquire) > 0
                && p.busy
                    .compare_exchange(false, true, Acquire, Relaxed)
                    .is_ok() =>
        {
            p
        }
        _ => {
            (0..tasks).for_each(f);
            return;
        }
    };
    // SAFETY: only the lifetime is changed. The `'static` reference is reached
    // by helpers only through `p.task` while they are counted in `state`, and
    // below this function closes the job and waits for that count to reach
    // zero before it returns; a panic in our own tasks is caught first
    // (`catch_unwind`), so unwinding cannot skip the wait. No use of `fref`
    // outlives the borrow of `f`. (`p.task` keeps a stale pointer afterwards,
    // but it is read only after joining an open job, and the next job stores
    // its own pointer before it opens.)
    let fref: &'static Task =
        unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static Task>(f) };
    let slot: *const &'static Task = &fref;
    p.task.store(slot as *mut _, Release);
    p.tasks.store(tasks, Release);
    p.next.store(0, Release);
    p.panicked.store(false, Release);
    p.state.store(OPEN, Release);
    p.generation.fetch_add(1, SeqCst);
    if p.sleepers.load(SeqCst) > 0 {
        let _g = p.lock.lock().unwrap_or_else(|e| e.into_inner());
        p.wake.notify_all();
    }
    IN_TASK.with(|t| t.set(true));
    let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drain(p, f)));
    IN_TASK.with(|t| t.set(false));
    // Close the job; wait for the helpers inside it.
    if p.state.fetch_and(!OPEN, AcqRel) & !OPEN != 0 {
        let mut spins = 0u32;
        while p.state.load(Acquire) != 0 && spins < 1 << 16 {
            std::hint::spin_loop();
            spins += 1;
        }
        let mut g = p.done_lock.lock().unwrap_or_else(|e| e.into_inner());
        while p.state.load(Acquire) != 0 {
            g = p.done.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
    let helper_panicked = p.panicked.load(Acquire);
    p.busy.store(false, Release);
    if let Err(e) = mine {
        std::panic::resume_unwind(e);
    }
    if helper_panicked {
        panic!("kiln: a CPU kernel task panicked on a helper thread");
    }
}

/// A raw pointer that tasks may share: each task touches a disjoint part.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub *mut T);
// SAFETY: sharing the pointer itself is harmless; every dereference is in an
// `unsafe` block of a task (`slice` below, or raw writes in the GEMM) whose
// justification is that tasks touch disjoint elements, and `for_each` joins
// the tasks before the buffer's borrow ends. Elements are moved across
// threads, hence `T: Send`.
unsafe impl<T: Send> Send for SyncPtr<T> {}
// SAFETY: as for `Send`: `&SyncPtr` only hands out the pointer.
unsafe impl<T: Send> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// The pointer (a method, so closures capture the whole `SyncPtr`).
    #[inline(always)]
    pub fn get(&self) -> *mut T {
        self.0
    }
    /// `len` elements from `start`.
    ///
    /// # Safety
    /// `start + len` is within the slice the pointer was taken from, which is
    /// still borrowed (alive, and not otherwise accessed) for as long as the
    /// result lives; the range is disjoint from every other live slice made
    /// from this pointer.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)] // a deliberate split of one `&mut` buffer across tasks
    pub unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        // SAFETY: in range and exclusive, by the caller's obligations above.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Splits `0..n` into at most `parts` contiguous, nearly equal ranges and
/// calls `f(range)` for each, in parallel when `par` (the caller's size
/// threshold) holds.
pub(crate) fn ranges(n: usize, par: bool, f: impl Fn(std::ops::Range<usize>) + Sync) {
    let parts = if par { (threads() * 4).min(n) } else { 1 };
    if parts <= 1 {
        f(0..n);
        return;
    }
    for_each(parts, &|t| f(n * t / parts..n * (t + 1) / parts));
}

/// `f(k, piece)` for the consecutive pieces of length `len` of `dst` (the
/// last may be shorter), in parallel when `par`.
pub(crate) fn pieces<T: Send>(
    dst: &mut [T],
    len: usize,
    par: bool,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    if len == 0 || dst.is_empty() {
        return;
    }
    let total = dst.len();
    let count = total.div_ceil(len);
    let ptr = SyncPtr(dst.as_mut_ptr());
    ranges(count, par, |r| {
        for k in r {
            let start = k * len;
            let l = len.min(total - start);
            // SAFETY: piece `k` is `start .. start + l` with `start = k·len` and
            // `l = len.min(total − start)`, inside `dst`; `ranges` calls each
            // `k < count` once, so the pieces of live calls are disjoint; `dst`
            // stays mutably borrowed by this function, which returns only after
            // every task (`for_each` joins them), so no piece outlives it.
            f(k, unsafe { ptr.slice(start, l) });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_task_runs_once() {
        for tasks in [0usize, 1, 2, 3, 17, 1000] {
            let hits: Vec<AtomicU64> = (0..tasks).map(|_| AtomicU64::new(0)).collect();
            for _ in 0..50 {
                for_each(tasks, &|i| {
                    hits[i].fetch_add(1, Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Relaxed) == 50));
        }
    }

    #[test]
    fn concurrent_and_nested_calls_complete() {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let sum = AtomicU64::new(0);
                    for _ in 0..200 {
                        for_each(8, &|i| {
                            for_each(3, &|j| {
                                sum.fetch_add((i * 3 + j) as u64, Relaxed);
                            });
                        });
                    }
                    assert_eq!(sum.load(Relaxed), 200 * (0..24).sum::<u64>());
                });
            }
        });
    }

    #[test]
    fn pieces_cover_the_slice() {
        let mut v = vec![0u32; 10_001];
        pieces(&mut v, 100, true, |k, p| {
            p.iter_mut().for_each(|x| *x = k as u32 + 1)
        });
        for (i, x) in v.iter().enumerate() {
            assert_eq!(*x as usize, i / 100 + 1);
        }
    }

    #[test]
    fn a_panicking_task_panics_the_caller() {
        let r = std::panic::catch_unwind(|| {
            for_each(64, &|i| {
                if i == 63 {
                    panic!("boom");
                }
            })
        });
        assert!(r.is_err());
        // The pool still works.
        let n = AtomicU64::new(0);
        for_each(10, &|_| {
            n.fetch_add(1, Relaxed);
        });
        assert_eq!(n.load(Relaxed), 10);
    }
}
