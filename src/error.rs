//! The crate's one error type, and the context extension its call sites use.
//!
//! Two kinds of error reach the user, with different exit statuses and reporting:
//! - **input errors** ([`Error::Input`], exit status 2): bad input found before any compute,
//!   identically on every rank, so rank 0 alone prints it and every rank exits;
//! - **failures** (every other variant, exit status 1): a failure during the run, possibly on one
//!   rank only, which prints it with its rank and aborts the job; or, once the ranks have agreed
//!   on the outcome of a collective operation ([`Error::Collective`]), held by every rank alike:
//!   rank 0 prints it and every rank ends by itself, without aborting.
//!
//! Every message is already phrased for the user: one line naming the file, key or object and
//! the offending value. [`Context`] puts that prefix before a cause:
//! `std::fs::read(&p).context(|| format!("cannot read {}", p.display()))?` fails with
//! `cannot read <p>: <cause>`.

use std::fmt::Display;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an operation failed; see the module documentation for the two kinds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input found before any compute, identically on every rank (exit status 2).
    #[error("{0}")]
    Input(String),
    /// A failure during the run, possibly on one rank only (exit status 1; aborts the job).
    #[error("{0}")]
    Failure(String),
    /// A failure during the run that every rank holds, agreed after a collective operation
    /// ([`World::agree`](crate::parallel::World::agree)): reported once, and every rank ends by
    /// itself, without aborting the job (exit status 1).
    #[error("{0}")]
    Collective(String),
    /// An HDF5 call failed (a failure; made by `store/h5.rs`); the message names the file and
    /// object.
    #[error("HDF5: {0}")]
    Hdf5(String),
    /// A libtorch call failed (a failure).
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl Error {
    /// An input error with this message.
    pub fn input(msg: impl Into<String>) -> Error {
        Error::Input(msg.into())
    }

    /// A failure with this message.
    pub fn failure(msg: impl Into<String>) -> Error {
        Error::Failure(msg.into())
    }

    /// Whether this is bad input (the same on every rank) rather than a failure.
    pub fn is_input(&self) -> bool {
        matches!(self, Error::Input(_))
    }

    /// The process exit status this error ends a command with: 2 for input, 1 for a failure.
    pub fn exit_status(&self) -> i32 {
        if self.is_input() {
            2
        } else {
            1
        }
    }
}

/// Context for an error of any displayable type, turning it into the crate's [`Error`].
pub trait Context<T> {
    /// A failure `"{what}: {cause}"`.
    fn context<S: Display>(self, what: impl FnOnce() -> S) -> Result<T>;
    /// An input error `"{what}: {cause}"`.
    fn input_context<S: Display>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context<S: Display>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Failure(format!("{}: {e}", what())))
    }

    fn input_context<S: Display>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Input(format!("{}: {e}", what())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prefixes_the_cause_and_sets_the_kind() {
        let e = Err::<(), _>(Error::Hdf5("f.h5: no dataset 'x'".into())).context(|| "reading").unwrap_err();
        assert_eq!(e.to_string(), "reading: HDF5: f.h5: no dataset 'x'");
        assert_eq!(e.exit_status(), 1);
        let e = Err::<(), _>("not a number").input_context(|| "a.yaml: key = x").unwrap_err();
        assert_eq!(e.to_string(), "a.yaml: key = x: not a number");
        assert_eq!(e.exit_status(), 2);
    }
}
