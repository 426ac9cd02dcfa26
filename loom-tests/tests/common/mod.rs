//! Shared by the loom models: a bounded model runner that also checks
//! *coverage*.
//!
//! Loom 0.7's DPOR can silently explore far fewer executions than exist
//! (tokio-rs/loom#166: a thread's own load hides another thread's earlier
//! load of the same atomic from the race detector; tokio-rs/loom#392: a
//! spawned thread whose first operation is a load may never be preempted).
//! Every seqlock operation starts with a load, so a model can "pass" after
//! exploring a single interleaving. To make that impossible to miss, each
//! model notes what happened in every execution (`Seen::note`), and the
//! runner asserts afterwards that every interesting outcome — a busy read,
//! each order of two racing writers, a CAS retry — occurred in at least one
//! explored execution. A model that stops exploring then fails loudly
//! instead of passing vacuously.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Outcomes observed over all executions of one model.
///
/// A plain `std` mutex: loom runs every model thread on one OS thread and
/// never switches inside `note`, so this never contends and adds no
/// scheduling points.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<BTreeSet<String>>>);

impl Seen {
    /// Records that this execution reached `what`.
    pub fn note(&self, what: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(what.into());
    }
}

/// Runs `f` under loom with a preemption bound (`LOOM_MAX_PREEMPTIONS`
/// overrides `bound`), then checks that every outcome in `expect` was seen
/// in at least one execution.
pub fn check<F>(bound: usize, expect: &[&str], f: F)
where
    F: Fn(&Seen) + Send + Sync + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    let seen = Seen::default();
    let executions = Arc::new(Mutex::new(0usize));
    {
        let (seen, executions) = (seen.clone(), executions.clone());
        builder.check(move || {
            *executions.lock().unwrap() += 1;
            f(&seen);
        });
    }
    let seen = seen.0.lock().unwrap();
    let executions = *executions.lock().unwrap();
    if std::env::var_os("MMRING_LOOM_VERBOSE").is_some() {
        eprintln!("{executions} executions, outcomes {seen:?}");
    }
    let missing: Vec<_> = expect.iter().filter(|e| !seen.contains(**e)).collect();
    assert!(
        missing.is_empty(),
        "loom explored {executions} executions but never one where {missing:?} \
         (seen: {seen:?}); the model no longer covers what it claims to"
    );
}
