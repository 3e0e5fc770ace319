//! The database: named trees in a catalog, atomic batches across trees, ids, checks.

mod check;
mod config;
mod export;
mod handle;
mod meta;
mod transaction;

pub use check::DbCheckReport;
pub use config::Config;
pub use export::Transfer;
pub use handle::{DEFAULT_TREE, Db, DbStats, open};
pub use transaction::{Transaction, TransactionError, TransactionIter};

pub(crate) use check::DbCheckReport as CheckReport;
