//! The secret the proxy puts on requests. A thread of its own owns the
//! configuration and one credential broker for the proxy's lifetime (its
//! cache, plugins and locks are synchronous). Requests use the copy held in
//! memory; once it is due they ask the thread to look again without waiting
//! for it, and renewals run on that thread after the answer is in memory. A
//! request waits only when there is no copy yet, the copy is past its floor
//! (the last half of its refresh window), or the upstream refused it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::header::{HeaderName, HeaderValue};
use keyhelper_core::audit::{AuditLog, AuditRecord};
use keyhelper_core::cache::{CacheEntry, RenewalClaim};
use keyhelper_core::credential::Secret;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::resolve::{ResolvedCredential, resolve};
use tokio::sync::oneshot;

use crate::broker::{BackgroundRenewal, CredentialBroker, GetOptions, Served};
use crate::environment::Environment;

/// How long the in-memory copy is used before the cache is looked at again,
/// at most (so a rotation by another keyhelper is picked up).
const MEMO_LIMIT: Duration = Duration::from_secs(30);

/// Which header carries the secret upstream, when not the provider's own
/// (`keyhelper proxy --header api-key --header-prefix ""`).
#[derive(Debug, Clone, Default)]
pub struct HeaderChoice {
    /// The header's name.
    pub name: Option<String>,
    /// What precedes the secret in it.
    pub prefix: Option<String>,
}

/// The header to send upstream, and the secret in it.
#[derive(Clone)]
pub struct Authorization {
    /// Header name, e.g. `authorization` or `api-key`.
    pub name: HeaderName,
    /// Header value, e.g. `Bearer eyJ…`.
    pub value: HeaderValue,
    /// The bare secret, to recognise it when the upstream rejects it.
    pub secret: Secret,
    /// Non-secret headers the provider asks to send along.
    pub extra: Vec<(HeaderName, HeaderValue)>,
}

/// The copy in memory and when to look again.
struct Memo {
    authorization: Arc<Authorization>,
    /// From then on, look again in the background.
    look_again: Instant,
    /// From then on, a request waits for a fresh copy.
    floor: Instant,
}

/// What the requests and the credential thread share.
#[derive(Default)]
struct Shared {
    memo: Mutex<Option<Memo>>,
    /// Whether a background look is queued or running.
    looking: AtomicBool,
    /// The last secret an upstream refused and that was renewed for: it is
    /// renewed once, not on every 401 (a herd of provider calls when the
    /// provider hands the same token back).
    renewed_after: Mutex<Option<Secret>>,
    /// Requests served since the last audit line.
    requests: AtomicU64,
}

impl Shared {
    fn already_renewed_after(&self, rejected: &Secret) -> bool {
        self.renewed_after.lock().expect("renewal lock").as_ref() == Some(rejected)
    }
}

enum Job {
    /// A request waits for the answer.
    Ask { rejected: Option<Secret>, reply: oneshot::Sender<Result<Arc<Authorization>, Failure>> },
    /// Nobody waits: update the copy in memory, renewing if due.
    LookAgain,
}

/// Hands out the current credential header.
pub struct CredentialSource {
    shared: Arc<Shared>,
    jobs: std::sync::mpsc::Sender<Job>,
}

impl CredentialSource {
    /// Starts the thread that fetches `credential`, once it has checked the
    /// configuration and that the credential can be resolved.
    pub fn start(env: Environment, credential: &str, headers: HeaderChoice) -> Result<Self, Failure> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let (ready, started) = std::sync::mpsc::sync_channel::<Result<(), Failure>>(1);
        let credential = credential.to_string();
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("keyhelper-credentials".into())
            .spawn(move || {
                let config = match env.config() {
                    Ok(config) => config,
                    Err(failure) => return drop(ready.send(Err(failure))),
                };
                let renewals = DeferredRenewals::default();
                let broker =
                    match resolve(&credential, &config, &env.catalog).and_then(|_| env.broker(&config)) {
                        Ok(broker) => broker.with_renewal(&renewals),
                        Err(failure) => return drop(ready.send(Err(failure))),
                    };
                let _ = ready.send(Ok(()));
                let audit = config.settings.audits().then(|| AuditLog::new(&env.dirs.state_dir));
                let worker =
                    Worker { broker, credential, headers, shared: thread_shared, renewals: &renewals, audit };
                for job in queue {
                    worker.run(job);
                }
            })
            .map_err(|e| {
                Failure::new(ExitClass::Internal, format!("cannot start the credential thread: {e}"))
            })?;
        started.recv().map_err(|_| Failure::new(ExitClass::Internal, "the credential thread stopped"))??;
        Ok(Self { shared, jobs })
    }

    /// The current header: the copy in memory while it is above its floor
    /// (asking for a new look in the background once it is due), else a
    /// fresh one.
    pub async fn current(&self) -> Result<Arc<Authorization>, Failure> {
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let held = {
            let memo = self.shared.memo.lock().expect("memo lock");
            memo.as_ref().filter(|m| now < m.floor).map(|m| (m.authorization.clone(), now >= m.look_again))
        };
        match held {
            Some((authorization, due)) => {
                if due && !self.shared.looking.swap(true, Ordering::SeqCst) {
                    let _ = self.jobs.send(Job::LookAgain);
                }
                Ok(authorization)
            }
            None => self.ask(None).await,
        }
    }

    /// A new header after the upstream rejected `rejected`: the cached copy of
    /// that secret is dropped and the credential fetched again, once per
    /// secret (unless another request already did). `None` when there is
    /// nothing new to try: the 401 goes to the client.
    pub async fn renew_after_rejection(
        &self,
        rejected: &Secret,
    ) -> Result<Option<Arc<Authorization>>, Failure> {
        let current = self.shared.memo.lock().expect("memo lock").as_ref().map(|m| m.authorization.clone());
        if let Some(current) = current.filter(|a| a.secret != *rejected) {
            return Ok(Some(current));
        }
        if self.shared.already_renewed_after(rejected) {
            return Ok(None);
        }
        let renewed = self.ask(Some(rejected.clone())).await?;
        Ok(Some(renewed).filter(|a| a.secret != *rejected))
    }

    async fn ask(&self, rejected: Option<Secret>) -> Result<Arc<Authorization>, Failure> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Ask { rejected, reply })
            .map_err(|_| Failure::new(ExitClass::Internal, "the credential thread stopped"))?;
        answer.await.map_err(|_| Failure::new(ExitClass::Internal, "the credential thread stopped"))?
    }
}

