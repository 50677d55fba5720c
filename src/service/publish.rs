//! The read use case: the signed token of a published list (`GET /t/{id}`,
//! `GET /b/{id}`), served through the token cache.

use std::sync::Arc;

use super::cache::{CacheError, CacheOutcome, Published};
use super::{Service, ServiceError};
use crate::domain::{ListFormat, ListId};
use crate::ports::Store;

impl<S: Store> Service<S> {
    /// The signed token of list `id` in `format` at `now` (unix seconds), and
    /// how it was served. A cache hit makes no store call, takes no write
    /// lock and allocates nothing (see [`super::cache`]).
    ///
    /// # Errors
    /// [`ServiceError::ListNotFound`] for an unknown list or one of the other
    /// format; [`ServiceError::Unavailable`] when the store cannot be reached
    /// (or the list is damaged) and no token may be served;
    /// [`ServiceError::PublishFailed`] for any other failure, which is logged
    /// here as "could not publish list".
    pub async fn publish(
        &self,
        format: ListFormat,
        id: ListId,
        now: u64,
    ) -> Result<(Arc<Published>, CacheOutcome), ServiceError> {
        self.cache.get(format, id, now).await.map_err(|e| match e {
            CacheError::NotFound => ServiceError::ListNotFound,
            CacheError::Store(e) => {
                ServiceError::from_store(e, |e| publish_failed(CacheError::Store(e)))
            }
            other => publish_failed(other),
        })
    }
}

