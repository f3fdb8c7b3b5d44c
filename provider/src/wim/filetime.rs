//! Windows FILETIMEs (WIM-FORMAT.md: 100-nanosecond units since
//! 1601-01-01 UTC) to and from Unix times.

/// The FILETIME of 1970-01-01 00:00:00 UTC.
pub const UNIX_EPOCH_FILETIME: i64 = 116_444_736_000_000_000;

/// A FILETIME as Unix seconds (negative before 1970) and nanoseconds.
pub fn to_unix(ft: u64) -> (i64, u32) {
    let t = i64::try_from(ft).unwrap_or(i64::MAX) - UNIX_EPOCH_FILETIME;
    (
        t.div_euclid(10_000_000),
        u32::try_from(t.rem_euclid(10_000_000) * 100).unwrap_or(0),
    )
}

/// A Unix time as a FILETIME; a time before 1601 is 0.
pub fn from_unix(secs: i64, nanos: u32) -> u64 {
    let v =
        i128::from(secs) * 10_000_000 + i128::from(nanos / 100) + i128::from(UNIX_EPOCH_FILETIME);
    u64::try_from(v.max(0)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_edges() {
        assert_eq!(
            to_unix(UNIX_EPOCH_FILETIME as u64 + 15_000_000),
            (1, 500_000_000)
        );
        assert_eq!(to_unix(0), (-11_644_473_600, 0));
        assert_eq!(
            from_unix(1, 500_000_000),
            UNIX_EPOCH_FILETIME as u64 + 15_000_000
        );
        assert_eq!(from_unix(-11_644_473_601, 0), 0);
        let ft = 133_000_000_123_456_700;
        let (s, n) = to_unix(ft);
        assert_eq!(from_unix(s, n), ft);
    }
}
