//! Request input: turning a raw request DTO into domain values with every field's problem
//! reported at once ([`Problems`]), and the OpenAPI schemas of the domain's input rules
//! ([`schema`]).
//!
//! A request DTO deserialises each field as an `Option` of raw text (so a missing field is
//! reported by its name, not as a deserialisation error) and converts with
//! `try_into_domain()`, which runs the domain's validating constructor of each field. The
//! rules therefore exist once, in the domain; the documented limits are read from the same
//! types' constants.

use crate::error::{ApiError, FieldProblem};
use std::fmt::Display;

/// The problems found while converting one request, in field order.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<FieldProblem>);

impl Problems {
    /// Records a problem.
    pub(crate) fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldProblem {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// A required field: absent → `{field} is required`; present → the domain's rule.
    /// `None` when a problem was recorded.
    pub(crate) fn required<R, T, E: Display>(
        &mut self,
        field: &str,
        raw: Option<R>,
        parse: impl FnOnce(R) -> Result<T, E>,
    ) -> Option<T> {
        match raw {
            None => {
                self.push(field, format!("{field} is required"));
                None
            }
            Some(raw) => self.parsed(field, parse(raw)),
        }
    }

    /// An optional field: `Some(None)` when absent, `None` when present and refused (the
    /// problem is recorded).
    pub(crate) fn optional<R, T, E: Display>(
        &mut self,
        field: &str,
        raw: Option<R>,
        parse: impl FnOnce(R) -> Result<T, E>,
    ) -> Option<Option<T>> {
        match raw {
            None => Some(None),
            Some(raw) => self.parsed(field, parse(raw)).map(Some),
        }
    }

    fn parsed<T, E: Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.push(field, e.to_string())).ok()
    }

    /// The problems.
    pub(crate) fn into_vec(self) -> Vec<FieldProblem> {
        self.0
    }
}

impl From<Problems> for ApiError {
    /// 400 `VALIDATION_FAILED` with one `details.fields` entry per problem.
    fn from(p: Problems) -> Self {
        ApiError::validation_list(p.0)
    }
}

/// OpenAPI schemas of request fields whose rule is a domain type, built from that type's
/// constants (utoipa's `min_length`/`max_length` attributes take literals only, which would be
/// a second copy of the rule). Used with `#[schema(schema_with = ...)]`.
pub(crate) mod schema {
    use portal_domain::model::Region;
    use portal_domain::onboarding::{
        ClientId, ClientSecret, CompanyName, PhoneNumberId, SystemUserToken,
    };
    use portal_domain::widget::MessageText;
    use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};

    fn text(description: String) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
    }

    /// A string of `min..=max` characters.
    fn bounded(description: String, min: usize, max: usize) -> ObjectBuilder {
        text(description)
            .min_length(Some(min))
            .max_length(Some(max))
    }

    fn secret(description: String, min: usize, max: usize) -> ObjectBuilder {
        bounded(description, min, max)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
    }

    #[allow(deprecated)] // `example`: the document's other examples use it too
    fn example(b: ObjectBuilder, value: &str) -> Object {
        b.example(Some(value.into())).build()
    }

    /// [`CompanyName`].
    pub(crate) fn company_name() -> Object {
        let (min, max) = (CompanyName::MIN_CHARS, CompanyName::MAX_CHARS);
        example(
            bounded(format!("{min}-{max} characters."), min, max),
            "NewCo Ltd",
        )
    }

    /// [`Region`].
    pub(crate) fn region() -> Object {
        let names: Vec<String> = Region::ALL.iter().map(|r| format!("`{r}`")).collect();
        example(
            text(format!("One of {}.", names.join(", "))),
            Region::UsEast1.as_str(),
        )
    }

    /// [`Email`](portal_domain::model::Email).
    pub(crate) fn email() -> Object {
        example(
            text("Contact e-mail.".into())
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email))),
            "new@newco.example",
        )
    }

    /// [`ClientId`].
    pub(crate) fn client_id() -> Object {
        let (min, max) = (ClientId::MIN_CHARS, ClientId::MAX_CHARS);
        bounded(
            format!("Genesys OAuth client ID: {min}-{max} visible characters."),
            min,
            max,
        )
        .build()
    }

    /// [`ClientSecret`].
    pub(crate) fn client_secret() -> Object {
        let (min, max) = (ClientSecret::MIN_CHARS, ClientSecret::MAX_CHARS);
        secret(
            format!("Genesys OAuth client secret: {min}-{max} visible characters. Never echoed."),
            min,
            max,
        )
        .build()
    }

    /// [`PhoneNumberId`].
    pub(crate) fn phone_number_id() -> Object {
        let (min, max) = (PhoneNumberId::MIN_CHARS, PhoneNumberId::MAX_CHARS);
        example(
            bounded(
                format!("Meta phone number ID: {min}-{max} digits."),
                min,
                max,
            )
            .pattern(Some(PhoneNumberId::PATTERN)),
            "1234567890",
        )
    }

    /// [`SystemUserToken`].
    pub(crate) fn system_user_token() -> Object {
        let (min, max) = (SystemUserToken::MIN_CHARS, SystemUserToken::MAX_CHARS);
        secret(
            format!("Meta system-user token: {min}-{max} visible characters. Never echoed."),
            min,
            max,
        )
        .build()
    }

    /// A conversation ID.
    pub(crate) fn conversation_id() -> Object {
        text("The conversation (UUID).".into())
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .build()
    }

    /// [`MessageText`].
    pub(crate) fn message_text() -> Object {
        let max = MessageText::MAX_CHARS;
        bounded(format!("The message, 1-{max} characters."), 1, max).build()
    }
}
