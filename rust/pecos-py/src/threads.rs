//! Per-call rayon pools, cached by size, and the helpers that run core work without the GIL.

use crate::error::core;
use pecos_core::error::StopFlag;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Pools keyed by thread count, valid only in the process that built them (a forked child gets
/// copies of pools whose threads do not exist, so the cache is dropped when the pid changes).
static POOLS: Mutex<Option<PoolCache>> = Mutex::new(None);

/// `(pid of the process that built them, pools by thread count)`.
type PoolCache = (u32, HashMap<usize, Arc<ThreadPool>>);

/// How often a waiting caller looks for a pending signal (Ctrl-C) during a long computation.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

fn pool(n_threads: usize) -> PyResult<Arc<ThreadPool>> {
    let pid = std::process::id();
    let mut guard = POOLS
        .lock()
        .map_err(|_| PyRuntimeError::new_err("thread pool cache poisoned"))?;
    let cache = match guard.as_mut() {
        Some((owner, cache)) if *owner == pid => cache,
        _ => &mut guard.insert((pid, HashMap::new())).1,
    };
    if let Some(p) = cache.get(&n_threads) {
        return Ok(Arc::clone(p));
    }
    let p = Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(n_threads.max(1))
            .thread_name(|i| format!("pecos_rs-{i}"))
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start threads: {e}")))?,
    );
    cache.insert(n_threads, Arc::clone(&p));
    Ok(p)
}

/// Runs `f` inside a pool of `n_threads` threads with the GIL released, mapping core errors.
pub fn run_detached<T, F>(py: Python<'_>, n_threads: usize, f: F) -> PyResult<T>
where
    T: Send,
    F: Send + FnOnce() -> Result<T, pecos_core::PecosError>,
{
    let pool = pool(n_threads)?;
    core(py.detach(|| pool.install(f)))
}

/// As [`run_detached`], for work that checks a [`StopFlag`]: while it runs, the calling thread
/// looks for pending signals every [`SIGNAL_POLL`], and on Ctrl-C (or any signal handler that
/// raises) raises the flag; the work then stops at its next check and the handler's exception
/// (`KeyboardInterrupt`) is raised here.
pub fn run_interruptible<T, F>(py: Python<'_>, n_threads: usize, f: F) -> PyResult<T>
where
    T: Send,
    F: Send + FnOnce(&StopFlag) -> Result<T, pecos_core::PecosError>,
{
    let pool = pool(n_threads)?;
    let stop = StopFlag::default();
    let mut signal: Option<PyErr> = None;
    let result = py.detach(|| {
        let (done, finished) = mpsc::channel();
        pool.in_place_scope(|scope| {
            scope.spawn(|_| {
                // The receiver outlives the scope, so this send cannot fail.
                let _ = done.send(f(&stop));
            });
            loop {
                match finished.recv_timeout(SIGNAL_POLL) {
                    Ok(result) => return Some(result),
                    Err(RecvTimeoutError::Timeout) => {
                        if signal.is_none() {
                            if let Err(e) = Python::attach(|py| py.check_signals()) {
                                signal = Some(e);
                                stop.raise();
                            }
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => return None,
                }
            }
        })
    });
    match (signal, result) {
        (Some(e), _) => Err(e),
        (None, Some(r)) => core(r),
        (None, None) => Err(PyRuntimeError::new_err(
            "the computation ended without a result",
        )),
    }
}
