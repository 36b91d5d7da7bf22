#![doc = include_str!("../README.md")]

mod ast;
mod compile;
mod convert;
mod guard;
pub mod mapping;
mod natives;
mod needs;
mod pool;
mod process;
mod prune;
mod regex;
mod rewrite;
pub mod template;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use mapping::{CompiledMapping, EvalError, Evaluation, FieldValue, MappingError, MappingErrorKind};
pub use process::{Isolation, ProcessStats, worker_main};

use std::time::Instant;

use jaq_core::{Ctx, Vars};
use jaq_json::{Map, Val};
use serde_json::Value;
use serde_json::value::RawValue;

/// Longest filter accepted (bytes). Port's calculation properties are a few hundred bytes.
pub const MAX_FILTER_LEN: usize = 64 * 1024;
/// Longest error message kept (bytes); error values can be arbitrarily large.
const MAX_MESSAGE_LEN: usize = 512;

/// What went wrong with a jq filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JqError {
    /// The filter does not parse or refers to something undefined.
    #[error("jq compile error: {0}")]
    Compile(String),
    /// The filter failed while running, or produced no output.
    #[error("jq runtime error: {0}")]
    Runtime(String),
    /// The result is not JSON (non-string object key, NaN or infinite number, too deep).
    #[error("jq result is not JSON: {0}")]
    NotJson(String),
    /// A resource limit was hit (time limit, filter or input size).
    #[error("jq limit exceeded: {0}")]
    Limit(String),
}

/// Engine settings. `Default` gives the values documented on each field.
#[derive(Debug, Clone)]
pub struct JqConfig {
    /// Wall-clock limit per compile or evaluation, waiting for a free worker included. 2 s.
    pub timeout: Duration,
    /// Worker threads. Available parallelism, clamped to 2..=8.
    pub workers: usize,
    /// Stack size of each worker thread (virtual memory, committed on use). 256 MiB.
    pub stack_size: usize,
    /// Compiled filters kept in the cache (failed compiles included). 1024.
    pub cache_capacity: usize,
    /// Step budget of one evaluation: outputs of the guarded generators (`range`, `repeat`,
    /// `recurse`, `while`, `until`, `limit`, regex matches) plus calls of recursive definitions.
    /// Exhausting it is `JqError::Limit`. 10,000,000 (about 0.2-0.5 s of work in a release build).
    pub max_steps: u64,
    /// Longest string (bytes) or array (elements) that the guarded builtins (`+`, `*`, `tojson`,
    /// `tostring`, `setpath`, assignments) may produce; longer is `JqError::Limit`. 16,777,216.
    pub max_len: usize,
    /// Where evaluations run: worker threads of this process (default) or worker processes
    /// that are killed at their deadline and whose crash cannot take the caller down.
    pub isolation: Isolation,
    /// Most evaluations one tenant (organization) may run at once, so that one cannot hold
    /// every worker. Half the workers, at least 1.
    pub tenant_share: usize,
    /// Address-space limit of each worker process (`RLIMIT_AS`), bytes. 4 GiB.
    pub worker_memory: u64,
}

impl Default for JqConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        JqConfig {
            timeout: Duration::from_secs(2),
            workers: cpus.clamp(2, 8),
            stack_size: 256 * 1024 * 1024,
            cache_capacity: 1024,
            max_steps: 10_000_000,
            max_len: 16 * 1024 * 1024,
            isolation: Isolation::Threads,
            tenant_share: (cpus.clamp(2, 8) / 2).max(1),
            worker_memory: 4 << 30,
        }
    }
}

/// A filter compiled in Port's dialect.
pub struct Compiled {
    source: String,
    code: String,
    filter: compile::Filter,
    /// The filter's result computed without jaq, where it is a plain path or a literal.
    fast: Option<compile::Fast>,
    /// What of its input the filter can observe (an item's text is read keeping only that).
    need: needs::Need,
}

