//! The HTTP plumbing every HTTP executor shares: one pooled client, the upstream's address
//! and credentials, which headers cross, sending with a first-byte deadline, reading error
//! bodies, and the upstream's body (decoded if it came compressed) passed through with an
//! idle deadline.
//!
//! Nothing here knows a provider's wire format: that is the executors' (and `translate`'s).

mod body;
mod client;
mod decode;
mod headers;
mod http;
mod send;

pub use self::body::UpstreamBody;
pub use self::client::{ClientSettings, UpstreamClient};
pub use self::decode::UpstreamIncoming;
pub(crate) use self::headers::clean_response_headers;
pub use self::http::{Address, HttpUpstream};
pub(crate) use self::send::upstream_error;
