//! Writing projections to the read side: the view to DynamoDB (never backwards in version),
//! then its documents (the receipt, and once cancelled the notice) to S3. Used by the updater for live events and by `rebuild`.

use crate::domain::view::Projection;
use crate::dynamodb::{OrderViewStore, ViewStoreError, WriteOutcome};
use crate::s3::{ReceiptStore, ReceiptStoreError};

/// What applying one projection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionOutcome {
    /// The view now reflects this version.
    Applied,
    /// A newer version was already stored; nothing changed.
    Stale,
}

impl ProjectionOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Stale => "stale",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    View(#[from] ViewStoreError),
    #[error(transparent)]
    Receipt(#[from] ReceiptStoreError),
}

impl ApplyError {
    /// True when a retry may succeed; otherwise the fault needs a fix (permissions, a missing
    /// table or bucket) before the record can project.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::View(err) => err.is_transient(),
            Self::Receipt(err) => err.is_transient(),
        }
    }
}

/// The read side's stores.
#[derive(Debug, Clone)]
pub struct ReadModel {
    pub views: OrderViewStore,
    pub receipts: ReceiptStore,
}

impl ReadModel {
    pub fn new(views: OrderViewStore, receipts: ReceiptStore) -> Self {
        Self { views, receipts }
    }

    /// Writes the view unless a newer version is stored, then its documents: one `PutObject`
    /// per applied version (two for the cancelled one). Writing the same version again is
    /// idempotent, so a projection whose document write failed completes when it is retried.
    pub async fn apply(&self, projection: &Projection) -> Result<ProjectionOutcome, ApplyError> {
        match self.views.put_if_not_older(&projection.view).await? {
            WriteOutcome::Stale => Ok(ProjectionOutcome::Stale),
            WriteOutcome::Applied => {
                futures::future::try_join_all(projection.documents.iter().map(|doc| {
                    self.receipts
                        .put(&doc.key, doc.body.clone(), doc.content_type)
                }))
                .await?;
                Ok(ProjectionOutcome::Applied)
            }
        }
    }
}
