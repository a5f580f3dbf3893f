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
///
/// Each schema states its rule exactly where JSON Schema can (lengths, patterns built from the
/// domain's character classes, enumerations), so a value the schema allows is one the
/// newtype accepts and the other way round; the one rule a schema cannot state (a media URL's
/// public host) is in its description.
pub(crate) mod schema {
    use portal_domain::model::{CONTROL, Email, Region, UUID_GROUPS, WHITE_SPACE};
    use portal_domain::onboarding::{
        ClientId, ClientSecret, CompanyName, PhoneNumberId, SystemUserToken,
    };
    use portal_domain::widget::{MediaUrl, MessageText};
    use utoipa::openapi::schema::{
        KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type,
    };

    /// The ranges as the inside of a regular-expression character class (`\uXXXX` escapes:
    /// ECMA-262, Python's and Rust's regular expressions read them alike).
    fn ranges(list: &[(char, char)]) -> String {
        let hex = |c: char| format!("\\u{:04X}", c as u32);
        list.iter()
            .map(|(lo, hi)| {
                if lo == hi {
                    hex(*lo)
                } else {
                    format!("{}-{}", hex(*lo), hex(*hi))
                }
            })
            .collect()
    }

    /// A character that is neither white space nor a control character.
    fn visible_unicode() -> String {
        format!("[^{}{}]", ranges(&WHITE_SPACE), ranges(&CONTROL))
    }

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

    /// `min..=max` visible ASCII characters (the credentials' rule).
    fn visible_ascii(description: String, min: usize, max: usize) -> ObjectBuilder {
        bounded(description, min, max).pattern(Some(format!("^[\\u0021-\\u007E]{{{min},{max}}}$")))
    }

    fn secret(description: String, min: usize, max: usize) -> ObjectBuilder {
        visible_ascii(description, min, max)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
    }

    #[allow(deprecated)] // `example`: the document's other examples use it too
    fn example(b: ObjectBuilder, value: &str) -> Object {
        b.example(Some(value.into())).build()
    }

    /// [`CompanyName`]: after trimming white space, `MIN..=MAX` characters, none a control
    /// character.
    pub(crate) fn company_name() -> Object {
        let (min, max) = (CompanyName::MIN_CHARS, CompanyName::MAX_CHARS);
        let ws = format!("[{}]", ranges(&WHITE_SPACE));
        let inner = format!("[^{}]", ranges(&CONTROL));
        let edge = visible_unicode();
        let pattern = format!(
            "^{ws}*{edge}{inner}{{0,{middle}}}{edge}{ws}*$",
            middle = max - 2
        );
        example(
            text(format!(
                "{min}-{max} characters once leading and trailing white space is trimmed (it \
                 is), no control characters."
            ))
            .min_length(Some(min))
            .pattern(Some(pattern)),
            "NewCo Ltd",
        )
    }

    /// [`Region`].
    pub(crate) fn region() -> Object {
        let names: Vec<&str> = Region::ALL.iter().map(|r| r.as_str()).collect();
        example(
            text("The Genesys Cloud region.".into()).enum_values(Some(names)),
            Region::UsEast1.as_str(),
        )
    }

    /// [`Email`]: one `@`, a local part of 1-64 characters, a domain of two or more non-empty
    /// labels, no white space or control characters, at most 254 characters.
    pub(crate) fn email() -> Object {
        let no = format!("{}{}", ranges(&WHITE_SPACE), ranges(&CONTROL));
        let pattern = format!(
            "^[^@{no}]{{1,{local}}}@[^@.{no}]+(\\.[^@.{no}]+)+$",
            local = Email::MAX_LOCAL_CHARS
        );
        example(
            text("Contact e-mail.".into())
                .max_length(Some(Email::MAX_CHARS))
                .pattern(Some(pattern)),
            "new@newco.example",
        )
    }

    /// [`ClientId`].
    pub(crate) fn client_id() -> Object {
        let (min, max) = (ClientId::MIN_CHARS, ClientId::MAX_CHARS);
        visible_ascii(
            format!("Genesys OAuth client ID: {min}-{max} visible ASCII characters."),
            min,
            max,
        )
        .build()
    }

    /// [`ClientSecret`].
    pub(crate) fn client_secret() -> Object {
        let (min, max) = (ClientSecret::MIN_CHARS, ClientSecret::MAX_CHARS);
        secret(
            format!(
                "Genesys OAuth client secret: {min}-{max} visible ASCII characters. Never echoed."
            ),
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
            format!("Meta system-user token: {min}-{max} visible ASCII characters. Never echoed."),
            min,
            max,
        )
        .build()
    }

    /// The canonical spelling of a UUID ([`UUID_GROUPS`]) as a pattern.
    pub(crate) fn uuid_pattern() -> String {
        let groups: Vec<String> = UUID_GROUPS
            .iter()
            .map(|n| format!("[0-9A-Fa-f]{{{n}}}"))
            .collect();
        format!("^{}$", groups.join("-"))
    }

    /// A UUID in its canonical form (the only one the IDs accept).
    pub(crate) fn uuid(description: &str) -> Object {
        text(description.into())
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .build()
    }

    /// A conversation ID.
    pub(crate) fn conversation_id() -> Object {
        uuid("The conversation (UUID, 8-4-4-4-12 hexadecimal digits).")
    }

    /// [`MessageText`]: `1..=MAX` characters, not only white space.
    pub(crate) fn message_text() -> Object {
        let max = MessageText::MAX_CHARS;
        bounded(
            format!("The message: 1-{max} characters, not only white space."),
            1,
            max,
        )
        .pattern(Some(format!("[^{}]", ranges(&WHITE_SPACE))))
        .build()
    }

    /// [`MediaUrl`].
    pub(crate) fn media_url() -> Object {
        let prefix: String = MediaUrl::PREFIX
            .chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_uppercase(), c)
                } else {
                    c.to_string()
                }
            })
            .collect();
        example(
            text(format!(
                "Optional attachment (null is none): an `https://` URL of at most {} characters, written \
                 without white space or control characters, with no user name or password, \
                 to a public host: a domain name (not `localhost` or under {}) or a \
                 globally reachable IP address (no loopback, private, CGNAT, link-local, \
                 unique-local, documentation, multicast or reserved range).",
                MediaUrl::MAX_CHARS,
                MediaUrl::PRIVATE_DOMAINS
                    .iter()
                    .map(|d| format!("`.{d}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .max_length(Some(MediaUrl::MAX_CHARS))
            .pattern(Some(format!("^{prefix}{}*$", visible_unicode()))),
            "https://cdn.example.com/image.jpg",
        )
    }
}
