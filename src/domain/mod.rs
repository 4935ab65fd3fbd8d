//! Newtypes that can only be built valid: an address we may register, a
//! customer's name, a random token and its hash.
//!
//! Everything here is pure: no IO, no clock, no database. Callers that hold one
//! of these types know its rules were checked once, at the boundary.

mod email;
mod name;
mod token;

pub use email::{AddressError, EmailAddress};
pub use name::CustomerName;
pub use token::{Token, TokenHash};
