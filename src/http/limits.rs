//! Bounds on what one request may hold the server to: a declared body over the limit is refused
//! before it is read, and a body must arrive within the request timeout.

use super::error::plain;
use super::request::BODY_LIMIT;
use axum::extract::Request;
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

/// A `Content-Length` over `BODY_LIMIT` is answered 413 at once: before authentication and
/// without reading a byte of the body (a client sending `Expect: 100-continue` never sends it).
/// Nothing is recorded, so such requests cannot grow the log either.
pub async fn declared_length(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
        let mut response = plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large (64 KiB at most).",
            "payload_too_large",
        );
        // The body is never read, so the connection cannot carry another request.
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

/// The error a request body gives once its deadline has passed (rendered as 408).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive before its deadline")]
pub struct BodyTimedOut;

pin_project_lite::pin_project! {
    /// A request body that fails with `BodyTimedOut` if it has not ended by `deadline`.
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        #[pin]
        deadline: Sleep,
    }
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, deadline: Instant) -> Self {
        Self {
            inner,
            deadline: tokio::time::sleep_until(deadline),
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        // What has arrived is delivered even at the deadline.
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
