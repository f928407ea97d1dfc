//! One attempt to deliver a notification, as the delivery log keeps it.

use serde::{Deserialize, Serialize};

/// What started a delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Trigger {
    /// The retry schedule (the first attempt included).
    #[default]
    Scheduled,
    /// A client app asked for it again.
    Manual,
    /// An operator recovered a client app's notifications.
    Recover,
}

/// The most of an error the log keeps, in bytes.
pub const ERROR_MAX_BYTES: usize = 512;

/// `error` cut to [`ERROR_MAX_BYTES`] at a character boundary.
pub fn clipped(error: &str) -> &str {
    if error.len() <= ERROR_MAX_BYTES {
        return error;
    }
    let mut end = ERROR_MAX_BYTES;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_reads_and_prints_in_lower_case() {
        for trigger in [Trigger::Scheduled, Trigger::Manual, Trigger::Recover] {
            let text = trigger.to_string();
            assert_eq!(text.parse::<Trigger>().unwrap(), trigger);
            assert_eq!(
                serde_json::to_string(&trigger).unwrap(),
                format!("\"{text}\"")
            );
        }
        assert_eq!(<&str>::from(Trigger::Recover), "recover");
        assert!("Manual!".parse::<Trigger>().is_err());
    }

    #[test]
    fn an_error_is_clipped_to_512_bytes_whole_characters() {
        assert_eq!(clipped("short"), "short");
        let long = "é".repeat(400); // 800 bytes
        let cut = clipped(&long);
        assert!(cut.len() <= ERROR_MAX_BYTES && cut.len() >= ERROR_MAX_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
