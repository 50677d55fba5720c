//! The change-feed port: how a replica hears at once that a list was changed
//! through another replica, instead of at its next version check.
//!
//! A status change is acknowledged by the store; replicas that hold a signed
//! token of that list learn of it from a [`ChangeFeed`] and drop the token
//! (`crate::service::Service::follow_changes`). The feed is a fast path
//! only: a notice may be lost (a dropped connection, a replica that was
//! restarting), so the cache keeps checking the list's version every
//! `freshness` as the safety net. A store used by one process (the embedded
//! store) has no feed: that process's own changes invalidate its cache
//! directly.

use std::future::Future;

use crate::domain::ListId;

/// What a change feed reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeNotice {
    /// A status change to the list was applied (by any replica, this one
    /// included): tokens of it built before are out of date.
    Changed(ListId),
    /// The feed is connected (for the first time, or again after
    /// [`ChangeNotice::Lost`]). Changes made while it was not connected were
    /// not reported, so anything held may be out of date.
    Resumed,
    /// The feed lost its connection; it reconnects by itself. Until
    /// [`ChangeNotice::Resumed`], changes made elsewhere show only at the
    /// next version check.
    Lost,
}

/// A stream of [`ChangeNotice`]s from the store. One consumer; the adapter
/// reconnects behind it.
pub trait ChangeFeed: Send + 'static {
    /// The next notice; `None` once the feed has ended for good.
    fn next(&mut self) -> impl Future<Output = Option<ChangeNotice>> + Send;
}
