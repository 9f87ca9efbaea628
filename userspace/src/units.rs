//! The one size syntax every limit uses: a number with an optional binary suffix, K, M, G
//! or T (powers of 1024, either case), as vzctl writes them. Callers say what the bare
//! number means (bytes, 1 KiB blocks, pages) and whether fractions are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeError {
    /// Not a number (or a fraction where none is allowed).
    NotANumber,
    /// A suffix other than K, M, G, T (and whatever the caller adds).
    UnknownSuffix(char),
    /// Past what the caller's unit can hold.
    OutOfRange,
}

/// `"12G"` -> (`"12"`, Some('G')); `"12"` -> (`"12"`, None). The suffix is upper-cased.
pub fn split_suffix(s: &str) -> (&str, Option<char>) {
    let t = s.trim();
    match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], Some(c.to_ascii_uppercase())),
        _ => (t, None),
    }
}

/// K, M, G, T as powers of 1024.
pub fn binary_multiplier(suffix: char) -> Option<u64> {
    match suffix.to_ascii_uppercase() {
        'K' => Some(1 << 10),
        'M' => Some(1 << 20),
        'G' => Some(1 << 30),
        'T' => Some(1 << 40),
        _ => None,
    }
}

/// A whole number of `unit`-sized units from a size: a bare number is already in units,
/// a suffixed one is bytes (rounded down to whole units). `unit` is in bytes.
pub fn parse_units(s: &str, unit: u64) -> Result<u64, SizeError> {
    let (num, suffix) = split_suffix(s);
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SizeError::NotANumber);
    }
    let n: u64 = num.parse().map_err(|_| SizeError::OutOfRange)?;
    match suffix {
        None => Ok(n),
        Some(c) => {
            let mul = binary_multiplier(c).ok_or(SizeError::UnknownSuffix(c))?;
            n.checked_mul(mul).map(|b| b / unit.max(1)).ok_or(SizeError::OutOfRange)
        }
    }
}

/// As `parse_units`, with fractions ("2.2G", as OpenVZ writes disk sizes), rounded to the
/// nearest unit, at most `u64::MAX / 2`.
pub fn parse_units_fractional(s: &str, unit: u64) -> Result<u64, SizeError> {
    let (num, suffix) = split_suffix(s);
    let mul = match suffix {
        None => unit.max(1),
        Some(c) => binary_multiplier(c).ok_or(SizeError::UnknownSuffix(c))?,
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(SizeError::NotANumber);
    }
    let v: f64 = num.parse().map_err(|_| SizeError::NotANumber)?;
    let units = v * mul as f64 / unit.max(1) as f64;
    if !units.is_finite() || units > (u64::MAX / 2) as f64 {
        return Err(SizeError::OutOfRange);
    }
    Ok(units.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_numbers_are_units_and_suffixes_are_bytes() {
        assert_eq!(parse_units("7", 4096), Ok(7));
        assert_eq!(parse_units("1m", 4096), Ok(256));
        assert_eq!(parse_units(" 2G ", 1), Ok(2 << 30));
        assert_eq!(parse_units("1X", 1), Err(SizeError::UnknownSuffix('X')));
        assert_eq!(parse_units("1.5G", 1), Err(SizeError::NotANumber));
        assert_eq!(parse_units("-1", 1), Err(SizeError::NotANumber));
        assert_eq!(parse_units("16777216T", 1), Err(SizeError::OutOfRange));
    }

    #[test]
    fn fractions_round_to_the_nearest_unit() {
        assert_eq!(parse_units_fractional("2.5M", 1024), Ok(2560));
        assert_eq!(parse_units_fractional("10", 1024), Ok(10));
        assert_eq!(parse_units_fractional("1e3", 1024), Err(SizeError::NotANumber));
        assert_eq!(parse_units_fractional("99999999999T", 1024), Err(SizeError::OutOfRange));
    }
}
