//! `RegistrationError`: why a use case could not be carried out, as the ways
//! in need to tell it apart (SMTP answers each differently; the web shows one
//! page). In every case nothing was changed.

use crate::store::StoreError;
use std::sync::Arc;

/// A use case failed; nothing it would have written was kept.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistrationError {
    /// The disk or database is full: temporary for SMTP (`452`).
    #[error("the database is full")]
    Full,
    /// The store is closed (the process is shutting down).
    #[error("the store writer has stopped")]
    Closed,
    /// Any other failure; the transaction was rolled back.
    #[error("storage failure: {0:#}")]
    Failed(Arc<anyhow::Error>),
}

impl From<StoreError> for RegistrationError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Full => RegistrationError::Full,
            StoreError::Closed => RegistrationError::Closed,
            StoreError::Failed(error) => RegistrationError::Failed(error),
        }
    }
}
