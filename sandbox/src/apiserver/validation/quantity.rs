//! Kubernetes quantities (`resource.Quantity`): parsing, the canonical form a real API server stores and
//! serves (`4000m` → `4`, `1024Mi` → `1Gi`, `0.5Gi` → `512Mi`), and where the sandbox applies it (resources of pod
//! templates and pods, claim templates and PersistentVolumeClaims).

use serde_json::Value;

use crate::apiserver::resources::ResourceInfo;

/// The regular expression kube-apiserver names when a quantity does not parse.
const QUANTITY_PATTERN: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// How a quantity is written, which its canonical form keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Powers of 1024 (`Ki` … `Ei`).
    BinarySI,
    /// Powers of 1000 (`n` … `E`) or none.
    DecimalSI,
    /// `e<exponent>`.
    DecimalExponent,
}

/// A parsed quantity: its value in billionths (exact for every suffix) and its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    /// Parses a quantity; values finer than a billionth are rounded up, as Kubernetes does.
    pub fn parse(text: &str) -> Option<Quantity> {
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let (negative, digits) = match number.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, number.strip_prefix('+').unwrap_or(number)),
        };
        if digits.is_empty() || digits.contains(['+', '-']) || digits.matches('.').count() > 1 || digits == "." {
            return None;
        }
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let (format, multiplier, decimal_exponent): (Format, i128, i32) = match suffix {
            "" => (Format::DecimalSI, 1, 0),
            "n" => (Format::DecimalSI, 1, -9),
            "u" => (Format::DecimalSI, 1, -6),
            "m" => (Format::DecimalSI, 1, -3),
            "k" => (Format::DecimalSI, 1, 3),
            "M" => (Format::DecimalSI, 1, 6),
            "G" => (Format::DecimalSI, 1, 9),
            "T" => (Format::DecimalSI, 1, 12),
            "P" => (Format::DecimalSI, 1, 15),
            "E" => (Format::DecimalSI, 1, 18),
            "Ki" => (Format::BinarySI, 1 << 10, 0),
            "Mi" => (Format::BinarySI, 1 << 20, 0),
            "Gi" => (Format::BinarySI, 1 << 30, 0),
            "Ti" => (Format::BinarySI, 1 << 40, 0),
            "Pi" => (Format::BinarySI, 1 << 50, 0),
            "Ei" => (Format::BinarySI, 1 << 60, 0),
            exponent if exponent.starts_with(['e', 'E']) => {
                let power: i32 = exponent[1..].parse().ok()?;
                (Format::DecimalExponent, 1, power)
            }
            _ => return None,
        };
        // value = (whole.fraction) * multiplier * 10^decimal_exponent, in billionths.
        let mut mantissa: i128 = 0;
        for c in whole.chars().chain(fraction.chars()) {
            mantissa = mantissa.checked_mul(10)?.checked_add(i128::from(c.to_digit(10)?))?;
        }
        let mut scale = decimal_exponent + 9 - i32::try_from(fraction.len()).ok()?;
        mantissa = mantissa.checked_mul(multiplier)?;
        while scale > 0 {
            mantissa = mantissa.checked_mul(10)?;
            scale -= 1;
        }
        while scale < 0 {
            let rounded_up = mantissa % 10 != 0;
            mantissa = mantissa / 10 + i128::from(rounded_up);
            scale += 1;
        }
        Some(Quantity {
            nanos: if negative { -mantissa } else { mantissa },
            format,
        })
    }

    /// The value in billionths of the unit.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The canonical text, as `Quantity.String()` prints it.
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.abs();
        let mut format = self.format;
        if format == Format::BinarySI && (magnitude < 1024 * NANO || magnitude % NANO != 0) {
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            let mut value = magnitude / NANO;
            let mut power = 0;
            while power < 6 && value % 1024 == 0 {
                value /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return format!("{sign}{value}{suffix}");
        }
        let mut value = magnitude;
        let mut exponent = -9;
        while exponent < 18 && value % 1000 == 0 {
            value /= 1000;
            exponent += 3;
        }
        if format == Format::DecimalExponent {
            return if exponent == 0 {
                format!("{sign}{value}")
            } else {
                format!("{sign}{value}e{exponent}")
            };
        }
        let suffix = match exponent {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            _ => "E",
        };
        format!("{sign}{value}{suffix}")
    }
}

