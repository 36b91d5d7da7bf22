//! Process isolation: evaluation in worker *processes* that the engine can kill.
//!
//! jaq evaluates recursively on the native stack and has no cancellation: a filter or a value
//! deep enough overflows the stack (an abort, whatever thread it runs on), and a long native
//! operation cannot be stopped from outside. A worker process confines both: a crash ends only
//! that process, and a deadline ends it with `SIGKILL` — the work stops, no runaway thread is
//! left behind. The worker is the server's own binary re-executed in worker mode (it calls
//! [`worker_main`]); it limits its address space (`RLIMIT_AS`), lowers its CPU priority, and
//! answers one request per line on stdin with one line on stdout.
//!
//! Protocol (JSON lines). Request: `{"f": [filter source, …], "i": input, "ms": budget in ms,
//! "steps": step budget, "len": size cap}`, and for a batch of items `"key"` and `"items"` (the
//! filters run over `i` with `key` set to each item); items given as JSON texts are written
//! into the line as they are (their line breaks, whitespace, become spaces). The worker reads the input and
//! the items straight into jaq values. Response: `{"r": [{"ok": result} | {"e": [kind, message]},
//! …]}` or `{"fail": [kind, message]}`; the worker writes each result's JSON straight from its
//! jaq value. The caller reads each result as raw text first and parses it on its own, so a
//! result nested too deeply for the parser is that filter's error, not the batch's.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::{Compiled, JqError, compile, convert, guard, needs, rewrite};
use jaq_json::Val;

/// Environment variable that passes the worker's address-space limit (bytes).
const MEMORY_ENV: &str = "PORTOLAN_JQ_WORKER_MEMORY";
/// Stack of the worker's evaluation thread (virtual memory, committed on use).
const WORKER_STACK: usize = 256 * 1024 * 1024;
/// Compiled filters a worker keeps (it forgets them all when full).
const WORKER_CACHE: usize = 1024;

/// Where evaluation runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Worker threads of this process. A filter that overflows the stack (deep native recursion)
    /// aborts the process, and a long native operation outlives its deadline. For library use,
    /// tests and trusted filters.
    #[default]
    Threads,
    /// Worker processes started as `program args…`; the program must call [`worker_main`] when
    /// given those arguments (the `portolan` binary does for `__jq-worker`).
    Process { program: PathBuf, args: Vec<String> },
}

/// Counters of the worker processes, for tests, metrics and readiness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessStats {
    /// Live worker processes (busy and idle).
    pub live: usize,
    /// Worker processes evaluating right now.
    pub busy: usize,
    /// Workers killed because their evaluation ran past its deadline.
    pub killed: u64,
    /// Workers that died during an evaluation (stack overflow, memory limit, …).
    pub crashed: u64,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<std::io::Result<String>>,
}

impl Worker {
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => status.to_string(),
            Err(e) => e.to_string(),
        }
    }
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Worker>,
    live: usize,
}

pub(crate) struct ProcessPool {
    program: PathBuf,
    args: Vec<String>,
    memory: u64,
    max: usize,
    state: Mutex<PoolState>,
    cv: Condvar,
    killed: AtomicU64,
    crashed: AtomicU64,
}

fn lock(m: &Mutex<PoolState>) -> MutexGuard<'_, PoolState> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        for w in lock(&self.state).idle.drain(..) {
            w.stop();
        }
    }
}

/// One filter's outcome as the worker reports it.
pub(crate) type Outcome = Result<Value, JqError>;

impl ProcessPool {
    pub(crate) fn new(program: PathBuf, args: Vec<String>, workers: usize, memory: u64) -> Self {
        ProcessPool {
            program,
            args,
            memory,
            max: workers.max(1),
            state: Mutex::new(PoolState::default()),
            cv: Condvar::new(),
            killed: AtomicU64::new(0),
            crashed: AtomicU64::new(0),
        }
    }

    pub(crate) fn stats(&self) -> ProcessStats {
        let s = lock(&self.state);
        ProcessStats {
            live: s.live,
            busy: s.live - s.idle.len(),
            killed: self.killed.load(Ordering::Relaxed),
            crashed: self.crashed.load(Ordering::Relaxed),
        }
    }

