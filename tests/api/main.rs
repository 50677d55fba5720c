//! End-to-end tests of the HTTP service, in one binary so that it links once:
//! every scenario spawns the real application on 127.0.0.1:0 (`helpers`)
//! and most run against both stores, the embedded redb file and a private
//! redis-server (`support`, shared with the store tests).

#[path = "../store/support/mod.rs"]
mod support;

mod helpers;
mod receiver;
#[path = "../common/signature_v1.rs"]
mod signature_v1;

mod batch;
mod delivery;
mod entries;
mod errors;
mod formats;
mod issue;
mod limits;
mod lists;
mod openapi;
mod propagation;
mod redis_faults;
mod revoke;
mod rotation;
mod trust;
mod webhooks;
