//! Sizes as users write them: Redis Enterprise memory sizes (`100MB`, `0.5GB`, powers of 1024) and Kubernetes
//! quantities (`4Gi`, `4000m`, `2`, `1e3`).

/// Parses a Redis Enterprise memory size into bytes. Units are powers of 1024, as the cluster uses them
/// (`1GB` = 1073741824 bytes).
pub fn parse_memory_size(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit {
        "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    bytes_of(number, multiplier)
}

/// Formats bytes the way memory sizes are written, with the largest unit that keeps an integer.
pub fn format_memory_size(bytes: u64) -> String {
    for (unit, size) in [("TB", 1u64 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// A quantity's value, which may be infinite when its exponent or suffix overflows.
fn parse_quantity_unbounded(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number == "+" || number == "-" || number.matches('.').count() > 1 {
        return None;
    }
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.contains(['+', '-']) {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().ok()?;
            10f64.powi(power)
        }
        _ => return None,
    };
    Some(value * multiplier)
}

/// Parses a Kubernetes quantity into its value (bytes for memory, cores for CPU). `None` if it is not a quantity
/// or its value is not finite (`1e400`).
pub fn parse_quantity(text: &str) -> Option<f64> {
    parse_quantity_unbounded(text).filter(|value| value.is_finite())
}

/// The largest value of any quantity accepted: what a Kubernetes quantity can carry as an int64 (about 9.2e18).
pub const MAX_QUANTITY: f64 = 9.223_372_036_854_775e18;

/// Why a quantity is refused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QuantityError {
    /// Not the syntax of a Kubernetes quantity.
    Syntax,
    /// Negative.
    Negative,
    /// Well-formed but beyond the maximum (or infinite, as `1e400` is).
    TooLarge,
}

/// Parses a quantity and checks it lies in `0..=maximum`.
pub fn parse_bounded_quantity(text: &str, maximum: f64) -> Result<f64, QuantityError> {
    let value = parse_quantity_unbounded(text).ok_or(QuantityError::Syntax)?;
    if value.is_nan() {
        Err(QuantityError::Syntax)
    } else if value < 0.0 {
        Err(QuantityError::Negative)
    } else if value > maximum {
        Err(QuantityError::TooLarge)
    } else {
        Ok(value)
    }
}

/// Formats bytes as a Kubernetes quantity with a binary suffix when exact (`20Gi`), else in bytes.
pub fn format_binary_quantity(bytes: u64) -> String {
    for (suffix, size) in [("Ti", 1u64 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{suffix}", bytes / size);
        }
    }
    bytes.to_string()
}

fn bytes_of(number: &str, multiplier: u64) -> Option<u64> {
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    match number.split_once('.') {
        None => number.parse::<u64>().ok()?.checked_mul(multiplier),
        Some((whole, fraction)) => {
            let whole = whole.parse::<u64>().ok()?.checked_mul(multiplier)?;
            let scale = 10u64.checked_pow(u32::try_from(fraction.len()).ok()?)?;
            let fraction = u128::from(fraction.parse::<u64>().ok()?) * u128::from(multiplier) / u128::from(scale);
            whole.checked_add(u64::try_from(fraction).ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_use_powers_of_1024() {
        assert_eq!(parse_memory_size("100MB"), Some(104_857_600));
        assert_eq!(parse_memory_size("1GB"), Some(1_073_741_824));
        assert_eq!(parse_memory_size("0.5GB"), Some(536_870_912));
        assert_eq!(parse_memory_size("0.1GB"), Some(107_374_182));
        for bad in [
            "",
            "MB",
            "1.GB",
            ".5GB",
            "1 GB",
            "1gb",
            "1GiB",
            "-1MB",
            "1.2.3MB",
            "99999999999999999999TB",
        ] {
            assert_eq!(parse_memory_size(bad), None, "{bad}");
        }
        assert_eq!(format_memory_size(536_870_912), "512MB");
        assert_eq!(format_memory_size(1_073_741_824), "1GB");
    }

    #[test]
    fn kubernetes_quantities() {
        assert_eq!(parse_quantity("4Gi"), Some(4.0 * 1024f64.powi(3)));
        assert_eq!(parse_quantity("4000m"), Some(4.0));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("0.5"), Some(0.5));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        for bad in ["", "Gi", "4 Gi", "4GB", "four", "1..2", "+"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
        assert_eq!(format_binary_quantity(20 * (1 << 30)), "20Gi");
        assert_eq!(parse_quantity("1e400"), None);
        assert_eq!(parse_quantity("1e308Ei"), None);
    }

    #[test]
    fn bounded_quantities_tell_too_large_from_malformed() {
        assert_eq!(parse_bounded_quantity("20Gi", MAX_QUANTITY), Ok(20.0 * 1024f64.powi(3)));
        assert_eq!(
            parse_bounded_quantity("1e400", MAX_QUANTITY),
            Err(QuantityError::TooLarge)
        );
        assert_eq!(
            parse_bounded_quantity("1e19", MAX_QUANTITY),
            Err(QuantityError::TooLarge)
        );
        assert_eq!(
            parse_bounded_quantity("2Pi", 1024f64.powi(5)),
            Err(QuantityError::TooLarge)
        );
        assert_eq!(
            parse_bounded_quantity("-1Gi", MAX_QUANTITY),
            Err(QuantityError::Negative)
        );
        assert_eq!(parse_bounded_quantity("4GB", MAX_QUANTITY), Err(QuantityError::Syntax));
        assert_eq!(parse_bounded_quantity("1e", MAX_QUANTITY), Err(QuantityError::Syntax));
        assert_eq!(
            parse_bounded_quantity("-1e400", MAX_QUANTITY),
            Err(QuantityError::Negative)
        );
    }
}