    fn spawn(&self) -> Result<Worker, JqError> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .env(MEMORY_ENV, self.memory.to_string())
            // mimalloc (the `portolan` binary's allocator) reserves 1 GiB of address space at
            // its first allocation, before the worker sets its RLIMIT_AS: with a limit of
            // 1.25 GiB or less the worker could then not map its evaluation stack.
            .env("MIMALLOC_ARENA_RESERVE", "64MiB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                JqError::Limit(format!("cannot start a jq worker process ({}): {e}", self.program.display()))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(JqError::Limit("cannot talk to the jq worker process".to_owned()));
        };
        let (tx, rx) = channel();
        let reader = std::thread::Builder::new().name("portolan-jq-read".to_owned()).spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let end = line.is_err();
                if tx.send(line).is_err() || end {
                    break;
                }
            }
        });
        if reader.is_err() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(JqError::Limit("cannot start a jq worker reader thread".to_owned()));
        }
        Ok(Worker { child, stdin, lines: rx })
    }

    /// An idle worker, a new one while fewer than `max` live, or wait until `deadline`.
    fn checkout(&self, deadline: Instant) -> Result<Worker, JqError> {
        let mut s = lock(&self.state);
        loop {
            if let Some(w) = s.idle.pop() {
                return Ok(w);
            }
            if s.live < self.max {
                s.live += 1;
                drop(s);
                return self.spawn().inspect_err(|_| self.checkin(None));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(JqError::Limit(format!(
                    "all {} jq worker processes stayed busy until this evaluation's budget ran out",
                    self.max
                )));
            }
            s = self.cv.wait_timeout(s, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    fn checkin(&self, w: Option<Worker>) {
        let mut s = lock(&self.state);
        match w {
            Some(w) => s.idle.push(w),
            None => s.live -= 1,
        }
        drop(s);
        self.cv.notify_one();
    }

    /// Evaluate `filters` (sources in Port's dialect) over `input` in a worker, within `deadline`.
    ///
    /// With `items` = `(key, items)`, the filters run over one input per item — `input` (an
    /// object) with `key` set to the item — and the outcomes come item by item (`filters.len()`
    /// each): `input` crosses to the worker once for all the items.
    pub(crate) fn eval(
        &self,
        filters: &[&Compiled],
        input: &Value,
        items: Option<(&str, crate::Items<'_>)>,
        deadline: Instant,
        steps: u64,
        max_len: usize,
    ) -> Result<Vec<Outcome>, JqError> {
        let sources: Vec<&str> = filters.iter().map(|c| c.source()).collect();
        let ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        // Serialized from borrowed values: the input and the items are written once, never
        // first copied into a request value.
        let req = Request {
            f: &sources,
            i: input,
            ms,
            steps,
            len: max_len,
            key: items.map(|(k, _)| k),
            items: items.map(|(_, v)| v),
        };
        let mut line = serde_json::to_vec(&req).map_err(|e| JqError::NotJson(e.to_string()))?;
        // One request per line: a line break inside would split it, and the worker's answers
        // would then belong to the wrong requests. Serialized values never hold one; an item
        // text laid out over lines does, and there a raw line break can only be whitespace, so a
        // space replaces it exactly.
        for b in line.iter_mut().filter(|b| **b == b'\n') {
            *b = b' ';
        }
        line.push(b'\n');
        let expected = filters.len() * items.map_or(1, |(_, items)| items.len());
        // A worker found dead when written to (killed from outside while idle) is replaced once.
        for attempt in 0..2 {
            let mut w = self.checkout(deadline)?;
            if w.stdin.write_all(&line).and_then(|()| w.stdin.flush()).is_err() {
                w.stop();
                self.checkin(None);
                if attempt == 0 {
                    continue;
                }
                return Err(JqError::Limit("the jq worker process could not be reached".to_owned()));
            }
            let wait = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            return match w.lines.recv_timeout(wait) {
                Ok(Ok(reply)) => {
                    self.checkin(Some(w));
                    parse_reply(&reply, expected)
                }
                Err(RecvTimeoutError::Timeout) => {
                    w.stop();
                    self.killed.fetch_add(1, Ordering::Relaxed);
                    self.checkin(None);
                    Err(JqError::Limit(
                        "jq evaluation ran past its time budget; the worker process running it was stopped".to_owned(),
                    ))
                }
                Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => {
                    let status = w.stop();
                    self.crashed.fetch_add(1, Ordering::Relaxed);
                    self.checkin(None);
                    Err(JqError::Limit(format!(
                        "the filter crashed its jq worker process ({status}): it recursed or built values too deeply \
                         nested, or used more than the worker's memory limit; the server is unaffected"
                    )))
                }
            };
        }
        Err(JqError::Limit("the jq worker process could not be reached".to_owned()))
    }
}

/// A request line to a worker process (read back by [`answer`]).
#[derive(serde::Serialize)]
struct Request<'a> {
    f: &'a [&'a str],
    i: &'a Value,
    ms: u64,
    steps: u64,
    len: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<crate::Items<'a>>,
}

fn error_to_wire(e: &JqError) -> Value {
    match e {
        JqError::Compile(m) => json!(["compile", m]),
        JqError::Runtime(m) => json!(["runtime", m]),
        JqError::NotJson(m) => json!(["notjson", m]),
        JqError::Limit(m) => json!(["limit", m]),
    }
}

fn error_from_wire(v: &Value) -> JqError {
    let kind = v.get(0).and_then(Value::as_str).unwrap_or("");
    let msg = v.get(1).and_then(Value::as_str).unwrap_or("").to_owned();
    match kind {
        "compile" => JqError::Compile(msg),
        "runtime" => JqError::Runtime(msg),
        "notjson" => JqError::NotJson(msg),
        _ => JqError::Limit(msg),
    }
}

/// A worker's answer as the caller reads it: each result kept as its text until it is parsed
/// on its own.
#[derive(serde::Deserialize)]
struct Reply<'a> {
    #[serde(borrow, default)]
    r: Option<Vec<ReplyEntry<'a>>>,
    #[serde(default)]
    fail: Option<Value>,
}

