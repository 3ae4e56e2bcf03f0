//! The partition reference counter as a PD can read it: a free-running cycle counter (the TSC)
//! calibrated against the host's time samples.
//!
//! A PD cannot read the reference-count register itself (it is a model-specific register, for
//! the kernel only), but it can read the TSC. Each time sample says what the reference counter
//! was (service 4.0) or what the host's time was (older services) when the host took it; two
//! samples and the TSC readings at their arrival give the TSC's rate in counter units (100 ns),
//! and from then on the counter is the last sample's value plus the cycles since, converted.
//!
//! Accuracy: the rate is measured over the interval between two samples (Hyper-V sends one
//! every 5 s), so with samples seconds apart a delivery jitter of tens of microseconds makes a
//! rate error of about 10 ppm; the reading's error is that times the time since the last
//! sample, plus, before service 4.0, the last sample's own delivery delay.

/// Counter estimate from cycle readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleCounter {
    /// (cycles, counter) at the last sample.
    last: Option<(u64, u64)>,
    /// (cycles, counter units) between the last two samples.
    rate: Option<(u64, u64)>,
}

impl CycleCounter {
    /// A counter with no sample yet.
    pub const fn new() -> CycleCounter {
        CycleCounter {
            last: None,
            rate: None,
        }
    }

    /// A sample arrived when the cycle counter read `cycles`, saying the reference counter was
    /// `counter` (100 ns units). A sample that goes backwards in either (a host that resets its
    /// time, a hostile one) drops the rate until two good samples measure it again.
    pub fn on_sample(&mut self, cycles: u64, counter: u64) {
        self.rate = match self.last {
            Some((c0, r0)) if cycles > c0 && counter > r0 => Some((cycles - c0, counter - r0)),
            _ => None,
        };
        self.last = Some((cycles, counter));
    }

    /// Whether two samples measured the rate.
    pub fn calibrated(&self) -> bool {
        self.rate.is_some()
    }

    /// The counter (100 ns units) when the cycle counter reads `cycles`: the last sample's value
    /// before calibration, `None` before any sample.
    pub fn read(&self, cycles: u64) -> Option<u64> {
        let (c0, r0) = self.last?;
        let Some((dc, dr)) = self.rate else {
            return Some(r0);
        };
        let elapsed = u128::from(cycles.saturating_sub(c0)) * u128::from(dr) / u128::from(dc);
        Some(r0.saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::CycleCounter;

    #[test]
    fn two_samples_calibrate_and_reads_interpolate() {
        let mut c = CycleCounter::default();
        assert_eq!(c.read(5), None);
        // 3 GHz cycles, 100 ns counter units: 300 cycles per unit.
        c.on_sample(3_000_000, 1_000);
        assert!(!c.calibrated());
        assert_eq!(c.read(3_600_000), Some(1_000));
        c.on_sample(6_000_000, 11_000);
        assert!(c.calibrated());
        assert_eq!(c.read(6_000_000 + 300 * 250), Some(11_250));
    }

    #[test]
    fn a_sample_going_backwards_drops_the_rate() {
        let mut c = CycleCounter::default();
        c.on_sample(1_000, 10);
        c.on_sample(2_000, 20);
        c.on_sample(3_000, 5);
        assert!(!c.calibrated());
        assert_eq!(c.read(9_000), Some(5));
    }
}
