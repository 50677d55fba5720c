//! Status values, entry widths, and the rules for moving between statuses.
//!
//! A list stores raw values of 1, 2, 4 or 8 bits. The service only ever writes
//! the three values it gives a meaning to (VALID, INVALID, SUSPENDED), but a
//! decoder must accept anything that fits the width, so the raw form and the
//! typed form are separate.

use std::fmt;

/// A status the service knows how to set, with the values of the IETF draft's
/// registry (and the W3C `statusMessage` table this service publishes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 0x00: the credential is valid.
    Valid,
    /// 0x01: the credential is revoked. Final: no transition leaves it.
    Invalid,
    /// 0x02: the credential is temporarily suspended; it can return to VALID.
    Suspended,
    /// 0x03: application-specific meaning (IETF). Never set by the service.
    ApplicationSpecific,
}

impl Status {
    /// The raw value of this status in a list.
    pub const fn value(self) -> u8 {
        match self {
            Status::Valid => 0,
            Status::Invalid => 1,
            Status::Suspended => 2,
            Status::ApplicationSpecific => 3,
        }
    }

    /// The typed status of a raw value, if it has one of the known meanings.
    pub const fn from_value(value: u8) -> Option<Status> {
        match value {
            0 => Some(Status::Valid),
            1 => Some(Status::Invalid),
            2 => Some(Status::Suspended),
            3 => Some(Status::ApplicationSpecific),
            _ => None,
        }
    }

    /// The upper-case name used in `statusMessage` and in CLI output.
    pub const fn name(self) -> &'static str {
        match self {
            Status::Valid => "VALID",
            Status::Invalid => "INVALID",
            Status::Suspended => "SUSPENDED",
            Status::ApplicationSpecific => "APPLICATION_SPECIFIC",
        }
    }

    /// Decides whether this status may become `target`.
    ///
    /// INVALID is final; VALID and SUSPENDED move freely between each other and
    /// to INVALID. Nothing moves to or from the application-specific value
    /// through this service. Asking for the current status is a no-op, not an
    /// error, so repeated revocations are answered with the original time.
    ///
    /// # Errors
    /// [`TransitionError`] when the move is not allowed.
    pub fn transition_to(self, target: Status) -> Result<Transition, TransitionError> {
        use Status::*;
        match (self, target) {
            (from, to) if from == to => Ok(Transition::Unchanged),
            (Valid, Invalid | Suspended) | (Suspended, Valid | Invalid) => Ok(Transition::Changed),
            (from, to) => Err(TransitionError { from, to }),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of an allowed transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The status changes; the list's version must be bumped.
    Changed,
    /// The entry already has the target status; nothing is written.
    Unchanged,
}

/// A transition the rules forbid (INVALID is final; application-specific values
/// are never touched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status {from} cannot become {to}")]
pub struct TransitionError {
    /// The entry's current status.
    pub from: Status,
    /// The status that was asked for.
    pub to: Status,
}

/// Bits per entry: 1, 2, 4 or 8, the widths both standards allow. Because each
/// divides 8, an entry never straddles a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bits {
    /// One bit per entry: VALID or INVALID only.
    One,
    /// Two bits per entry: room for SUSPENDED (the service's default).
    Two,
    /// Four bits per entry.
    Four,
    /// Eight bits per entry.
    Eight,
}

impl Bits {
    /// Every width, smallest first.
    pub const ALL: [Bits; 4] = [Bits::One, Bits::Two, Bits::Four, Bits::Eight];

    /// The width in bits.
    pub const fn get(self) -> u8 {
        match self {
            Bits::One => 1,
            Bits::Two => 2,
            Bits::Four => 4,
            Bits::Eight => 8,
        }
    }

    /// The largest raw value an entry of this width holds.
    pub const fn max_value(self) -> u8 {
        match self {
            Bits::Eight => u8::MAX,
            other => (1u8 << other.get()) - 1,
        }
    }

    /// Whether `value` fits in an entry of this width.
    pub const fn fits(self, value: u8) -> bool {
        value <= self.max_value()
    }

    /// Entries per byte.
    pub const fn per_byte(self) -> usize {
        8 / self.get() as usize
    }
}

impl TryFrom<u8> for Bits {
    type Error = BitsError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            1 => Ok(Bits::One),
            2 => Ok(Bits::Two),
            4 => Ok(Bits::Four),
            8 => Ok(Bits::Eight),
            other => Err(BitsError(u64::from(other))),
        }
    }
}

impl TryFrom<u64> for Bits {
    type Error = BitsError;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        u8::try_from(value)
            .map_err(|_| BitsError(value))
            .and_then(Bits::try_from)
    }
}

impl fmt::Display for Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl serde::Serialize for Bits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.get())
    }
}

impl<'de> serde::Deserialize<'de> for Bits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = u64::deserialize(d)?;
        Bits::try_from(raw).map_err(serde::de::Error::custom)
    }
}

/// A width other than 1, 2, 4 or 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bits per entry must be 1, 2, 4 or 8, not {0}")]
pub struct BitsError(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_the_ietf_registry() {
        for (status, value) in [
            (Status::Valid, 0),
            (Status::Invalid, 1),
            (Status::Suspended, 2),
            (Status::ApplicationSpecific, 3),
        ] {
            assert_eq!(status.value(), value);
            assert_eq!(Status::from_value(value), Some(status));
        }
        assert_eq!(Status::from_value(4), None);
    }

    #[test]
    fn invalid_is_final_and_suspension_is_reversible() {
        use Status::*;
        assert_eq!(Valid.transition_to(Invalid), Ok(Transition::Changed));
        assert_eq!(Valid.transition_to(Suspended), Ok(Transition::Changed));
        assert_eq!(Suspended.transition_to(Valid), Ok(Transition::Changed));
        assert_eq!(Suspended.transition_to(Invalid), Ok(Transition::Changed));
        assert_eq!(Invalid.transition_to(Invalid), Ok(Transition::Unchanged));
        assert_eq!(Valid.transition_to(Valid), Ok(Transition::Unchanged));
        for to in [Valid, Suspended, ApplicationSpecific] {
            assert_eq!(
                Invalid.transition_to(to),
                Err(TransitionError { from: Invalid, to })
            );
        }
        assert!(Valid.transition_to(ApplicationSpecific).is_err());
        assert!(ApplicationSpecific.transition_to(Valid).is_err());
    }

    #[test]
    fn widths_and_fitting_values() {
        assert_eq!(Bits::try_from(3u8), Err(BitsError(3)));
        assert_eq!(Bits::try_from(0u8), Err(BitsError(0)));
        assert_eq!(Bits::try_from(300u64), Err(BitsError(300)));
        assert!(Bits::One.fits(1) && !Bits::One.fits(2));
        assert!(Bits::Two.fits(3) && !Bits::Two.fits(4));
        assert!(Bits::Four.fits(15) && !Bits::Four.fits(16));
        assert!(Bits::Eight.fits(255));
        assert_eq!(Bits::Two.per_byte(), 4);
    }
}
