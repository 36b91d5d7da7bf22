//! Per-evaluation budgets for worker threads: stack depth, deadline, steps and value size.
//!
//! jaq evaluates recursively on the native stack and a Rust stack overflow aborts the whole
//! process. Workers record the address of a local at the top of their stack; the native
//! `__portolan_guard` filter (called on entry to every user `def` and to every recursive prelude
//! definition, see `rewrite.rs` and `ast.rs`) compares the current stack position with it and
//! fails once `limit` bytes are in use. Only addresses are compared, nothing is dereferenced, so
//! this needs no `unsafe`.
//!
//! The same thread-local state carries the evaluation's deadline and its *step budget*: every
//! guard call, every output of the guarded generators (`range`, `repeat`, `recurse`, `while`,
//! `until`, regex matches) and every guarded allocation spends steps, and the deadline is
//! checked on every guard call and every [`DEADLINE_EVERY`] steps. So loops inside the
//! generators stop at the deadline too, and a filter cannot build more than about
//! `max_steps` values through them (`[range(1e9)]` stops at the budget instead of filling the
//! memory). Guarded builtins (`+`, `*`, `tojson`, `setpath`, …) refuse results longer than
//! `max_len` bytes or elements. A trip is recorded: the evaluation then fails with
//! `JqError::Limit` even if the filter caught the error.

use std::cell::Cell;
use std::time::Instant;

/// Why the guard stopped an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    Stack,
    Deadline,
    Steps,
    Size,
}

/// Check the clock every this many steps.
pub const DEADLINE_EVERY: u64 = 1024;

thread_local! {
    static BASE: Cell<usize> = const { Cell::new(0) };
    static LIMIT: Cell<usize> = const { Cell::new(0) };
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static TRIPPED: Cell<Option<Trip>> = const { Cell::new(None) };
    static STEPS: Cell<u64> = const { Cell::new(u64::MAX) };
    static MAX_LEN: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Budgets of one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub deadline: Option<Instant>,
    pub steps: u64,
    pub max_len: usize,
}

impl Budget {
    /// No limits (used outside evaluations, e.g. while compiling).
    pub const UNLIMITED: Budget = Budget { deadline: None, steps: u64::MAX, max_len: usize::MAX };
}

/// Set the budgets of the evaluation about to run on this thread.
pub fn start(budget: Budget) {
    DEADLINE.set(budget.deadline);
    STEPS.set(budget.steps);
    MAX_LEN.set(budget.max_len);
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

fn trip(t: Trip) -> Trip {
    TRIPPED.set(Some(t));
    t
}

fn deadline_passed() -> bool {
    DEADLINE.get().is_some_and(|d| Instant::now() >= d)
}

/// Spend one step; checks the deadline every [`DEADLINE_EVERY`] steps.
pub fn tick() -> Result<(), Trip> {
    let left = STEPS.get();
    if left == 0 {
        return Err(trip(Trip::Steps));
    }
    STEPS.set(left - 1);
    if left.is_multiple_of(DEADLINE_EVERY) && deadline_passed() {
        return Err(trip(Trip::Deadline));
    }
    Ok(())
}

/// The deadline alone (no step spent, no stack check), for native loops that jq's own
/// definitions ran without a guard call.
pub fn deadline() -> Result<(), Trip> {
    if deadline_passed() { Err(trip(Trip::Deadline)) } else { Ok(()) }
}

/// Whether a result of `len` bytes or elements is allowed.
pub fn check_len(len: usize) -> Result<(), Trip> {
    if len > MAX_LEN.get() { Err(trip(Trip::Size)) } else { Ok(()) }
}

/// True if the current thread may go deeper (and spend a step). Records a failure for
/// [`take_tripped`].
pub fn check() -> Result<(), Trip> {
    if deadline_passed() {
        return Err(trip(Trip::Deadline));
    }
    let base = BASE.get();
    if base != 0 && base.abs_diff(here()) >= LIMIT.get() {
        return Err(trip(Trip::Stack));
    }
    tick()
}

/// Whether a check failed since the last call, and why (and reset).
pub fn take_tripped() -> Option<Trip> {
    TRIPPED.replace(None)
}

impl Trip {
    /// The message of the `JqError::Limit` (and of the jq error raised at the trip).
    pub fn message(self) -> &'static str {
        match self {
            Trip::Stack => "recursion too deep",
            Trip::Deadline => "time budget exceeded",
            Trip::Steps => "step budget exceeded (too many generator outputs or recursive calls)",
            Trip::Size => "value too large",
        }
    }
}

/// The jq error for a trip.
pub fn error(t: Trip) -> jaq_core::Error<jaq_json::Val> {
    jaq_core::Error::str(t.message())
}
