//! "Sign in with Google": a generic OpenID Connect relying party (the
//! authorization code flow with PKCE, `state` and `nonce`) on the
//! `openidconnect` crate. The only module that knows it.
//!
//! Google is the preset issuer; any other (Microsoft Entra, Okta, Keycloak)
//! is a setting. The discovery document is fetched on first use and kept;
//! its key set is fetched again when an ID token names a key (`kid`) it does
//! not hold, so the provider's key rotation needs no restart. The ID token's
//! signature, `iss`, `aud`, `exp` and `nonce` are checked by the crate's
//! verifier; whether `email_verified` suffices is the caller's rule.
//!
//! A login in flight (state, nonce, PKCE verifier) is kept here in memory,
//! keyed by the hash of a random flow id that only the browser's cookie
//! holds, and taken out at the callback, so each is used at most once and a
//! callback from another browser finds nothing. A restart forgets them; the
//! visitor starts again.
//!
//! HTTP to the provider goes through reqwest on rustls with the aws-lc-rs
//! provider (the process's one TLS stack), with redirects off (a redirect
//! could point the client at an internal address) and a timeout.

use crate::domain::{Token, TokenHash};
use crate::settings::OidcSettings;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJsonWebKeySet, CoreProviderMetadata,
};
use openidconnect::reqwest;
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse as _,
};
use secrecy::ExposeSecret as _;
use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq as _;
use url::Url;

/// How long a visitor has to come back from the provider.
const FLOW_TTL: Duration = Duration::from_secs(10 * 60);

/// Most logins in flight at once; past it new ones are refused until some
/// expire (memory stays bounded whatever visitors do).
const MAX_FLOWS: usize = 10_000;

/// Why a sign-in with the provider did not give an identity.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or answered nonsense; try later.
    #[error("the provider cannot be reached: {0}")]
    Unavailable(String),
    /// Too many logins in flight.
    #[error("too many sign-ins in flight")]
    Busy,
    /// No login in flight for this browser: expired, used, or started
    /// elsewhere.
    #[error("no sign-in in flight for this browser")]
    UnknownFlow,
    /// The `state` that came back is not the one sent.
    #[error("the state does not match")]
    StateMismatch,
    /// The token endpoint refused the code (used twice, expired, another
    /// client's).
    #[error("the provider refused the code: {0}")]
    CodeRefused(String),
    /// The ID token is missing or does not verify (signature, issuer,
    /// audience, expiry, nonce).
    #[error("the ID token does not verify: {0}")]
    InvalidToken(String),
}

/// Who the provider says signed in, from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider's stable id for the account (`sub`).
    pub subject: String,
    pub email: Option<String>,
    /// `email_verified`; absent counts as false.
    pub email_verified: bool,
    pub name: Option<String>,
}

/// A login started: send the browser to `url`, and give it `flow` in a
/// cookie.
pub struct Started {
    pub url: Url,
    pub flow: Token,
}

/// What a login in flight remembers.
struct InFlight {
    state: String,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    started: Instant,
}

/// The relying party for one provider.
pub struct OidcClient {
    client_id: ClientId,
    client_secret: ClientSecret,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    http: reqwest::Client,
    /// The discovery document (with its key set), once fetched.
    metadata: tokio::sync::Mutex<Option<CoreProviderMetadata>>,
    flows: Mutex<HashMap<TokenHash, InFlight>>,
}

impl OidcClient {
    /// A client for `settings`, answering at `redirect` (our callback URL).
    /// Nothing is fetched yet.
    ///
    /// # Errors
    /// The HTTP client cannot be built or a URL is not acceptable.
    pub fn new(settings: &OidcSettings, redirect: &Url) -> anyhow::Result<Self> {
        let issuer = settings.issuer.as_str().trim_end_matches('/').to_owned();
        Ok(Self {
            client_id: ClientId::new(settings.client_id.clone()),
            client_secret: ClientSecret::new(settings.client_secret.expose_secret().to_owned()),
            issuer: IssuerUrl::new(issuer)?,
            redirect: RedirectUrl::from_url(redirect.clone()),
            http: http_client(settings.timeout)?,
            metadata: tokio::sync::Mutex::new(None),
            flows: Mutex::new(HashMap::new()),
        })
    }

