//! Per-call rayon pools, cached by size, and the helper that runs core work without the GIL.

use crate::error::PyPecosErr;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Pools keyed by thread count, valid only in the process that built them (a forked child gets
/// copies of pools whose threads do not exist, so the cache is dropped when the pid changes).
static POOLS: Mutex<Option<PoolCache>> = Mutex::new(None);

/// `(pid of the process that built them, pools by thread count)`.
type PoolCache = (u32, HashMap<usize, Arc<ThreadPool>>);

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
    py.detach(|| pool.install(f))
        .map_err(|e| PyPecosErr::from(e).into())
}