impl Compiled {
    /// `shape` is `compile::Shape::of(&code)`, computed by the caller on a big-stack thread (jaq's
    /// parser is recursive: a deeply nested filter would overflow a request thread's stack).
    fn new(source: &str, code: String, filter: compile::Filter, shape: compile::Shape) -> Self {
        Compiled { source: source.to_owned(), code, filter, fast: shape.fast, need: shape.need }
    }
}

impl Compiled {
    /// The filter as given.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// The filter after the single-quote rewrite and recursion-guard insertion (what jaq compiled).
    pub fn rewritten(&self) -> &str {
        &self.code
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("source", &self.source).finish_non_exhaustive()
    }
}

enum Outcome {
    Filter(compile::Filter, compile::Shape),
    Values(Vec<RawOutput>),
}

struct CacheEntry {
    result: Result<Arc<Compiled>, JqError>,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    map: HashMap<String, CacheEntry>,
    tick: u64,
}

/// Port's jq dialect on jaq: compile cache, worker pool and time limit.
///
/// Cheap to share behind an `Arc`; all methods take `&self`. Evaluation blocks the calling
/// thread until the result arrives or the time limit passes (microseconds for typical filters).
pub struct JqEngine {
    config: JqConfig,
    cache: Mutex<Cache>,
    pool: pool::Pool<Outcome>,
    /// Worker processes, with [`Isolation::Process`].
    procs: Option<process::ProcessPool>,
    /// Evaluations running per tenant (see [`JqConfig::tenant_share`]).
    tenants: Mutex<HashMap<Arc<str>, usize>>,
    tenants_cv: std::sync::Condvar,
    /// Evaluations ended by a limit (time, steps, size, budget), for `/metrics`.
    limits_hit: std::sync::atomic::AtomicU64,
}

/// The time budget of one request or one delivery, shared by every evaluation made for it, and
/// the tenant it is spent for. Make one with [`JqEngine::budget_for`] and pass it to the `…_in`
/// methods: when it runs out, further evaluations fail at once with `JqError::Limit`.
#[derive(Debug, Clone)]
pub struct JqBudget {
    tenant: Arc<str>,
    deadline: Instant,
    total: Duration,
}

impl JqBudget {
    /// A budget of `total` for `tenant`, starting now.
    pub fn new(tenant: &str, total: Duration) -> Self {
        JqBudget { tenant: Arc::from(tenant), deadline: Instant::now() + total, total }
    }
    /// Time left.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
    /// Whether the budget is spent.
    pub fn is_spent(&self) -> bool {
        Instant::now() >= self.deadline
    }
    fn spent_error(&self) -> JqError {
        JqError::Limit(format!(
            "the jq time budget of {} ms for this request was used up by earlier evaluations",
            self.total.as_millis()
        ))
    }
}

/// An engine bound to one request's [`JqBudget`]: the same calls as the engine, every
/// evaluation spending that budget (for code that passes the engine down a call tree).
pub struct JqScope<'a> {
    engine: &'a JqEngine,
    budget: JqBudget,
}

impl JqScope<'_> {
    /// [`JqEngine::compile`].
    pub fn compile(&self, filter: &str) -> Result<Arc<Compiled>, JqError> {
        self.engine.compile(filter)
    }
    /// [`JqEngine::first_in`] with this scope's budget.
    pub fn first(&self, filter: &str, input: &Value) -> Result<Value, JqError> {
        self.engine.first_in(&self.budget, filter, input)
    }
    /// [`JqEngine::first_compiled_in`] with this scope's budget.
    pub fn first_compiled(&self, compiled: &Arc<Compiled>, input: &Value) -> Result<Value, JqError> {
        self.engine.first_compiled_in(&self.budget, compiled, input)
    }
    /// [`JqEngine::first_many_in`] with this scope's budget.
    pub fn first_many(&self, filters: &[Arc<Compiled>], input: &Value) -> Result<Vec<Result<Value, JqError>>, JqError> {
        self.engine.first_many_in(&self.budget, filters, input)
    }
    /// The budget.
    pub fn budget(&self) -> &JqBudget {
        &self.budget
    }
    /// The engine (to compile a [`CompiledMapping`] with).
    pub fn engine(&self) -> &JqEngine {
        self.engine
    }
}

