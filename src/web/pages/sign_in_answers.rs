//! The answers of the sign-in methods other than a password, in one place:
//! signed in (a new session cookie and on to the portal), or a clear page
//! saying why not and what to do. Nothing was created when one of these
//! pages is shown.

use crate::policy::RefuseReason;
use crate::registration::{Declined, SignIn};
use crate::web::error::WebError;
use crate::web::pages::brand;
use crate::web::views::{self, render};
use crate::web::{AppState, session};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;

/// Which method the visitor used, for the wording.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    Google,
    Directory,
    EmailLink,
    ResetLink,
}

impl Method {
    fn provider(self) -> &'static str {
        match self {
            Method::Google => "Google",
            Method::Directory => "your company directory",
            Method::EmailLink | Method::ResetLink => "the portal",
        }
    }

    fn event(self) -> &'static str {
        match self {
            Method::Google => "signed_in_google",
            Method::Directory => "signed_in_directory",
            Method::EmailLink => "signed_in_email_link",
            Method::ResetLink => "password_reset",
        }
    }
}

/// The response to a sign-in by `method`.
pub fn answer(state: &AppState, jar: CookieJar, method: Method, outcome: SignIn) -> Response {
    match outcome {
        SignIn::SignedIn {
            customer_id,
            session: session_id,
        } => {
            tracing::info!(event = method.event(), customer.id = customer_id);
            let jar = jar.add(session::new_cookie(&session_id, state));
            (jar, Redirect::to("/portal")).into_response()
        }
        SignIn::Disabled { customer_id } => {
            tracing::info!(event = "sign_in_disabled", customer.id = customer_id);
            (
                jar,
                refusal(
                    state,
                    StatusCode::FORBIDDEN,
                    "This account is disabled",
                    "Contact support if you think this is a mistake.",
                ),
            )
                .into_response()
        }
        SignIn::Refused => (
            jar,
            refusal(
                state,
                StatusCode::UNPROCESSABLE_ENTITY,
                "You are not signed in",
                "The sign-in did not succeed. Nothing was changed; try again.",
            ),
        )
            .into_response(),
        SignIn::Declined(declined) => (jar, declined_page(state, method, declined)).into_response(),
        // Only a password check waits in the argon2 queue; nothing was done.
        SignIn::Busy => (jar, WebError::Busy).into_response(),
    }
}

/// The page for a declined sign-in.
pub fn declined_page(state: &AppState, method: Method, declined: Declined) -> Response {
    tracing::info!(event = "sign_in_declined", reason = ?declined);
    let (status, heading, text): (StatusCode, &str, String) = match declined {
        Declined::NotConfigured => (
            StatusCode::NOT_FOUND,
            "This way of signing in is not offered",
            "Use another way to sign in.".into(),
        ),
        Declined::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again later",
            format!(
                "We cannot reach {} right now. Nothing was changed; try again in a few minutes.",
                method.provider()
            ),
        ),
        Declined::Invalid => (
            StatusCode::BAD_REQUEST,
            "This sign-in could not be completed",
            "It took too long, was already used, or did not come back the way it was sent. \
             Nothing was changed. Start again from the sign-in page."
                .into(),
        ),
        Declined::EmailNotVerified => (
            StatusCode::FORBIDDEN,
            "Your email address is not verified",
            format!(
                "{} does not confirm that the email address of this account is yours. \
                 Verify it there, or sign in another way.",
                method.provider()
            ),
        ),
        Declined::NotInGroup => (
            StatusCode::FORBIDDEN,
            "Your company account cannot use the portal",
            "Your account is not in the group allowed to use the portal. \
             Ask your IT department for access."
                .into(),
        ),
        Declined::NoEmail => (
            StatusCode::FORBIDDEN,
            "Your account has no email address",
            format!(
                "{} did not give us an email address for your account, and the portal needs one. \
                 Sign in another way.",
                method.provider()
            ),
        ),
        Declined::NotAllowed(reason) => (
            StatusCode::FORBIDDEN,
            "This address cannot use the portal",
            match reason {
                RefuseReason::DomainNotAllowed => {
                    "The portal is open only to the companies this help desk serves, and this \
                     address belongs to none of them. Use your company address, or contact support."
                }
                RefuseReason::Denied => {
                    "This address may not use the portal. Contact support if you think this is a mistake."
                }
                _ => {
                    "This way of signing in is not open for this address. \
                     Use another way to sign in, or contact support."
                }
            }
            .into(),
        ),
        Declined::DeadLink => (
            StatusCode::NOT_FOUND,
            "This link no longer works",
            "Links to sign in or to choose a new password work once and expire soon. \
             This one is unknown, expired or already used. Ask for a new one."
                .into(),
        ),
    };
    refusal(state, status, heading, &text)
}

fn refusal(state: &AppState, status: StatusCode, heading: &str, text: &str) -> Response {
    let page = views::Notice {
        brand: &brand(state),
        heading,
        text,
        link: Some(("/login", "Back to sign in")),
    };
    (status, render(&page)).into_response()
}
