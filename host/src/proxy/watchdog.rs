//! The header timeout, kept per connection rather than per request: a
//! client connection is closed once a whole period passes in which it
//! started no request and had none in flight, so a client that sends its
//! headers slowly (or leaves a connection idle) goes after one to two periods.
//!
//! hyper's own header timeout makes and drops a timer for every request,
//! which showed in the proxy's CPU per request under load (README,
//! Performance); this one re-arms one timer per connection per period.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::forward::ProxyBody;
use super::upstream::BoxError;

/// What one client connection has done, as its watchdog sees it.
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests whose headers arrived.
    started: AtomicU64,
    /// Requests whose response has not ended.
    open: AtomicU64,
}

impl Activity {
    /// Counts a request in as its headers arrive; it counts out when the
    /// [`Request`] (then its response body) is dropped.
    pub fn arrived(self: &Arc<Self>) -> Request {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        Request(self.clone())
    }

    /// Watches a connection: completes once a whole `period` passed with no
    /// request started and none in flight.
    pub async fn idle_for(&self, period: Duration) {
        let mut seen = self.started.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(period).await;
            let started = self.started.load(Ordering::Relaxed);
            if started == seen && self.open.load(Ordering::Relaxed) == 0 {
                return;
            }
            seen = started;
        }
    }
}

/// A request counted as in flight, from its headers to its response's end.
pub struct Request(Arc<Activity>);

impl Request {
    /// The response's body, which keeps the request in flight until it is
    /// dropped (a stream of server-sent events may run for minutes).
    pub fn answered(self, body: ProxyBody) -> InFlight {
        InFlight { body, _request: self }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body whose request is counted as in flight while it lives.
pub struct InFlight {
    body: ProxyBody,
    _request: Request,
}

impl Body for InFlight {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Empty};

    use super::*;

    fn body() -> ProxyBody {
        Empty::new().map_err(|never| match never {}).boxed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_after_a_whole_period_without_requests_in_flight() {
        let activity = Arc::new(Activity::default());
        let period = Duration::from_secs(10);
        let streaming = activity.arrived().answered(body());
        let watched = tokio::time::timeout(Duration::from_secs(60), activity.idle_for(period)).await;
        assert!(watched.is_err(), "a response in flight keeps the connection");
        drop(streaming);
        let started = tokio::time::Instant::now();
        activity.idle_for(period).await;
        assert_eq!(started.elapsed(), period, "then one quiet period ends it");
        let watching = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(period).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(activity.arrived());
        let started = tokio::time::Instant::now();
        watching.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(15), "a request restarts the count");
    }
}
