//! The load the scenarios drive: `/issue` requests (some replayed: the same
//! signed bytes sent again, maybe to another replica) and chains of status
//! changes on issued entries (some steps replayed at once, some after the
//! chain's later steps), with every answer written to a [`Journal`].
//!
//! Everything random is planned up front from one seed, printed by each
//! test, so a failing run can be repeated with `FAULTS_SEED=N`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::Cluster;
use crate::net::{Answer, Net, Policy};

/// The published values of the statuses.
pub const VALID: u8 = 0;
pub const INVALID: u8 = 1;
pub const SUSPENDED: u8 = 2;

/// A status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Revoke,
    Suspend,
    Unsuspend,
}

impl Op {
    pub fn path(self) -> &'static str {
        match self {
            Op::Revoke => "/revoke",
            Op::Suspend => "/suspend",
            Op::Unsuspend => "/unsuspend",
        }
    }

    /// The status the entry has once the change is applied.
    pub fn target(self) -> u8 {
        match self {
            Op::Revoke => INVALID,
            Op::Suspend => SUSPENDED,
            Op::Unsuspend => VALID,
        }
    }

    /// The member of a 202 body that says when the change was made.
    pub fn time_field(self) -> &'static str {
        match self {
            Op::Revoke => "revokedAt",
            Op::Suspend => "suspendedAt",
            Op::Unsuspend => "unsuspendedAt",
        }
    }
}

/// Whether, and how, a change request is sent a second time.
#[derive(Debug, Clone, Copy)]
pub enum Replay {
    No,
    /// At the same moment, to this replica.
    Concurrent(usize),
    /// After the chain's last step (so after later changes of the entry), to
    /// this replica.
    Late(usize),
}

/// One step of a chain.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub op: Op,
    /// The replica the request goes to first.
    pub first: usize,
    pub replay: Replay,
}

/// The change sequences the chains are drawn from: each is allowed from a
/// new (VALID) entry at every step, so every step is answered 202.
const PATTERNS: &[&[Op]] = &[
    &[Op::Revoke],
    &[Op::Suspend],
    &[Op::Unsuspend],
    &[Op::Suspend, Op::Unsuspend],
    &[Op::Suspend, Op::Revoke],
    &[Op::Suspend, Op::Unsuspend, Op::Suspend],
    &[Op::Suspend, Op::Unsuspend, Op::Revoke],
];

/// A random chain over `replicas` replicas; `replay_share` of the steps are
/// replayed (half at once, half late).
pub fn plan_chain(rng: &mut StdRng, replicas: usize, replay_share: f64) -> Vec<Step> {
    let pattern = PATTERNS[rng.gen_range(0..PATTERNS.len())];
    pattern
        .iter()
        .map(|&op| {
            let replay = if rng.gen_bool(replay_share) {
                let other = rng.gen_range(0..replicas);
                if rng.gen_bool(0.5) {
                    Replay::Concurrent(other)
                } else {
                    Replay::Late(other)
                }
            } else {
                Replay::No
            };
            Step {
                op,
                first: rng.gen_range(0..replicas),
                replay,
            }
        })
        .collect()
}

