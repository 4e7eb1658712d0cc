//! The secret the proxy puts on requests. A thread of its own owns the
//! configuration and one credential broker for the proxy's lifetime (its
//! cache, plugins and locks are synchronous); requests ask it only when the
//! copy held in memory is due for renewal, so most requests cost a mutex lock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::header::{HeaderName, HeaderValue};
use keyhelper_core::clock::unix_now;
use keyhelper_core::config::Settings;
use keyhelper_core::credential::Secret;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::resolve::resolve;
use tokio::sync::oneshot;

use super::ProxyOptions;
use crate::broker::{CredentialBroker, GetOptions};
use crate::environment::Environment;

/// How long the in-memory copy is used before asking the cache again, at most
/// (so a rotation by another keyhelper is picked up).
const MEMO_LIMIT: Duration = Duration::from_secs(30);

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

struct Memo {
    authorization: Authorization,
    until: Instant,
}

struct Job {
    rejected: Option<Secret>,
    reply: oneshot::Sender<Result<(Authorization, Duration), Failure>>,
}

/// Hands out the current credential header.
pub struct CredentialSource {
    memo: Mutex<Option<Memo>>,
    jobs: std::sync::mpsc::Sender<Job>,
}

impl CredentialSource {
    /// Starts the thread that fetches the credential, once it has checked
    /// the configuration and that the credential can be resolved.
    pub fn start(env: Environment, options: &ProxyOptions) -> Result<Self, Failure> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let (ready, started) = std::sync::mpsc::sync_channel::<Result<(), Failure>>(1);
        let options = options.clone();
        std::thread::Builder::new()
            .name("keyhelper-credentials".into())
            .spawn(move || {
                let config = match env.config() {
                    Ok(config) => config,
                    Err(failure) => return drop(ready.send(Err(failure))),
                };
                let broker = match resolve(&options.credential, &config, &env.catalog)
                    .and_then(|_| env.broker(&config))
                {
                    Ok(broker) => broker,
                    Err(failure) => return drop(ready.send(Err(failure))),
                };
                let _ = ready.send(Ok(()));
                for job in queue {
                    let answer = authorize(&broker, &config.settings, &options, job.rejected.as_ref());
                    let _ = job.reply.send(answer);
                }
            })
            .map_err(|e| {
                Failure::new(ExitClass::Internal, format!("cannot start the credential thread: {e}"))
            })?;
        started.recv().map_err(|_| Failure::new(ExitClass::Internal, "the credential thread stopped"))??;
        Ok(Self { memo: Mutex::new(None), jobs })
    }

    /// The current header, renewed when due.
    pub async fn current(&self) -> Result<Authorization, Failure> {
        if let Some(memo) = self.memo.lock().expect("memo lock").as_ref().filter(|m| Instant::now() < m.until)
        {
            return Ok(memo.authorization.clone());
        }
        self.ask(None).await
    }

    /// A new header after the upstream rejected `rejected`: the cached copy of
    /// that secret is dropped and the credential fetched again (unless another
    /// request already did).
    pub async fn renew_after_rejection(&self, rejected: &Secret) -> Result<Authorization, Failure> {
        let current = self.memo.lock().expect("memo lock").as_ref().map(|m| m.authorization.clone());
        if let Some(current) = current.filter(|a| a.secret != *rejected) {
            return Ok(current);
        }
        self.ask(Some(rejected.clone())).await
    }

    async fn ask(&self, rejected: Option<Secret>) -> Result<Authorization, Failure> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { rejected, reply })
            .map_err(|_| Failure::new(ExitClass::Internal, "the credential thread stopped"))?;
        let (authorization, memo_for) = answer
            .await
            .map_err(|_| Failure::new(ExitClass::Internal, "the credential thread stopped"))??;
        *self.memo.lock().expect("memo lock") =
            Some(Memo { authorization: authorization.clone(), until: Instant::now() + memo_for });
        Ok(authorization)
    }
}

/// On the credential thread: gets the credential through the broker (after
/// dropping a rejected cached copy) and builds its header.
fn authorize(
    broker: &CredentialBroker<'_>,
    settings: &Settings,
    options: &ProxyOptions,
    rejected: Option<&Secret>,
) -> Result<(Authorization, Duration), Failure> {
    if let Some(rejected) = rejected {
        broker.forget_rejected(&options.credential, rejected);
    }
    let served = broker.get(&options.credential, GetOptions::default())?;
    let conventions = &served.source.manifest.conventions;
    let name = options
        .header
        .clone()
        .or_else(|| conventions.header.clone())
        .unwrap_or_else(|| "Authorization".into());
    let prefix = options.header_prefix.clone().unwrap_or_else(|| {
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
    let secret = served.credential.secret;
    let invalid =
        |what: &str| Failure::new(ExitClass::Usage, format!("cannot build the upstream {what} header"));
    let authorization = Authorization {
        name: HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("name of the"))?,
        value: {
            let mut value = HeaderValue::from_str(&format!("{prefix}{}", secret.expose()))
                .map_err(|_| invalid("credential"))?;
            value.set_sensitive(true);
            value
        },
        secret,
        extra,
    };
    let refresh_before = served.source.refresh_before(settings);
    let memo_for = match served.credential.expires_at {
        Some(expires_at) => {
            let left = u64::try_from(expires_at - unix_now()).unwrap_or(0);
            Duration::from_secs(left).saturating_sub(refresh_before).min(MEMO_LIMIT)
        }
        None => MEMO_LIMIT,
    };
    Ok((authorization, memo_for))
}
