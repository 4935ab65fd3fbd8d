//! Newtypes that can only be built valid: an address we may register, a
//! customer's name, a random token and its hash, an IP range, the network a
//! client is counted in; an envelope sender read for who it names
//! (`ReturnPath`); and the `Channel` a request came in by.
//!
//! Everything here is pure: no IO, no clock, no database. Callers that hold one
//! of these types know its rules were checked once, at the boundary.

mod channel;
mod choice;
mod client;
mod email;
mod ip_range;
mod name;
mod return_path;
mod token;

pub use channel::Channel;
pub use choice::one_of;
pub use client::ClientNetwork;
pub use email::{AddressError, EmailAddress};
pub use ip_range::IpRange;
pub use name::CustomerName;
pub use return_path::{BatvTag, EnvelopeMatch, ReturnPath, SrsScheme};
pub use token::{Token, TokenHash};
