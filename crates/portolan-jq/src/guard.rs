//! Stack-depth guard for worker threads.
//!
//! jaq evaluates recursively on the native stack and a Rust stack overflow aborts the whole
//! process. Workers record the address of a local at the top of their stack; the native
//! `__portolan_guard` filter (called on entry to every user `def`, see `rewrite.rs`) compares
//! the current stack position with it and fails once `limit` bytes are in use. Only addresses
//! are compared, nothing is dereferenced, so this needs no `unsafe`.

use std::cell::Cell;

thread_local! {
    static BASE: Cell<usize> = const { Cell::new(0) };
    static LIMIT: Cell<usize> = const { Cell::new(0) };
    static TRIPPED: Cell<bool> = const { Cell::new(false) };
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
    let base = BASE.get();
    if base == 0 || base.abs_diff(here()) < LIMIT.get() {
        return true;
    }
    TRIPPED.set(true);
    false
}

/// Whether [`check`] failed since the last call (and reset).
pub fn take_tripped() -> bool {
    TRIPPED.replace(false)
}