/// Background renewals the broker asked for, run by the credential thread
/// once the answer that asked is in memory. Each holds the entry's renewal
/// claim, so no other keyhelper renews it meanwhile.
#[derive(Default)]
struct DeferredRenewals(RefCell<Vec<(String, String, RenewalClaim)>>);

impl BackgroundRenewal for DeferredRenewals {
    fn start(&self, credential: &ResolvedCredential<'_>, entry: &CacheEntry<'_>, now: i64) {
        if entry.renewal_failures().is_some_and(|f| f.backing_off(now)) {
            return;
        }
        if let Ok(Some(claim)) = entry.try_claim_renewal() {
            self.0.borrow_mut().push((credential.name.clone(), entry.id().to_string(), claim));
        }
    }
}

/// The credential thread's state.
struct Worker<'a> {
    broker: CredentialBroker<'a>,
    credential: String,
    headers: HeaderChoice,
    shared: Arc<Shared>,
    renewals: &'a DeferredRenewals,
    audit: Option<AuditLog>,
}

impl Worker<'_> {
    fn run(&self, job: Job) {
        match job {
            Job::Ask { rejected, reply } => {
                if let Some(rejected) = rejected.filter(|r| !self.shared.already_renewed_after(r)) {
                    self.broker.forget_rejected(&self.credential, &rejected);
                    *self.shared.renewed_after.lock().expect("renewal lock") = Some(rejected);
                }
                let _ = reply.send(self.look());
            }
            Job::LookAgain => {
                let _ = self.look();
                self.shared.looking.store(false, Ordering::SeqCst);
            }
        }
        let due: Vec<_> = self.renewals.0.borrow_mut().drain(..).collect();
        for (name, entry, _claim) in due {
            match self.broker.renew(&name, &entry) {
                Ok(()) => {
                    let _ = self.look();
                }
                Err(failure) => eprintln!("keyhelper: renewing '{name}' failed: {failure}"),
            }
        }
    }

    /// Gets the credential through the broker and keeps its header in memory.
    fn look(&self) -> Result<Arc<Authorization>, Failure> {
        let served = self.broker.get(&self.credential, GetOptions::default())?;
        self.record(&served);
        let authorization = Arc::new(authorization(&served, &self.headers)?);
        let now = Instant::now();
        let at = |unix: i64| {
            let when = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0));
            now + when.duration_since(SystemTime::now()).unwrap_or_default()
        };
        let (look_again, floor) = match served.timing {
            Some(timing) => (at(timing.renew_from).min(now + MEMO_LIMIT), at(timing.floor)),
            // Not cached: look again soon, and never serve it for long.
            None => (now + MEMO_LIMIT, now + MEMO_LIMIT),
        };
        *self.shared.memo.lock().expect("memo lock") =
            Some(Memo { authorization: authorization.clone(), look_again, floor });
        Ok(authorization)
    }
}

impl Worker<'_> {
    /// One audit line per fetch that served requests or asked the provider,
    /// with the number of requests since the last line.
    fn record(&self, served: &Served<'_>) {
        let Some(audit) = &self.audit else { return };
        let requests = self.shared.requests.swap(0, Ordering::Relaxed);
        if requests == 0 && served.from_cache {
            return;
        }
        let record = AuditRecord {
            credential: &self.credential,
            provider: Some(&served.source.manifest.name),
            mode: "proxy",
            cache: Some(if served.from_cache { "hit" } else { "miss" }),
            outcome: "served",
            requests: Some(requests),
        };
        if let Err(e) = audit.append(&record) {
            tracing::warn!("cannot write the audit log: {e}");
        }
    }
}

/// The header (name, prefix and secret) for a served credential.
fn authorization(served: &Served<'_>, choice: &HeaderChoice) -> Result<Authorization, Failure> {
    let conventions = &served.source.manifest.conventions;
    let name =
        choice.name.clone().or_else(|| conventions.header.clone()).unwrap_or_else(|| "Authorization".into());
    let prefix = choice.prefix.clone().unwrap_or_else(|| {
        if conventions.header.is_some() { conventions.header_prefix.clone() } else { "Bearer ".into() }
    });
    let extra = served
        .credential
        .headers
        .iter()
        .filter_map(|(k, v)| {
            Some((HeaderName::from_bytes(k.as_bytes()).ok()?, HeaderValue::from_str(v).ok()?))
        })
        .collect();
    let secret = served.credential.secret.clone();
    let invalid =
        |what: &str| Failure::new(ExitClass::Usage, format!("cannot build the upstream {what} header"));
    Ok(Authorization {
        name: HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("name of the"))?,
        value: {
            let mut value = HeaderValue::from_str(&format!("{prefix}{}", secret.expose()))
                .map_err(|_| invalid("credential"))?;
            value.set_sensitive(true);
            value
        },
        secret,
        extra,
    })
}
