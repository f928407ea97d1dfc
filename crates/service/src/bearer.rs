//! The one reading of `Authorization: Bearer <token>`, for every route that takes a token
//! (API keys, the board, the admin API), and how an OpenAPI document names such a token. A
//! token is never read from a URL.

use axum::http::{HeaderMap, header};

/// The token of the request's `Authorization: Bearer` header, if it has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// An OpenAPI security scheme `Authorization: Bearer <token>`, under `name`.
pub struct BearerScheme {
    /// The scheme's name, as the routes' `security(...)` refer to it.
    pub name: &'static str,
    /// What the token is.
    pub description: &'static str,
}

impl utoipa::Modify for BearerScheme {
    fn modify(&self, document: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = document.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(self.description))
            .build();
        components.add_security_scheme(self.name, SecurityScheme::Http(scheme));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_authorization_gives_a_token() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            bearer_token(&headers).map(str::to_string)
        };
        assert_eq!(with("Bearer abc"), Some("abc".to_string()));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("bearerabc"), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
