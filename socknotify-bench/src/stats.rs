//! Medians, ranges, ratios per repetition pair, and number formatting.

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median, minimum and maximum of a set of repetitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn summary(v: &[f64]) -> Option<Summary> {
    if v.is_empty() {
        return None;
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(Summary { median: median(v), min, max })
}

/// The median over repetitions `i` of `a[i] / b[i]`, taking only the repetitions where both
/// ran and `b[i] > 0` (a ratio per repetition pair, so that a slow moment of the machine
/// hits both sides of each ratio).
pub fn ratio_of_pairs(a: &[Option<f64>], b: &[Option<f64>]) -> Option<f64> {
    let r: Vec<f64> = a
        .iter()
        .zip(b)
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *y > 0.0 && x.is_finite() => Some(x / y),
            _ => None,
        })
        .collect();
    (!r.is_empty()).then(|| median(&r))
}

/// The p-th percentile (0..=100) of sorted values (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How a figure is written in a table cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    /// Nanoseconds: whole numbers with thousands separators, one decimal under 100.
    Ns,
    /// Whole numbers with thousands separators.
    Int,
    /// Two decimals.
    F2,
    /// One decimal.
    F1,
}

impl Fmt {
    pub fn show(self, v: f64) -> String {
        if !v.is_finite() {
            return "-".into();
        }
        match self {
            Fmt::Ns if v.abs() < 100.0 => format!("{v:.1}"),
            Fmt::Ns | Fmt::Int => group(v.round() as i64),
            Fmt::F2 => format!("{v:.2}"),
            Fmt::F1 => format!("{v:.1}"),
        }
    }
}

/// 1234567 -> "1,234,567".
pub fn group(v: i64) -> String {
    let s = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        #[allow(clippy::manual_is_multiple_of)] // MSRV 1.80
        let third = (s.len() - i) % 3 == 0;
        if i > 0 && third {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(summary(&[5.0, 1.0, 9.0]), Some(Summary { median: 5.0, min: 1.0, max: 9.0 }));
        assert_eq!(summary(&[]), None);
    }

    #[test]
    fn ratios_are_taken_per_repetition_pair() {
        // Each repetition of `a` is twice its partner in `b`, although the medians of a and
        // b would give another ratio (median a = 20, median b = 5: 4x).
        let a = [Some(2.0), Some(20.0), Some(200.0)];
        let b = [Some(1.0), Some(10.0), Some(100.0)];
        assert_eq!(ratio_of_pairs(&a, &b), Some(2.0));
        // A repetition that one side did not run is left out.
        assert_eq!(ratio_of_pairs(&[Some(3.0), None], &[Some(1.0), Some(1.0)]), Some(3.0));
        assert_eq!(ratio_of_pairs(&[Some(3.0)], &[Some(0.0)]), None);
    }

    #[test]
    fn formats() {
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(-1000), "-1,000");
        assert_eq!(Fmt::Ns.show(12.34), "12.3");
        assert_eq!(Fmt::Ns.show(1234.4), "1,234");
        assert_eq!(Fmt::F2.show(f64::NAN), "-");
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), 2);
        assert_eq!(percentile(&[1, 2, 3, 4], 99.0), 4);
    }
}