/// The seed of a run: `FAULTS_SEED` when set, else a fresh one.
pub fn seed() -> u64 {
    std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// One `/issue` jti: the signed bytes, and every answer it got (original
/// and replays; `Err` when a request gave up without an answer).
#[derive(Debug)]
pub struct IssueRecord {
    pub jwt: String,
    pub answers: Vec<Result<Answer, String>>,
}

/// One change jti: the operation, the signed bytes, and every answer.
#[derive(Debug)]
pub struct ChangeRecord {
    pub op: Op,
    pub jwt: String,
    pub answers: Vec<Result<Answer, String>>,
}

/// Every answer, by request.
#[derive(Debug, Default)]
pub struct Journal {
    /// `/issue` jti → its record.
    pub issues: HashMap<String, IssueRecord>,
    /// Change jti → its record.
    pub changes: HashMap<String, ChangeRecord>,
    /// (list uri, idx) of every entry a chain ran on → the statuses the
    /// acknowledged changes allow it to have now (one value, or several
    /// when the outcome of a last, unanswered change is unknown).
    pub expected: HashMap<(String, u64), Vec<u8>>,
}

/// What every task of a run shares.
pub struct Shared {
    pub cluster: Arc<Cluster>,
    pub net: Net,
    pub journal: Mutex<Journal>,
    /// Requests finished (issues and change steps): fault tasks wait on it.
    pub progress: AtomicUsize,
    pub policy: Policy,
}

impl Shared {
    pub fn new(cluster: Arc<Cluster>, policy: Policy) -> Arc<Shared> {
        let net = Net::new(cluster.addresses());
        Arc::new(Shared {
            cluster,
            net,
            journal: Mutex::new(Journal::default()),
            progress: AtomicUsize::new(0),
            policy,
        })
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn done(&self) -> usize {
        self.progress.load(Ordering::Relaxed)
    }

    /// Sends one `/issue` request (with retries) and journals the answer;
    /// returns (idx, uri) when it was a 200.
    pub async fn issue(&self, jti: &str, jwt: &str, first: usize) -> Option<(u64, String)> {
        let answer = self.net.post(first, "/issue", jwt, self.policy).await;
        let issued = answer.as_ref().ok().and_then(issued);
        self.journal()
            .issues
            .entry(jti.to_owned())
            .or_insert_with(|| IssueRecord {
                jwt: jwt.to_owned(),
                answers: Vec::new(),
            })
            .answers
            .push(answer);
        self.progress.fetch_add(1, Ordering::Relaxed);
        issued
    }

    fn record_change(&self, jti: &str, op: Op, jwt: &str, answers: Vec<Result<Answer, String>>) {
        self.journal()
            .changes
            .entry(jti.to_owned())
            .or_insert_with(|| ChangeRecord {
                op,
                jwt: jwt.to_owned(),
                answers: Vec::new(),
            })
            .answers
            .extend(answers);
    }

    /// Runs `steps` on entry `idx` of `uri`, one after the other, each
    /// acknowledged (202) before the next starts; replays as planned. Stops
    /// at a step that got no 202: whether it was applied is unknown then.
    pub async fn run_chain(&self, client: usize, idx: u64, uri: &str, steps: &[Step]) {
        let issuer = &self.cluster.clients[client];
        let mut allowed = vec![VALID];
        let mut late = Vec::new();
        for step in steps {
            let jti = uuid::Uuid::new_v4().to_string();
            let jwt = issuer.change_jwt(&jti, idx, uri);
            let path = step.op.path();
            let answers = match step.replay {
                Replay::Concurrent(other) => {
                    let (a, b) = tokio::join!(
                        self.net.post(step.first, path, &jwt, self.policy),
                        self.net.post(other, path, &jwt, self.policy)
                    );
                    vec![a, b]
                }
                Replay::No | Replay::Late(_) => {
                    vec![self.net.post(step.first, path, &jwt, self.policy).await]
                }
            };
            let acknowledged = answers
                .iter()
                .any(|a| matches!(a, Ok(a) if a.status == 202));
            self.record_change(&jti, step.op, &jwt, answers);
            self.progress.fetch_add(1, Ordering::Relaxed);
            if !acknowledged {
                if !allowed.contains(&step.op.target()) {
                    allowed.push(step.op.target());
                }
                break;
            }
            allowed = vec![step.op.target()];
            if let Replay::Late(other) = step.replay {
                late.push((jti, jwt, step.op, other));
            }
        }
        for (jti, jwt, op, replica) in late {
            let answer = self.net.post(replica, op.path(), &jwt, self.policy).await;
            self.record_change(&jti, op, &jwt, vec![answer]);
        }
        self.journal()
            .expected
            .insert((uri.to_owned(), idx), allowed);
    }

    /// Takes the journal out once the load is over.
    pub fn take_journal(&self) -> Journal {
        std::mem::take(&mut *self.journal())
    }
}

/// (idx, uri) of a 200 answer to `/issue`.
pub fn issued(answer: &Answer) -> Option<(u64, String)> {
    if answer.status != 200 {
        return None;
    }
    Some((
        answer.body["idx"].as_u64()?,
        answer.body["uri"].as_str()?.to_owned(),
    ))
}
