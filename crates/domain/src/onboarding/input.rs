//! Validated inputs of the wizard's steps.
//!
//! The HTTP edge checks formats with garde first; these constructors refuse impossible values
//! again so that no caller can hand the domain something the downstream calls cannot carry
//! (a token with a line break in a header, a phone number ID with a `/` in a URL path).

use super::state::{CompanyName, OrganizationDetails};
use crate::model::{Email, Region};
use crate::secret::{ExposeSecret, SecretString};
use serde::Serialize;
use std::fmt;

/// One refused field, as returned in `details` of `VALIDATION_FAILED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The request field (`clientSecret`) or the integration (`genesys`).
    pub field: &'static str,
    /// What is wrong; never contains the value itself.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn length_ok(value: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&value.chars().count())
}

/// Visible ASCII only: safe in a header and a form body.
fn visible_ascii(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_graphic())
}

impl OrganizationDetails {
    /// Validates step 1's fields, reporting every problem at once.
    pub fn new(
        company_name: &str,
        region: &str,
        contact_email: &str,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let company_name = CompanyName::parse(company_name)
            .map_err(|e| errors.push(FieldError::new("companyName", e)))
            .ok();
        let region = region
            .parse::<Region>()
            .map_err(|e| errors.push(FieldError::new("region", e)))
            .ok();
        let contact_email = Email::parse(contact_email)
            .map_err(|_| {
                errors.push(FieldError::new(
                    "contactEmail",
                    "Valid email address required",
                ))
            })
            .ok();
        match (company_name, region, contact_email) {
            (Some(company_name), Some(region), Some(contact_email)) if errors.is_empty() => {
                Ok(Self {
                    company_name,
                    region,
                    contact_email,
                })
            }
            _ => Err(errors),
        }
    }
}

/// Step 2's input: Genesys client credentials for a region.
pub struct GenesysCredentials {
    client_id: String,
    client_secret: SecretString,
    region: Region,
}

impl fmt::Debug for GenesysCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenesysCredentials")
            .field("client_id", &crate::secret::mask(&self.client_id))
            .field("client_secret", &"[REDACTED]")
            .field("region", &self.region)
            .finish()
    }
}

impl GenesysCredentials {
    /// Client ID length bounds (characters).
    pub const CLIENT_ID_LEN: (usize, usize) = (10, 100);
    /// Client secret length bounds (characters).
    pub const CLIENT_SECRET_LEN: (usize, usize) = (10, 200);

    /// Validates the fields, reporting every problem at once.
    pub fn new(
        client_id: &str,
        client_secret: SecretString,
        region: &str,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let (min, max) = Self::CLIENT_ID_LEN;
        if !length_ok(client_id, min, max) || !visible_ascii(client_id) {
            errors.push(FieldError::new(
                "clientId",
                "clientId must be 10-100 visible characters",
            ));
        }
        let (min, max) = Self::CLIENT_SECRET_LEN;
        let secret = client_secret.expose_secret();
        if !length_ok(secret, min, max) || !visible_ascii(secret) {
            errors.push(FieldError::new(
                "clientSecret",
                "clientSecret must be 10-200 visible characters",
            ));
        }
        let region = region
            .parse::<Region>()
            .map_err(|e| errors.push(FieldError::new("region", e)))
            .ok();
        match region {
            Some(region) if errors.is_empty() => Ok(Self {
                client_id: client_id.to_owned(),
                client_secret,
                region,
            }),
            _ => Err(errors),
        }
    }

    /// The client ID.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The client secret.
    pub fn client_secret(&self) -> &SecretString {
        &self.client_secret
    }
    /// The region.
    pub fn region(&self) -> Region {
        self.region
    }
}

/// Step 3's input: a WhatsApp phone number ID and a Meta system-user token.
pub struct WhatsAppCredentials {
    phone_number_id: String,
    system_user_token: SecretString,
}

impl fmt::Debug for WhatsAppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppCredentials")
            .field("phone_number_id", &self.phone_number_id)
            .field("system_user_token", &"[REDACTED]")
            .finish()
    }
}

impl WhatsAppCredentials {
    /// Phone number ID length bounds (ASCII letters and digits; it goes into a URL path).
    pub const PHONE_NUMBER_ID_LEN: (usize, usize) = (1, 64);
    /// System-user token length bounds (characters).
    pub const TOKEN_LEN: (usize, usize) = (10, 1024);

    /// Validates the fields, reporting every problem at once.
    pub fn new(
        phone_number_id: &str,
        system_user_token: SecretString,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let (min, max) = Self::PHONE_NUMBER_ID_LEN;
        if !length_ok(phone_number_id, min, max)
            || !phone_number_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            errors.push(FieldError::new(
                "phoneNumberId",
                "phoneNumberId must be 1-64 letters or digits",
            ));
        }
        let (min, max) = Self::TOKEN_LEN;
        let token = system_user_token.expose_secret();
        if !length_ok(token, min, max) || !visible_ascii(token) {
            errors.push(FieldError::new(
                "systemUserToken",
                "systemUserToken must be 10-1024 visible characters",
            ));
        }
        if errors.is_empty() {
            Ok(Self {
                phone_number_id: phone_number_id.to_owned(),
                system_user_token,
            })
        } else {
            Err(errors)
        }
    }

    /// The phone number ID.
    pub fn phone_number_id(&self) -> &str {
        &self.phone_number_id
    }
    /// The token.
    pub fn system_user_token(&self) -> &SecretString {
        &self.system_user_token
    }
}