#[derive(serde::Deserialize)]
struct ReplyEntry<'a> {
    // `Option`'s own deserializer would read a `null` result as no result.
    #[serde(borrow, default, deserialize_with = "present")]
    ok: Option<&'a RawValue>,
    #[serde(default)]
    e: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

fn parse_reply(reply: &str, n: usize) -> Result<Vec<Outcome>, JqError> {
    let v: Reply<'_> = serde_json::from_str(reply)
        .map_err(|e| JqError::Limit(format!("unreadable answer from the jq worker process: {e}")))?;
    if let Some(fail) = v.fail {
        return Err(error_from_wire(&fail));
    }
    let Some(results) = v.r.filter(|r| r.len() == n) else {
        return Err(JqError::Limit("malformed answer from the jq worker process".to_owned()));
    };
    Ok(results
        .into_iter()
        .map(|r| match (r.ok, r.e) {
            // Parsed one by one: a result too deeply nested for the parser is that filter's error.
            (Some(text), _) => serde_json::from_str(text.get()).map_err(|e| {
                JqError::NotJson(format!("the result cannot be read back ({e}); results may nest at most 128 levels"))
            }),
            (None, Some(e)) => Err(error_from_wire(&e)),
            (None, None) => Err(JqError::Limit("malformed answer from the jq worker process".to_owned())),
        })
        .collect())
}

/// The worker process: call this from `main` when started as a worker (see [`Isolation`]).
/// Serves requests on stdin until it closes, then exits 0.
pub fn worker_main() -> std::process::ExitCode {
    // A worker that dies of a tenant's filter must not leave a core file (gigabytes each, one per
    // crash: a disk-filling attack otherwise).
    let no_core = rustix::process::Rlimit { current: Some(0), maximum: Some(0) };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Core, no_core) {
        eprintln!("portolan jq worker: cannot turn off core dumps: {e}");
    }
    if let Some(bytes) = std::env::var(MEMORY_ENV).ok().and_then(|m| m.parse::<u64>().ok()) {
        let limit = rustix::process::Rlimit { current: Some(bytes), maximum: Some(bytes) };
        if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::As, limit) {
            eprintln!("portolan jq worker: cannot limit its memory to {bytes} bytes: {e}");
        }
    }
    // Below the server's threads: a busy worker must not slow down request handling.
    let _ = rustix::process::setpriority_process(None, 10);
    let served =
        std::thread::Builder::new().name("portolan-jq-worker".to_owned()).stack_size(WORKER_STACK).spawn(|| {
            guard::arm(WORKER_STACK / 4 * 3);
            serve(std::io::stdin().lock(), std::io::stdout().lock())
        });
    match served {
        Err(e) => {
            eprintln!(
                "portolan jq worker: cannot start its evaluation thread ({} MiB of stack) within its memory limit: {e}",
                WORKER_STACK >> 20
            );
            std::process::ExitCode::FAILURE
        }
        Ok(h) => match h.join() {
            Ok(Ok(())) => std::process::ExitCode::SUCCESS,
            _ => std::process::ExitCode::FAILURE,
        },
    }
}

