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

/// The ratios `a[i] / b[i]` of the repetitions where both ran and `b[i] > 0` (a ratio per
/// repetition pair, so that a slow moment of the machine hits both sides of each ratio).
pub fn pair_ratios(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *y > 0.0 && x.is_finite() => Some(x / y),
            _ => None,
        })
        .collect()
}

/// The confidence level asked of [`median_interval`] in the tables.
pub const CONFIDENCE: f64 = 0.90;

/// A confidence interval for the median of the distribution `v` was drawn from, whatever that
/// distribution (the sign test's interval): the k-th smallest and the k-th largest value, for
/// the largest k whose interval still covers the median with probability ≥ `level`, which is
/// 1 − 2·P(Binomial(n, ½) < k). Returns `(low, high, coverage)`; `None` when even the whole
/// range falls short of `level` (fewer than 5 values for 90%).
pub fn median_interval(v: &[f64], level: f64) -> Option<(f64, f64, f64)> {
    let n = v.len();
    // (Past about 1,000 values ½ⁿ below underflows; no run repeats a cell that often.)
    if n == 0 || n > 1000 {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    // P(Binomial(n, 1/2) = j), j = 0.., accumulated: below[k] = P(B < k).
    let half_n = 0.5f64.powi(n as i32);
    let mut below = 0.0;
    let mut choose = 1.0; // C(n, j)
    let mut best = None;
    for k in 1..=n.div_ceil(2) {
        below += choose * half_n; // P(B < k) = P(B <= k - 1)
        choose = choose * (n - (k - 1)) as f64 / k as f64;
        let coverage = 1.0 - 2.0 * below;
        if coverage < level {
            break;
        }
        best = Some((s[k - 1], s[n - k], coverage));
    }
    best
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
        assert_eq!(pair_ratios(&a, &b), [2.0, 2.0, 2.0]);
        // A repetition that one side did not run is left out.
        assert_eq!(pair_ratios(&[Some(3.0), None], &[Some(1.0), Some(1.0)]), [3.0]);
        assert_eq!(pair_ratios(&[Some(3.0)], &[Some(0.0)]), []);
    }

    #[test]
    fn median_intervals_are_distribution_free_order_statistics() {
        // 7 values: [2nd, 6th] covers 1 - 2·8/128 = 87.5% < 90%, so the whole range (98.4%).
        let v = [1.05, 0.9, 1.3, 1.1, 1.0, 1.2, 0.95];
        let (lo, hi, c) = median_interval(&v, 0.90).unwrap();
        assert_eq!((lo, hi), (0.9, 1.3));
        assert!((c - (1.0 - 2.0 / 128.0)).abs() < 1e-12);
        // 9 values: [2nd, 8th] covers 1 - 2·10/512 = 96.1%; [3rd, 7th] 82% is too little.
        let v: Vec<f64> = (1..=9).map(f64::from).collect();
        let (lo, hi, c) = median_interval(&v, 0.90).unwrap();
        assert_eq!((lo, hi), (2.0, 8.0));
        assert!((c - (1.0 - 20.0 / 512.0)).abs() < 1e-12);
        // 15 values: [4th, 12th], 96.5%.
        let v: Vec<f64> = (1..=15).map(f64::from).collect();
        assert_eq!(median_interval(&v, 0.90).map(|(l, h, _)| (l, h)), Some((4.0, 12.0)));
        // 8 values: [2nd, 7th] covers 1 - 2·9/256 = 93.0%.
        let v: Vec<f64> = (1..=8).map(f64::from).collect();
        assert_eq!(median_interval(&v, 0.90).map(|(l, h, _)| (l, h)), Some((2.0, 7.0)));
        // 6 values: [2nd, 5th] covers 78%: the range (96.9%).
        let v: Vec<f64> = (1..=6).map(f64::from).collect();
        assert_eq!(median_interval(&v, 0.90).map(|(l, h, _)| (l, h)), Some((1.0, 6.0)));
        // 4 values: even the range covers only 87.5%.
        assert_eq!(median_interval(&[1.0, 2.0, 3.0, 4.0], 0.90), None);
        assert_eq!(median_interval(&[], 0.90), None);
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
