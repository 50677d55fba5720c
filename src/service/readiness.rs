//! The readiness use case: what `/health/ready` reports.

use super::Service;
use crate::ports::{Store, StoreHealth};

/// The state of the store as readiness sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreState {
    /// It answers, nothing is damaged and nothing is at risk.
    Ok,
    /// It answers, but holds damaged lists or is configured so that it may
    /// lose data. Every other list is still served.
    Degraded(StoreHealth),
    /// It does not answer.
    Unavailable,
}

/// The overall verdict of [`Readiness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyStatus {
    /// Serving, nothing to report.
    Ready,
    /// Serving, with something an operator should fix.
    Degraded,
    /// Not able to serve: take the instance out of the load balancer.
    NotReady,
}

/// What `/health/ready` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The store's state.
    pub store: StoreState,
    /// Whether a signing key is loaded.
    pub signing_key: bool,
}

impl Readiness {
    /// Whether the instance can serve: the store answers and a key is
    /// loaded. A degraded store stays ready: taking every replica out of a
    /// load balancer for one damaged list would make it worse.
    pub fn is_ready(&self) -> bool {
        self.signing_key && self.store != StoreState::Unavailable
    }

    /// The overall verdict.
    pub fn status(&self) -> ReadyStatus {
        match (self.is_ready(), &self.store) {
            (false, _) => ReadyStatus::NotReady,
            (true, StoreState::Degraded(_)) => ReadyStatus::Degraded,
            _ => ReadyStatus::Ready,
        }
    }
}

impl<S: Store> Service<S> {
    /// Asks the store for its health and the signer for its key.
    pub async fn readiness(&self) -> Readiness {
        let store = match self.store.health().await {
            Ok(h) if h.is_clean() => StoreState::Ok,
            Ok(h) => StoreState::Degraded(h),
            Err(_) => StoreState::Unavailable,
        };
        Readiness {
            store,
            signing_key: self.signer.has_key(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ListId;

    #[test]
    fn the_verdict_table() {
        let degraded = StoreState::Degraded(StoreHealth {
            damaged: vec![ListId::parse("ABCDEF012345").unwrap()],
            warnings: Vec::new(),
        });
        let cases = [
            (StoreState::Ok, true, ReadyStatus::Ready),
            (degraded.clone(), true, ReadyStatus::Degraded),
            (StoreState::Unavailable, true, ReadyStatus::NotReady),
            (StoreState::Ok, false, ReadyStatus::NotReady),
            (degraded, false, ReadyStatus::NotReady),
        ];
        for (store, signing_key, expected) in cases {
            let r = Readiness {
                store: store.clone(),
                signing_key,
            };
            assert_eq!(r.status(), expected, "{store:?}, key {signing_key}");
            assert_eq!(r.is_ready(), expected != ReadyStatus::NotReady);
        }
    }
}
