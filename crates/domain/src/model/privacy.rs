//! Personal data shown by role (spec 004: sensitive fields are stripped by role).
//!
//! The one rule: a customer's phone number (their WhatsApp ID, `wa_id`) is shown whole to
//! admins and agents, who talk to customers, and masked to viewers, who only watch figures and
//! traffic. Every output that carries a customer number (history, messages, live events)
//! passes it through [`customer_number_for`] with the reader's role, once, where that output is
//! built.

use super::Role;
use std::borrow::Cow;

/// What replaces the hidden middle of a masked number (always three, whatever the length, so
/// the mask does not tell the number's length).
const MASK: &str = "•••";

impl Role {
    /// Whether this role sees customers' phone numbers whole.
    pub fn sees_customer_numbers(self) -> bool {
        match self {
            Role::Admin | Role::Agent => true,
            Role::Viewer => false,
        }
    }
}

/// A customer's number as `role` may see it: whole, or [`mask_customer_number`]ed.
pub fn customer_number_for(role: Role, wa_id: &str) -> Cow<'_, str> {
    if role.sees_customer_numbers() {
        Cow::Borrowed(wa_id)
    } else {
        Cow::Owned(mask_customer_number(wa_id))
    }
}

/// `15551234829` → `1555•••829`: the country and area prefix and the last three digits stay,
/// enough to tell customers apart on screen, not enough to call one. Numbers under 8
/// characters keep only their last two; under 3, nothing.
pub fn mask_customer_number(wa_id: &str) -> String {
    let chars: Vec<char> = wa_id.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        8.. => (4, 3),
        3..=7 => (0, 2),
        _ => (0, 0),
    };
    let mut out = String::with_capacity(head + MASK.len() + tail);
    out.extend(&chars[..head]);
    out.push_str(MASK);
    out.extend(&chars[n - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_see_a_masked_number_admins_and_agents_the_whole_one() {
        assert_eq!(
            customer_number_for(Role::Viewer, "15551234829"),
            "1555•••829"
        );
        assert_eq!(
            customer_number_for(Role::Agent, "15551234829"),
            "15551234829"
        );
        assert_eq!(
            customer_number_for(Role::Admin, "15551234829"),
            "15551234829"
        );
    }

    #[test]
    fn the_mask_hides_the_length_and_never_shows_a_short_number_whole() {
        assert_eq!(mask_customer_number("447700900123"), "4477•••123");
        assert_eq!(mask_customer_number("12345678"), "1234•••678");
        assert_eq!(mask_customer_number("1234567"), "•••67");
        assert_eq!(mask_customer_number("123"), "•••23");
        assert_eq!(mask_customer_number("12"), "•••");
        assert_eq!(mask_customer_number(""), "•••");
    }
}
