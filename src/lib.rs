//! `registrar`: self-registration by email for a help desk's customer portal.
//!
//! A customer mails a service's support address; the SMTP listener decides
//! by the service's policy whether they may register, and if so commits a
//! pending customer, an activation token hash and the reply in one
//! transaction before answering `250`. The outbox worker sends the reply; the
//! customer opens the link, sets name and password and is signed in.
//!
//! See ARCHITECTURE.md for the map. Modules are listed in reading order, the
//! order of its code map: from the pure types at the bottom up to the ways
//! in and the tools; a module imports only modules listed before it, except
//! the plumbing listed last (`metrics`, `shutdown`, `telemetry`), which
//! imports nothing of ours.

// The pure core: valid types, the parsed message, the rules.
pub mod domain;

pub mod message;

pub mod dsn;

pub mod policy;

pub mod sender_auth;

// Configuration and storage.
pub mod dkim;

pub mod mime;
pub mod stencil;
pub mod wording;

pub mod settings;

pub mod store;

// What the use cases need: password hashing, reply wording, composing mail,
// the identity providers the sign-in methods ask, and the webhooks that
// tell other systems about customers.
pub mod password;

pub mod replies;

pub mod mailer;

pub mod http_client;

pub mod oidc;

pub mod directory;

pub mod webhooks;

// The use cases, the only door to the store for the ways in.
pub mod registration;

pub mod outbox;

// The ways in.
pub mod smtp;

pub mod web;

// Putting it together: both listeners, the store and the workers.
pub mod app;

// The tools of the command line (replay runs a real `app`).
pub mod operator;

pub mod replay;

pub mod explain;

// The cross-cutting plumbing.
pub mod reload;

pub mod metrics;

pub mod shutdown;

pub mod telemetry;
