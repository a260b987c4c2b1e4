//! The crate's error policy.
//!
//! Library modules return typed errors (`thiserror` enums such as
//! [`crate::pipeline::PipelineError`], [`crate::eval::EvalError`],
//! [`crate::report::ReportError`]) and never plain strings; `anyhow` is
//! only used by the CLI, to add what it was doing. Every error is either
//! the user's — a bad input file, bad arguments, a budget that cannot be
//! met — or sqz's own: an invariant that sqz itself broke, i.e. a bug. The
//! error types that can carry a bug say so with [`Fault::is_internal`], and
//! [`is_internal`] looks for one anywhere in an error's chain of causes;
//! the CLI exits with 1 for user errors and 2 for internal ones.

use std::error::Error;

/// An error that reveals a bug in sqz rather than a problem with the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("internal error: {0}")]
pub struct InternalError(pub String);

/// Whose fault an error is.
pub trait Fault {
    /// Whether the error is a bug in sqz (exit code 2) rather than a
    /// problem with the user's input (exit code 1).
    fn is_internal(&self) -> bool;
}

impl Fault for InternalError {
    fn is_internal(&self) -> bool {
        true
    }
}

/// Whether `error` or any of its causes is an internal error of one of
/// the crate's error types.
pub fn is_internal(error: &(dyn Error + 'static)) -> bool {
    let mut cause: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if fault_of(e).is_some_and(|f| f.is_internal()) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The [`Fault`] view of `error`, when it is one of the crate's error
/// types that can carry a bug.
fn fault_of<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a dyn Fault> {
    if let Some(e) = error.downcast_ref::<InternalError>() {
        return Some(e);
    }
    if let Some(e) = error.downcast_ref::<crate::pipeline::PipelineError>() {
        return Some(e);
    }
    if let Some(e) = error.downcast_ref::<crate::report::ReportError>() {
        return Some(e);
    }
    None
}