/// Holds one of a tenant's evaluation slots.
struct TenantSlot<'a> {
    engine: &'a JqEngine,
    tenant: Arc<str>,
}

impl Drop for TenantSlot<'_> {
    fn drop(&mut self) {
        let mut t = self.engine.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = t.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.tenant);
            }
        }
        drop(t);
        self.engine.tenants_cv.notify_all();
    }
}

impl Default for JqEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for JqEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JqEngine").field("config", &self.config).finish_non_exhaustive()
    }
}

impl JqEngine {
    /// An engine with the default [`JqConfig`] (2 s time limit).
    pub fn new() -> Self {
        Self::with_config(JqConfig::default())
    }

    /// An engine with the default settings and the given time limit.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self::with_config(JqConfig { timeout, ..JqConfig::default() })
    }

    /// An engine with explicit settings.
    pub fn with_config(config: JqConfig) -> Self {
        let pool = pool::Pool::new(config.workers, config.stack_size);
        let procs = match &config.isolation {
            Isolation::Threads => None,
            Isolation::Process { program, args } => {
                Some(process::ProcessPool::new(program.clone(), args.clone(), config.workers, config.worker_memory))
            }
        };
        JqEngine {
            config,
            cache: Mutex::new(Cache::default()),
            pool,
            procs,
            tenants: Mutex::default(),
            tenants_cv: std::sync::Condvar::new(),
            limits_hit: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The engine's settings.
    pub fn config(&self) -> &JqConfig {
        &self.config
    }

    /// Worker threads that were abandoned after a timeout and are still running.
    pub fn runaway_workers(&self) -> usize {
        self.pool.runaway()
    }

    /// Live worker threads, runaway ones included.
    pub fn worker_threads(&self) -> usize {
        self.pool.threads()
    }

    /// Evaluations (each filter of a [`first_many`](Self::first_many) batch counts) that ended
    /// with [`JqError::Limit`] since the engine started: time limit, step or size budget, a
    /// spent request budget, no free worker.
    pub fn limits_hit(&self) -> u64 {
        self.limits_hit.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Worker-process counters (all zero with [`Isolation::Threads`]).
    pub fn process_stats(&self) -> ProcessStats {
        self.procs.as_ref().map(process::ProcessPool::stats).unwrap_or_default()
    }

    /// This engine with every evaluation spending `budget`.
    pub fn scope(&self, budget: JqBudget) -> JqScope<'_> {
        JqScope { engine: self, budget }
    }

    /// A budget of the engine's time limit for `tenant`, for one request.
    pub fn budget_for(&self, tenant: &str) -> JqBudget {
        JqBudget::new(tenant, self.config.timeout)
    }

    /// Take one of `tenant`'s evaluation slots, waiting (within the budget) while the tenant
    /// already runs its share.
    fn enter<'a>(&'a self, budget: &JqBudget) -> Result<TenantSlot<'a>, JqError> {
        let share = self.config.tenant_share.max(1);
        let mut t = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let n = t.get(&budget.tenant).copied().unwrap_or(0);
            if n < share {
                t.insert(Arc::clone(&budget.tenant), n + 1);
                return Ok(TenantSlot { engine: self, tenant: Arc::clone(&budget.tenant) });
            }
            let left = budget.remaining();
            if left.is_zero() {
                return Err(JqError::Limit(format!(
                    "this organization already runs {share} jq evaluations at once (its share of the workers) \
                     and none finished within the time budget"
                )));
            }
            t = self.tenants_cv.wait_timeout(t, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Compile `filter` in Port's dialect, cached by source text (failures are cached too,
    /// except time limits).
    pub fn compile(&self, filter: &str) -> Result<Arc<Compiled>, JqError> {
        {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache.tick += 1;
            let tick = cache.tick;
            if let Some(entry) = cache.map.get_mut(filter) {
                entry.last_used = tick;
                return entry.result.clone();
            }
        }
        let result = self.compile_uncached(filter);
        if matches!(result, Err(JqError::Limit(_))) {
            return result;
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.map.len() >= self.config.cache_capacity.max(1) {
            // Evict the least recently used entry (O(n), only on a miss with a full cache).
            if let Some(oldest) = cache.map.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone()) {
                cache.map.remove(&oldest);
            }
        }
        let last_used = cache.tick;
        let entry = cache.map.entry(filter.to_owned()).or_insert(CacheEntry { result, last_used });
        entry.result.clone()
    }

    fn compile_uncached(&self, filter: &str) -> Result<Arc<Compiled>, JqError> {
        check_filter(filter)?;
        let code = rewrite::rewrite(filter);
        let code2 = code.clone();
        // The parser is recursive: compile on a big-stack worker, under the time limit.
        let out = self.pool.run(
            self.config.timeout,
            Box::new(move || compile::compile(&code2).map(|f| Outcome::Filter(f, compile::Shape::of(&code2)))),
        );
        match out {
            Ok(Outcome::Filter(f, shape)) => Ok(Arc::new(Compiled::new(filter, code, f, shape))),
            Ok(_) => Err(JqError::Compile("internal error: unexpected outcome".to_owned())),
            Err(e) => Err(compile_context(e, filter)),
        }
    }

    /// Port's calculation-property semantics: the first output of `filter` over `input`.
    ///
    /// Errors: compile errors, runtime errors, no output (`Runtime`), a result that is not JSON
    /// (`NotJson`), or the time limit (`Limit`).
    pub fn first(&self, filter: &str, input: &Value) -> Result<Value, JqError> {
        let compiled = self.compile(filter)?;
        self.first_compiled(&compiled, input)
    }

    /// [`first`](Self::first) with every error mapped to `null`, as Port does.
    pub fn first_or_null(&self, filter: &str, input: &Value) -> Value {
        self.first(filter, input).unwrap_or(Value::Null)
    }

    /// [`first`](Self::first) for an already compiled filter.
    pub fn first_compiled(&self, compiled: &Arc<Compiled>, input: &Value) -> Result<Value, JqError> {
        self.first_compiled_in(&self.budget_for(""), compiled, input)
    }

    /// [`first`](Self::first) within a request's [`JqBudget`].
    pub fn first_in(&self, budget: &JqBudget, filter: &str, input: &Value) -> Result<Value, JqError> {
        let compiled = self.compile(filter)?;
        self.first_compiled_in(budget, &compiled, input)
    }

    /// [`first_compiled`](Self::first_compiled) within a request's [`JqBudget`].
    pub fn first_compiled_in(
        &self,
        budget: &JqBudget,
        compiled: &Arc<Compiled>,
        input: &Value,
    ) -> Result<Value, JqError> {
        let mut out = self.first_many_in(budget, std::slice::from_ref(compiled), input)?;
        out.pop().unwrap_or_else(|| Err(JqError::Runtime("internal error: no outcome".to_owned())))
    }
}

/// Filter checks made before compiling (size, reserved names).
pub(crate) fn check_filter(filter: &str) -> Result<(), JqError> {
    if filter.len() > MAX_FILTER_LEN {
        return Err(JqError::Limit(format!("filter longer than {MAX_FILTER_LEN} bytes")));
    }
    if filter.contains(rewrite::RESERVED) {
        return Err(JqError::Compile(format!("names starting with `{}` are reserved", rewrite::RESERVED)));
    }
    Ok(())
}

/// A compile error names the filter.
pub(crate) fn compile_context(e: JqError, filter: &str) -> JqError {
    match e {
        JqError::Compile(msg) => JqError::Compile(format!("{msg} (in filter `{}`)", truncate(filter.to_owned()))),
        e => e,
    }
}

/// One output of a raw evaluation (see [`JqEngine::all_outputs`]).
pub type RawOutput = Result<Value, JqError>;

impl JqEngine {
    fn budget(&self) -> guard::Budget {
        guard::Budget {
            deadline: Some(std::time::Instant::now() + self.config.timeout),
            steps: self.config.max_steps,
            max_len: self.config.max_len,
        }
    }

    /// Plain jq: compile `filter` **without** Port's single-quote rewrite and return every
    /// output (at most `max_outputs`), each a value or the error that ended the stream (an
    /// error is always the last item). Limits apply as for [`first`](Self::first). Used for
    /// conformance tests against jq's own test suite; not cached.
    pub fn all_outputs(&self, filter: &str, input: &Value, max_outputs: usize) -> Result<Vec<RawOutput>, JqError> {
        if filter.len() > MAX_FILTER_LEN {
            return Err(JqError::Limit(format!("filter longer than {MAX_FILTER_LEN} bytes")));
        }
        if filter.contains(rewrite::RESERVED) {
            return Err(JqError::Compile(format!("names starting with `{}` are reserved", rewrite::RESERVED)));
        }
        let input = convert::to_val(input)?;
        let code = rewrite::guard_defs_only(filter);
        let budget = self.budget();
        let work = Box::new(move || {
            let filter = compile::compile(&code)?;
            Ok(Outcome::Values(run_all(&filter, input, budget, max_outputs)))
        });
        match self.pool.run(self.config.timeout, work)? {
            Outcome::Values(v) => Ok(v),
            _ => Err(JqError::Runtime("internal error: unexpected outcome".to_owned())),
        }
    }
}

fn exn_message(exn: jaq_core::Exn<Val>) -> JqError {
    JqError::Runtime(match exn.get_err() {
        // `error("msg")` reads as `msg`, other error values as JSON.
        Ok(e) => truncate(match e.into_val() {
            Val::TStr(b) => String::from_utf8_lossy(&b).into_owned(),
            v => v.to_string(),
        }),
        Err(_) => "filter halted".to_owned(),
    })
}

fn tripped() -> Option<JqError> {
    guard::take_tripped().map(|t| JqError::Limit(t.message().to_owned()))
}

/// Evaluate on the current thread, collecting at most `max` outputs.
fn run_all(filter: &compile::Filter, input: Val, budget: guard::Budget, max: usize) -> Vec<RawOutput> {
    let env = Val::obj(Map::default());
    let ctx = Ctx::<compile::D>::new(&filter.lut, Vars::new([env]));
    guard::take_tripped();
    guard::start(budget);
    let mut out = Vec::new();
    for item in filter.id.run((ctx, input)).take(max) {
        match item {
            Ok(v) => out.push(convert::from_val(&v)),
            Err(e) => {
                out.push(Err(exn_message(e)));
                break;
            }
        }
    }
    guard::start(guard::Budget::UNLIMITED);
    if let Some(e) = tripped() {
        out.push(Err(e));
    }
    out
}

impl JqEngine {
    /// [`first_compiled`](Self::first_compiled) for several filters over the same input, in one
    /// worker hand-off and with one input conversion (an Ocean-style mapping: a selector plus
    /// one filter per field). Each filter gets its own budget; the time limit covers the batch.
    pub fn first_many(&self, filters: &[Arc<Compiled>], input: &Value) -> Result<Vec<Result<Value, JqError>>, JqError> {
        self.first_many_in(&self.budget_for(""), filters, input)
    }

    /// [`first_many`](Self::first_many) within a request's [`JqBudget`]: the batch runs in one
    /// of the tenant's slots and must end before the budget does.
    pub fn first_many_in(
        &self,
        budget: &JqBudget,
        filters: &[Arc<Compiled>],
        input: &Value,
    ) -> Result<Vec<Result<Value, JqError>>, JqError> {
        let out = self.first_many_unmetered(budget, filters, input);
        let limits = match &out {
            Err(JqError::Limit(_)) => filters.len().max(1),
            Err(_) => 0,
            Ok(rs) => rs.iter().filter(|r| matches!(r, Err(JqError::Limit(_)))).count(),
        };
        if limits > 0 {
            self.limits_hit.fetch_add(limits as u64, std::sync::atomic::Ordering::Relaxed);
        }
        out
    }

    fn first_many_unmetered(
        &self,
        budget: &JqBudget,
        filters: &[Arc<Compiled>],
        input: &Value,
    ) -> Result<Vec<Result<Value, JqError>>, JqError> {
        self.eval_many(budget, filters, input, None)
    }

    /// Every filter on every input, in one hand-off to a worker (process or thread): `base` itself
    /// (`items` None), or `base` with `key` set to each item. Results item by item, filter by
    /// filter. The single-input call is the one-item case of the same code.
    fn eval_many(
        &self,
        budget: &JqBudget,
        filters: &[Arc<Compiled>],
        base: &Value,
        items: Option<(&str, Items<'_>)>,
    ) -> Result<Vec<Result<Value, JqError>>, JqError> {
        if budget.is_spent() {
            return Err(budget.spent_error());
        }
        let _slot = self.enter(budget)?;
        let deadline = budget.deadline;
        if let Some(procs) = &self.procs {
            let refs: Vec<&Compiled> = filters.iter().map(|c| c.as_ref()).collect();
            return procs.eval(&refs, base, items, deadline, self.config.max_steps, self.config.max_len);
        }
        let base = convert::to_val(base)?;
        let need = |key| needs::of_items(filters.iter().map(|c| c.as_ref()), key);
        let inputs: Vec<Val> = match items {
            None => vec![base],
            Some((key, Items::Values(items))) => {
                let need = need(key);
                items
                    .iter()
                    .map(|item| Ok(with_key(&base, key, convert::to_val_needed(item, &need)?)))
                    .collect::<Result<_, JqError>>()?
            }
            Some((key, Items::Texts(items))) => {
                let need = need(key);
                items
                    .iter()
                    .map(|item| {
                        let v = convert::read_needed(item.get(), &need).map_err(|e| JqError::NotJson(e.to_string()))?;
                        Ok(with_key(&base, key, v))
                    })
                    .collect::<Result<_, JqError>>()?
            }
        };
        let filters: Vec<Arc<Compiled>> = filters.to_vec();
        let config = self.config.clone();
        let timeout = budget.remaining();
        let work = Box::new(move || {
            let mut out = Vec::with_capacity(inputs.len() * filters.len());
            for input in &inputs {
                for c in &filters {
                    let budget =
                        guard::Budget { deadline: Some(deadline), steps: config.max_steps, max_len: config.max_len };
                    out.push(run_first(c, input.clone(), budget));
                }
            }
            Ok(Outcome::Values(out))
        });
        match self.pool.run(timeout, work)? {
            Outcome::Values(v) => Ok(v),
            _ => Err(JqError::Runtime("internal error: unexpected outcome".to_owned())),
        }
    }
}

impl JqEngine {
    /// [`first_many_in`](Self::first_many_in) over one input per item: `base` (an object; any
    /// other value counts as `{}`) with `key` set to the item — an Ocean or webhook mapping's
    /// `.item` beside the delivery's `.body`. `base` is converted (or sent to a worker process)
    /// once for all the items, never once per item, and the whole call is one hand-off. Every
    /// filter of every item gets its own step budget; the time limit covers the call. The
    /// outcomes come item by item, `filters.len()` each. `Err`: the call itself failed (the
    /// budget ran out, the tenant's share was busy, a worker died) and no item has values.
    pub fn first_many_items_in(
        &self,
        budget: &JqBudget,
        filters: &[Arc<Compiled>],
        base: &Value,
        key: &str,
        items: &[Value],
    ) -> Result<Vec<Vec<Result<Value, JqError>>>, JqError> {
        self.items_in(budget, filters, base, key, Items::Values(items))
    }

    /// [`first_many_items_in`](Self::first_many_items_in) over items given as JSON texts: a
    /// worker process receives each as it is, so the caller never builds the values (an
    /// automation's events, read as text, parsed only for the runs they start).
    pub fn first_many_texts_in(
        &self,
        budget: &JqBudget,
        filters: &[Arc<Compiled>],
        base: &Value,
        key: &str,
        items: &[Box<RawValue>],
    ) -> Result<Vec<Vec<Result<Value, JqError>>>, JqError> {
        self.items_in(budget, filters, base, key, Items::Texts(items))
    }

    fn items_in(
        &self,
        budget: &JqBudget,
        filters: &[Arc<Compiled>],
        base: &Value,
        key: &str,
        items: Items<'_>,
    ) -> Result<Vec<Vec<Result<Value, JqError>>>, JqError> {
        let out = if items.is_empty() || filters.is_empty() {
            Ok(Vec::new())
        } else {
            self.eval_many(budget, filters, base, Some((key, items)))
        };
        let limits = match &out {
            Err(JqError::Limit(_)) => (filters.len() * items.len()).max(1),
            Err(_) => 0,
            Ok(rs) => rs.iter().filter(|r| matches!(r, Err(JqError::Limit(_)))).count(),
        };
        if limits > 0 {
            self.limits_hit.fetch_add(limits as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let n = filters.len().max(1);
        out.map(|flat| {
            let mut flat = flat.into_iter();
            (0..items.len()).map(|_| flat.by_ref().take(n).collect()).collect()
        })
    }
}

/// The items of one hand-off: values, or JSON texts (validated, e.g. by
/// [`RawValue::from_string`]) that a worker process receives as they are.
#[derive(Clone, Copy, serde::Serialize)]
#[serde(untagged)]
pub(crate) enum Items<'a> {
    Values(&'a [Value]),
    Texts(&'a [Box<RawValue>]),
}

impl Items<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Items::Values(v) => v.len(),
            Items::Texts(t) => t.len(),
        }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `base` (an object; anything else counts as `{}`) with `key` set to `item`. jaq's objects
/// and arrays are reference-counted: this copies `base`'s top-level entries, not its contents.
pub(crate) fn with_key(base: &Val, key: &str, item: Val) -> Val {
    let mut m = match base {
        Val::Obj(o) => (**o).clone(),
        _ => Map::default(),
    };
    m.insert(Val::utf8_str(key.as_bytes().to_vec()), item);
    Val::obj(m)
}

/// Evaluate on the current thread, taking at most one output.
pub(crate) fn run_first(compiled: &Compiled, input: Val, budget: guard::Budget) -> Result<Value, JqError> {
    convert::from_val(&run_first_val(compiled, input, budget)?)
}

/// [`run_first`] without the conversion of its result to JSON.
pub(crate) fn run_first_val(compiled: &Compiled, input: Val, budget: guard::Budget) -> Result<Val, JqError> {
    if let Some(v) = compiled.fast.as_ref().and_then(|f| f.eval(&input)) {
        return Ok(v);
    }
    let env = Val::obj(Map::default()); // `$ENV` and `env` are `{}`
    let filter = &compiled.filter;
    let ctx = Ctx::<compile::D>::new(&filter.lut, Vars::new([env]));
    guard::take_tripped(); // reset
    guard::start(budget);
    let mut outputs = filter.id.run((ctx, input));
    let first = outputs.next();
    drop(outputs);
    guard::start(guard::Budget::UNLIMITED);
    if let Some(e) = tripped() {
        return Err(e);
    }
    match first {
        None => Err(JqError::Runtime("filter produced no output".to_owned())),
        Some(Ok(v)) => Ok(v),
        // Never `jaq_core::unwrap_valr`: it calls `std::process::exit` on `halt`.
        Some(Err(exn)) => Err(exn_message(exn)),
    }
}

/// Cut `s` to at most [`MAX_MESSAGE_LEN`] bytes on a character boundary.
pub(crate) fn truncate(mut s: String) -> String {
    if s.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}