/// A token that cannot be served for a reason no retry fixes: logged with
/// its cause, since the response says only "Internal server error".
fn publish_failed(e: CacheError) -> ServiceError {
    tracing::error!(error = %e, "could not publish list");
    ServiceError::PublishFailed(e)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::{Bits, ClientId};
    use crate::ports::{
        AllocateOutcome, AllocateRequest, ListMeta, ListSigner, ListSnapshot, ListToSign,
        SetStatusOutcome, SignError, StatusChange, StoreError, StoreHealth,
    };
    use crate::service::PublishSettings;

    /// A store whose one list answers as the test says.
    #[derive(Debug, Default)]
    struct Scripted {
        /// `None`: the list exists and reads fine; `Some(e)`: every read fails.
        fail: Mutex<Option<StoreError>>,
        /// Calls of `list_ids`.
        listings: std::sync::atomic::AtomicUsize,
    }

    impl Scripted {
        fn failing(e: StoreError) -> Self {
            Scripted {
                fail: Mutex::new(Some(e)),
                ..Scripted::default()
            }
        }

        fn answer<T>(&self, ok: T) -> Result<T, StoreError> {
            match self.fail.lock().unwrap().clone() {
                Some(e) => Err(e),
                None => Ok(ok),
            }
        }
    }

    fn id() -> ListId {
        ListId::parse("ABCDEF012345").unwrap()
    }

    impl Store for Scripted {
        async fn allocate(&self, _: &AllocateRequest) -> Result<AllocateOutcome, StoreError> {
            Err(StoreError::Invalid("not in this test".into()))
        }
        async fn set_status(&self, _: &StatusChange) -> Result<SetStatusOutcome, StoreError> {
            Err(StoreError::Invalid("not in this test".into()))
        }
        async fn set_status_by_ref(
            &self,
            _: &crate::ports::RefChange,
        ) -> Result<crate::ports::RefChangeOutcome, StoreError> {
            Err(StoreError::Invalid("not in this test".into()))
        }
        async fn claim_jti(
            &self,
            _: &crate::ports::JtiClaim,
        ) -> Result<crate::ports::JtiClaimOutcome, StoreError> {
            Err(StoreError::Invalid("not in this test".into()))
        }
        async fn list_entries(
            &self,
            _: &crate::ports::EntryQuery,
        ) -> Result<crate::ports::EntryPage, StoreError> {
            Err(StoreError::Invalid("not in this test".into()))
        }
        async fn read_list(&self, list: &ListId) -> Result<Option<ListSnapshot>, StoreError> {
            let snapshot = ListSnapshot {
                meta: ListMeta {
                    id: *list,
                    client: ClientId::parse("c").unwrap(),
                    format: ListFormat::Token,
                    bits: Bits::Two,
                    capacity: 8,
                    allocated: 1,
                    created_at: 0,
                    retire_after: 0,
                },
                version: 1,
                bytes: vec![0; 2],
            };
            self.answer((*list == id()).then_some(snapshot))
        }
        async fn list_version(&self, list: &ListId) -> Result<Option<u64>, StoreError> {
            self.answer((*list == id()).then_some(1))
        }
        async fn list_ids(&self, format: ListFormat) -> Result<Vec<ListId>, StoreError> {
            self.listings
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.answer(if format == ListFormat::Token {
                vec![id()]
            } else {
                vec![]
            })
        }
        async fn health(&self) -> Result<StoreHealth, StoreError> {
            self.answer(StoreHealth::default())
        }
    }

    /// Signs with a fixed text, or refuses.
    #[derive(Debug)]
    struct Signer {
        refuse: bool,
    }

    impl ListSigner for Signer {
        fn sign(&self, _: &ListToSign<'_>) -> Result<String, SignError> {
            if self.refuse {
                Err(SignError::new("test: cannot sign"))
            } else {
                Ok("signed".to_owned())
            }
        }
        fn sign_cwt(&self, l: &ListToSign<'_>) -> Result<Vec<u8>, SignError> {
            self.sign(l).map(|_| b"cwt".to_vec())
        }
        fn has_key(&self) -> bool {
            true
        }
    }

    fn service(store: Scripted, refuse: bool) -> Service<Scripted> {
        Service::new(
            Arc::new(store),
            Arc::new(Signer { refuse }),
            PublishSettings::default(),
        )
    }

    const NOW: u64 = 1_800_000_000;

    #[tokio::test]
    async fn a_list_is_served_through_the_cache() {
        let s = service(Scripted::default(), false);
        let (token, outcome) = s.publish(ListFormat::Token, id(), NOW).await.unwrap();
        assert_eq!(
            (&token.body[..], outcome),
            (&b"signed"[..], CacheOutcome::Rebuilt)
        );
        assert_eq!(
            token.cwt.as_deref(),
            Some(&b"cwt"[..]),
            "signed with the JWT"
        );
        let (_, outcome) = s.publish(ListFormat::Token, id(), NOW).await.unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
    }

    /// Every way a GET can fail lands on the variant the HTTP table maps
    /// (404, 503, 500), as the handler's own mapping did before.
    #[tokio::test]
    async fn failures_map_to_not_found_unavailable_or_publish_failed() {
        let unknown = ListId::parse("000000000000").unwrap();
        let s = service(Scripted::default(), false);
        let got = s.publish(ListFormat::Token, unknown, NOW).await;
        assert!(matches!(got, Err(ServiceError::ListNotFound)), "{got:?}");
        let got = s.publish(ListFormat::Bitstring, id(), NOW).await;
        assert!(matches!(got, Err(ServiceError::ListNotFound)), "{got:?}");

        let damaged = StoreError::Damaged {
            list: id(),
            reason: "test".into(),
        };
        for e in [StoreError::Unavailable("test".into()), damaged] {
            let got = service(Scripted::failing(e), false)
                .publish(ListFormat::Token, id(), NOW)
                .await;
            assert!(matches!(got, Err(ServiceError::Unavailable(_))), "{got:?}");
        }
        for e in [
            StoreError::Corrupt("test".into()),
            StoreError::Backend("test".into()),
            StoreError::Invalid("test".into()),
        ] {
            let got = service(Scripted::failing(e), false)
                .publish(ListFormat::Token, id(), NOW)
                .await;
            assert!(
                matches!(got, Err(ServiceError::PublishFailed(CacheError::Store(_)))),
                "{got:?}"
            );
        }
        let got = service(Scripted::default(), true)
            .publish(ListFormat::Token, id(), NOW)
            .await;
        assert!(
            matches!(got, Err(ServiceError::PublishFailed(CacheError::Sign(_)))),
            "{got:?}"
        );
    }

    /// The aggregation names the token lists the store has, is rebuilt only
    /// after its refresh time, survives a store failure once built, and a
    /// failure without a document is remembered, not retried per request.
    #[tokio::test]
    async fn the_aggregation_is_built_now_and_then_and_survives_failures() {
        use crate::service::AGGREGATION_REFRESH;
        use crate::service::aggregation::FAILURE_MEMORY;
        use std::sync::atomic::Ordering::SeqCst;
        let s = service(Scripted::default(), false);
        let doc = s.aggregation().await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&doc.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"status_lists": ["http://localhost:8080/t/ABCDEF012345"]})
        );
        assert_eq!(doc.lists, 1);
        s.aggregation().await.unwrap();
        assert_eq!(s.store.listings.load(SeqCst), 1, "served from memory");

        *s.store.fail.lock().unwrap() = Some(StoreError::Unavailable("test".into()));
        s.aggregation.backdate(AGGREGATION_REFRESH).await;
        assert_eq!(
            s.aggregation().await.unwrap(),
            doc,
            "the last one, while the store is down"
        );
        assert_eq!(s.store.listings.load(SeqCst), 2);

        let down = service(
            Scripted::failing(StoreError::Unavailable("test".into())),
            false,
        );
        for _ in 0..3 {
            let got = down.aggregation().await;
            assert!(matches!(got, Err(ServiceError::Unavailable(_))), "{got:?}");
        }
        assert_eq!(
            down.store.listings.load(SeqCst),
            1,
            "one failed walk answers for a while"
        );
        down.aggregation.backdate(FAILURE_MEMORY).await;
        assert!(down.aggregation().await.is_err());
        assert_eq!(down.store.listings.load(SeqCst), 2);
        let broken = service(Scripted::failing(StoreError::Corrupt("test".into())), false);
        assert!(matches!(
            broken.aggregation().await,
            Err(ServiceError::PublishFailed(_))
        ));
    }
}
