//! The store tests, in one binary so that they link once: the shared contract
//! suite (`contract`), run by each adapter's module against that adapter.

mod contract;
mod embedded;
// mod redis; (added by the Redis adapter)