    /// Starts a login: a fresh state, nonce and PKCE pair, remembered under
    /// a new flow id; returns the provider's authorization URL.
    ///
    /// # Errors
    /// `Unavailable` when discovery fails; `Busy` when too many logins are in
    /// flight.
    pub async fn start(&self) -> Result<Started, OidcError> {
        let metadata = self.metadata().await?;
        let client = self.client(metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let flow = Token::generate();
        let mut flows = self.lock_flows();
        let now = Instant::now();
        if flows.len() >= MAX_FLOWS {
            flows.retain(|_, f| now.duration_since(f.started) < FLOW_TTL);
            if flows.len() >= MAX_FLOWS {
                return Err(OidcError::Busy);
            }
        }
        flows.insert(
            flow.hash(),
            InFlight {
                state: state.secret().clone(),
                nonce,
                verifier,
                started: now,
            },
        );
        Ok(Started { url, flow })
    }

    /// Finishes the login the browser's `flow` started: the flow is taken
    /// out (single use), `state` compared, the code exchanged with the PKCE
    /// verifier and the ID token verified.
    ///
    /// # Errors
    /// Each way it can fail, as `OidcError`.
    pub async fn finish(
        &self,
        flow: &Token,
        state: &str,
        code: &str,
    ) -> Result<Identity, OidcError> {
        let in_flight = self
            .lock_flows()
            .remove(&flow.hash())
            .filter(|f| f.started.elapsed() < FLOW_TTL)
            .ok_or(OidcError::UnknownFlow)?;
        if !bool::from(in_flight.state.as_bytes().ct_eq(state.as_bytes())) {
            return Err(OidcError::StateMismatch);
        }
        let metadata = self.metadata().await?;
        let client = self.client(metadata);
        let request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Unavailable(e.to_string()))?
            .set_pkce_verifier(in_flight.verifier);
        let response = request.request_async(&self.http).await.map_err(|e| {
            use openidconnect::RequestTokenError;
            match e {
                RequestTokenError::ServerResponse(answer) => {
                    OidcError::CodeRefused(answer.error().to_string())
                }
                other => OidcError::Unavailable(other.to_string()),
            }
        })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::InvalidToken("no ID token in the answer".into()))?;
        self.verify(id_token, &in_flight.nonce).await
    }

    /// Verifies a raw ID token (compact JWS) issued for us with `nonce`.
    /// The callback path uses `finish`; this is the same check for a token
    /// obtained otherwise.
    ///
    /// # Errors
    /// `InvalidToken` when it does not verify; `Unavailable` when the keys
    /// cannot be fetched.
    pub async fn verify_raw(&self, raw: &str, nonce: &str) -> Result<Identity, OidcError> {
        let token =
            CoreIdToken::from_str(raw).map_err(|e| OidcError::InvalidToken(e.to_string()))?;
        self.verify(&token, &Nonce::new(nonce.to_owned())).await
    }

    /// Verifies signature, `iss`, `aud`, `exp` and `nonce`; on a key the
    /// cached set does not hold, fetches the set once more and retries.
    async fn verify(&self, token: &CoreIdToken, nonce: &Nonce) -> Result<Identity, OidcError> {
        let metadata = self.metadata().await?;
        let first = {
            let client = self.client(metadata);
            let verifier = client.id_token_verifier();
            token.claims(&verifier, nonce).map(identity)
        };
        match first {
            Ok(identity) => Ok(identity),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let metadata = self.refresh_keys().await?;
                let client = self.client(metadata);
                let verifier = client.id_token_verifier();
                token
                    .claims(&verifier, nonce)
                    .map(identity)
                    .map_err(|e| OidcError::InvalidToken(e.to_string()))
            }
            Err(error) => Err(OidcError::InvalidToken(error.to_string())),
        }
    }

    /// The discovery document, fetched on first use.
    async fn metadata(&self) -> Result<CoreProviderMetadata, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some(metadata) = cached.as_ref() {
            return Ok(metadata.clone());
        }
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| OidcError::Unavailable(format!("discovery failed: {e}")))?;
        *cached = Some(metadata.clone());
        Ok(metadata)
    }

    /// Fetches the key set again (the provider rotated its keys).
    async fn refresh_keys(&self) -> Result<CoreProviderMetadata, OidcError> {
        let mut cached = self.metadata.lock().await;
        let metadata = match cached.take() {
            Some(metadata) => metadata,
            None => CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
                .await
                .map_err(|e| OidcError::Unavailable(format!("discovery failed: {e}")))?,
        };
        let keys = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http).await;
        let metadata = match keys {
            Ok(keys) => metadata.set_jwks(keys),
            Err(error) => {
                *cached = Some(metadata);
                return Err(OidcError::Unavailable(format!(
                    "fetching the keys failed: {error}"
                )));
            }
        };
        tracing::info!(
            event = "oidc_keys_refreshed",
            "fetched the provider's keys again"
        );
        *cached = Some(metadata.clone());
        Ok(metadata)
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
    ) -> openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    fn lock_flows(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, InFlight>> {
        self.flows
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The claims we use, from verified ID token claims.
fn identity(
    claims: &openidconnect::IdTokenClaims<
        openidconnect::EmptyAdditionalClaims,
        openidconnect::core::CoreGenderClaim,
    >,
) -> Identity {
    Identity {
        subject: claims.subject().as_str().to_owned(),
        email: claims.email().map(|email| email.as_str().to_owned()),
        email_verified: claims.email_verified().unwrap_or(false),
        name: claims
            .name()
            .and_then(|name| name.get(None))
            .map(|name| name.as_str().to_owned()),
    }
}

/// reqwest on rustls with the aws-lc-rs provider and the public web roots;
/// no redirects; a timeout on every request.
fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()?)
}
