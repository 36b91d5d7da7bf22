//! Stack-depth guard for worker threads.
//!
//! jaq evaluates recursively on the native stack and a Rust stack overflow aborts the whole
//! process. Workers record the address of a local at the top of their stack; the native
//! `__portolan_guard` filter (called on entry to every user `def`, see `rewrite.rs`) compares
//! the current stack position with it and fails once `limit` bytes are in use. Only addresses
//! are compared, nothing is dereferenced, so this needs no `unsafe`.
//!
//! The same check enforces the evaluation's deadline: a filter that recurses through a user
//! `def` forever (`def f: f; f`) stops at its time budget instead of spinning on a written-off
//! worker. Loops inside jaq's native builtins (`last(range(1e12))`) pass no guard and still run
//! until they finish (see the crate README).

use std::cell::Cell;
use std::time::Instant;

/// Why the guard stopped an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    Stack,
    Deadline,
}

thread_local! {
    static BASE: Cell<usize> = const { Cell::new(0) };
    static LIMIT: Cell<usize> = const { Cell::new(0) };
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static TRIPPED: Cell<Option<Trip>> = const { Cell::new(None) };
}

/// Set the deadline of the evaluation about to run on this thread.
pub fn set_deadline(deadline: Option<Instant>) {
    DEADLINE.set(deadline);
}

fn here() -> usize {
    let marker = 0u8;
    std::hint::black_box(std::ptr::addr_of!(marker)) as usize
}

/// Arm the guard for the current thread: at most `limit` bytes of stack below this point.
pub fn arm(limit: usize) {
    BASE.set(here());
    LIMIT.set(limit);
}

/// True if the current thread may go deeper. Records a failure for [`take_tripped`].
pub fn check() -> bool {
    if DEADLINE.get().is_some_and(|d| Instant::now() >= d) {
        TRIPPED.set(Some(Trip::Deadline));
        return false;
    }
    let base = BASE.get();
    if base == 0 || base.abs_diff(here()) < LIMIT.get() {
        return true;
    }
    TRIPPED.set(Some(Trip::Stack));
    false
}

/// Whether [`check`] failed since the last call, and why (and reset).
pub fn take_tripped() -> Option<Trip> {
    TRIPPED.replace(None)
}
