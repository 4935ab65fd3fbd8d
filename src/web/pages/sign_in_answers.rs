//! The answers of the sign-in methods other than a password, in one place:
//! signed in (a new session cookie and on to the portal), or a clear page
//! saying why not and what to do. Nothing was created when one of these
//! pages is shown.

use crate::policy::RefuseReason;
use crate::registration::{Declined, SignIn};
use crate::web::error::WebError;
use crate::web::pages::brand;
use crate::web::views::{self, render, tr, tr_with};
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
    fn provider(self) -> String {
        match self {
            Method::Google => tr("msg.provider_google"),
            Method::Directory => tr("msg.provider_directory"),
            Method::EmailLink | Method::ResetLink => tr("msg.provider_portal"),
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
                    tr("msg.disabled_heading"),
                    tr("msg.contact_support"),
                ),
            )
                .into_response()
        }
        SignIn::Refused => (
            jar,
            refusal(
                state,
                StatusCode::UNPROCESSABLE_ENTITY,
                tr("msg.not_signed_in"),
                tr("msg.not_signed_in_text"),
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
    let (status, heading, text): (StatusCode, String, String) = match declined {
        Declined::NotConfigured => (
            StatusCode::NOT_FOUND,
            tr("msg.not_offered"),
            tr("msg.not_offered_text"),
        ),
        Declined::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            tr("msg.try_later"),
            tr_with("msg.unreachable", &[("provider", &method.provider())]),
        ),
        Declined::Invalid => (
            StatusCode::BAD_REQUEST,
            tr("msg.incomplete"),
            tr("msg.incomplete_text"),
        ),
        Declined::EmailNotVerified => (
            StatusCode::FORBIDDEN,
            tr("msg.not_verified"),
            tr_with("msg.not_verified_text", &[("provider", &method.provider())]),
        ),
        Declined::NotInGroup => (
            StatusCode::FORBIDDEN,
            tr("msg.not_in_group"),
            tr("msg.not_in_group_text"),
        ),
        Declined::NoEmail => (
            StatusCode::FORBIDDEN,
            tr("msg.no_email"),
            tr_with("msg.no_email_text", &[("provider", &method.provider())]),
        ),
        Declined::NotAllowed(reason) => (
            StatusCode::FORBIDDEN,
            tr("msg.not_allowed"),
            match reason {
                RefuseReason::DomainNotAllowed => tr("msg.domain_not_allowed"),
                RefuseReason::Denied => tr("msg.denied"),
                _ => tr("msg.channel_closed"),
            },
        ),
        Declined::DeadLink => (
            StatusCode::NOT_FOUND,
            tr("msg.dead_link"),
            tr("msg.dead_link_text"),
        ),
    };
    refusal(state, status, heading, text)
}

fn refusal(state: &AppState, status: StatusCode, heading: String, text: String) -> Response {
    let page = views::Notice {
        brand: &brand(state),
        heading,
        text,
        link: Some(("/login", tr("web.back_to_sign_in"))),
    };
    (status, render(&page)).into_response()
}