/// Canonicalises one map of quantities (requests, limits, capacity) in place; a value that is not a quantity is
/// refused the way the real decoder refuses it.
fn canonicalize_map(map: Option<&mut Value>) -> Result<(), String> {
    let Some(map) = map.and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for value in map.values_mut() {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        match Quantity::parse(&text) {
            Some(quantity) => *value = Value::String(quantity.canonical()),
            None => {
                return Err(format!(
                    "quantities must match the regular expression '{QUANTITY_PATTERN}'"
                ));
            }
        }
    }
    Ok(())
}

fn canonicalize_pod_spec(spec: Option<&mut Value>) -> Result<(), String> {
    let Some(spec) = spec else {
        return Ok(());
    };
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for container in containers {
                if let Some(resources) = container.get_mut("resources") {
                    canonicalize_map(resources.get_mut("requests"))?;
                    canonicalize_map(resources.get_mut("limits"))?;
                }
            }
        }
    }
    if let Some(overhead) = spec.get_mut("overhead") {
        canonicalize_map(Some(overhead))?;
    }
    Ok(())
}

fn canonicalize_claim_spec(spec: Option<&mut Value>) -> Result<(), String> {
    let Some(resources) = spec.and_then(|s| s.get_mut("resources")) else {
        return Ok(());
    };
    canonicalize_map(resources.get_mut("requests"))?;
    canonicalize_map(resources.get_mut("limits"))
}

/// Puts every quantity the sandbox knows of in a built-in object into canonical form.
pub fn canonicalize_object(info: &ResourceInfo, object: &mut Value) -> Result<(), String> {
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "pods") => canonicalize_pod_spec(object.get_mut("spec")),
        ("apps", "statefulsets" | "deployments" | "daemonsets" | "replicasets") | ("batch", "jobs") => {
            canonicalize_pod_spec(object.pointer_mut("/spec/template/spec"))?;
            if let Some(templates) = object
                .pointer_mut("/spec/volumeClaimTemplates")
                .and_then(Value::as_array_mut)
            {
                for template in templates {
                    canonicalize_claim_spec(template.get_mut("spec"))?;
                }
            }
            Ok(())
        }
        ("", "persistentvolumeclaims") => {
            canonicalize_claim_spec(object.get_mut("spec"))?;
            canonicalize_map(object.pointer_mut("/status/capacity"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        Quantity::parse(text)
            .map(|q| q.canonical())
            .unwrap_or_else(|| "invalid".into())
    }

    #[test]
    fn canonical_forms_as_kubernetes_prints_them() {
        for (input, expected) in [
            ("4000m", "4"),
            ("4", "4"),
            ("1500m", "1500m"),
            ("0.5", "500m"),
            ("1024Mi", "1Gi"),
            ("20Gi", "20Gi"),
            ("0.5Gi", "512Mi"),
            ("1.5Ki", "1536"),
            ("512Ki", "512Ki"),
            ("1000k", "1M"),
            ("1e3", "1e3"),
            ("1000", "1k"),
            ("100M", "100M"),
            ("0", "0"),
            ("0.1Ki", "102400m"),
            ("-2Gi", "-2Gi"),
        ] {
            assert_eq!(canonical(input), expected, "{input}");
        }
        for bad in ["", "Gi", "1.2.3", "1GB", "abc", "--1"] {
            assert_eq!(canonical(bad), "invalid", "{bad}");
        }
    }
}
