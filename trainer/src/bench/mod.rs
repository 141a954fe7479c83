//! Benchmarks run from the CLI (`crosskd bench ...`): timings are medians over
//! repeated runs, reported beside what was measured so ratios can be taken
//! against a baseline measured in the same run.

pub mod loader;
pub mod train_step;

/// Median and 90th percentile of a set of durations in milliseconds.
pub fn median_p90(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let med = if n % 2 == 1 {
        samples[n / 2]
    } else {
        0.5 * (samples[n / 2 - 1] + samples[n / 2])
    };
    let p90 = samples[((n as f64 * 0.9).ceil() as usize).clamp(1, n) - 1];
    (med, p90)
}

#[cfg(test)]
mod tests {
    use super::median_p90;

    #[test]
    fn median_of_odd_and_even_sets() {
        assert_eq!(median_p90(&mut [3.0, 1.0, 2.0]).0, 2.0);
        assert_eq!(median_p90(&mut [4.0, 1.0, 3.0, 2.0]).0, 2.5);
        // 10 samples 1..=10: p90 is the 9th smallest.
        let mut v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert_eq!(median_p90(&mut v), (5.5, 9.0));
    }
}
