//! `registrar`: self-registration by email for a help desk's customer portal.
//!
//! A customer mails a service's support address; the SMTP listener decides
//! by the service's policy whether they may register, and if so commits a
//! pending customer, an activation token hash and the reply in one
//! transaction before answering `250`. The outbox worker sends the reply; the
//! customer opens the link, sets name and password and is signed in.
//!
//! See ARCHITECTURE.md for the map. Modules are listed in reading order.

pub mod app;
pub mod domain;
pub mod explain;
pub mod mailer;
pub mod message;
pub mod operator;
pub mod outbox;
pub mod password;
pub mod policy;
pub mod registration;
pub mod reload;
pub mod replay;
pub mod replies;
pub mod sender_auth;
pub mod settings;
pub mod shutdown;
pub mod smtp;
pub mod store;
pub mod telemetry;
pub mod web;