fn serve(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    let mut cache = Cache::default();
    for line in input.lines() {
        let reply = answer(&line?, &mut cache);
        output.write_all(&reply)?;
        output.write_all(b"\n")?;
        output.flush()?;
    }
    Ok(())
}

/// What a worker keeps between requests.
#[derive(Default)]
struct Cache {
    /// Compiled filters by source.
    filters: HashMap<String, Result<Arc<Compiled>, JqError>>,
    /// The last request's input, as text and as read: a delivery's chunks of items come with
    /// the same input (the whole delivery), read once.
    input: Option<(String, Val)>,
}

/// A request line as a worker reads it: the input kept as text until it is known not to be the
/// last request's; the items as text, read into jaq values keeping what the filters can observe
/// of them.
#[derive(serde::Deserialize)]
struct WireRequest<'a> {
    f: Vec<String>,
    #[serde(borrow)]
    i: &'a RawValue,
    #[serde(default)]
    ms: u64,
    #[serde(default)]
    steps: u64,
    #[serde(default)]
    len: usize,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, borrow)]
    items: Option<Vec<&'a RawValue>>,
}

fn answer(line: &str, cache: &mut Cache) -> Vec<u8> {
    let fail = |e: JqError| json!({"fail": error_to_wire(&e)}).to_string().into_bytes();
    let req: WireRequest = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return fail(JqError::Limit(format!("unreadable request: {e}"))),
    };
    let budget = guard::Budget {
        deadline: Some(Instant::now() + Duration::from_millis(req.ms)),
        steps: req.steps,
        max_len: req.len,
    };
    if cache.filters.len() + req.f.len() > WORKER_CACHE {
        cache.filters.clear();
    }
    let filters: Vec<_> =
        req.f.iter().map(|src| cache.filters.entry(src.clone()).or_insert_with(|| compile_here(src)).clone()).collect();
    let input = match &cache.input {
        Some((text, v)) if text == req.i.get() => v.clone(),
        _ => {
            cache.input = None; // the old one is not needed while the new one is read
            match serde_json::from_str::<convert::WireVal>(req.i.get()) {
                Ok(v) => {
                    cache.input = Some((req.i.get().to_owned(), v.0.clone()));
                    v.0
                }
                Err(e) => return fail(JqError::Limit(format!("unreadable request: {e}"))),
            }
        }
    };
    let inputs = match req.items {
        None => vec![input],
        Some(items) => {
            let key = req.key.as_deref().unwrap_or("item");
            let need = needs::of_items(filters.iter().filter_map(|c| c.as_deref().ok()), key);
            let mut read = Vec::with_capacity(items.len());
            for item in items {
                match convert::read_needed(item.get(), &need) {
                    Ok(v) => read.push(crate::with_key(&input, key, v)),
                    Err(e) => return fail(JqError::Limit(format!("unreadable request: {e}"))),
                }
            }
            read
        }
    };
    // `{"r": [{"ok": result} | {"e": [kind, message]}, …]}`, each result written as JSON text
    // straight from its jaq value (the text of `from_val`).
    let mut out = Vec::with_capacity(64 * inputs.len() * filters.len() + 8);
    out.extend_from_slice(b"{\"r\":[");
    for (n, input) in inputs.iter().enumerate() {
        for (m, compiled) in filters.iter().enumerate() {
            if n + m > 0 {
                out.push(b',');
            }
            let mark = out.len();
            let written = compiled.as_ref().map_err(Clone::clone).and_then(|c| {
                let v = crate::run_first_val(c, input.clone(), budget)?;
                out.extend_from_slice(b"{\"ok\":");
                convert::write_json(&v, &mut out)
            });
            match written {
                Ok(()) => out.push(b'}'),
                Err(e) => {
                    out.truncate(mark);
                    out.extend_from_slice(json!({"e": error_to_wire(&e)}).to_string().as_bytes());
                }
            }
        }
    }
    out.extend_from_slice(b"]}");
    out
}

/// Compile on the current (big-stack) thread, as `JqEngine::compile` does on its pool.
fn compile_here(filter: &str) -> Result<Arc<Compiled>, JqError> {
    crate::check_filter(filter)?;
    let code = rewrite::rewrite(filter);
    let f = compile::compile(&code).map_err(|e| crate::compile_context(e, filter))?;
    let shape = compile::Shape::of(&code);
    Ok(Arc::new(Compiled::new(filter, code, f, shape)))
}
