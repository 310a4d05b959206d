//! A request body as the domain sees it: bytes not yet read, which a face opens with a cap. The
//! HTTP face implements it for Rocket's body; the domain never names the framework.

use tokio::io::AsyncRead;

/// A body not yet read.
pub trait Body: Send {
    type Reader: AsyncRead + Unpin + Send;

    /// The body's bytes, cut after `limit` bytes.
    fn open(self, limit: u64) -> Self::Reader;
}

/// Reads and drops at most 1 MiB of a body refused (or answered) before it was read, so a
/// client that writes its whole request before it reads sees the answer instead of a reset.
pub async fn discard(body: impl Body) {
    let mut reader = body.open(1 << 20);
    let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
}
