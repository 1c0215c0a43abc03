//! A flapping link: up and down in turn, each period drawn from its range,
//! so the shortest up and down times are guaranteed.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{DownMode, LinkState, ProxyShared};

/// A flapping schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flap {
    /// How long the link stays up: uniform in `[min, max]` ms.
    pub up_ms: (u64, u64),
    /// How long it stays down: uniform in `[min, max]` ms.
    pub down_ms: (u64, u64),
    /// How it goes down each time, drawn uniformly from these.
    pub modes: Vec<DownMode>,
    /// The seed of the draws.
    pub seed: u64,
}

impl Flap {
    /// Checks the ranges and the modes.
    ///
    /// # Errors
    ///
    /// A range whose minimum is 0 or above its maximum, or no mode.
    pub fn validate(&self) -> Result<(), String> {
        for (name, (min, max)) in [("up_ms", self.up_ms), ("down_ms", self.down_ms)] {
            if min == 0 || min > max {
                return Err(format!(
                    "{name}: the minimum must be positive and at most the maximum"
                ));
            }
        }
        if self.modes.is_empty() {
            return Err("modes: at least one way of going down is needed".to_owned());
        }
        Ok(())
    }
}

/// One up-then-down period of a flapping schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    /// How long the link stays up first, in ms.
    pub up_ms: u64,
    /// How it then goes down.
    pub mode: DownMode,
    /// How long it stays down, in ms.
    pub down_ms: u64,
}

impl Flap {
    /// The schedule this flap follows, period by period (the same for the
    /// same seed).
    pub fn periods(&self) -> impl Iterator<Item = Period> + use<> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (up, down, modes) = (self.up_ms, self.down_ms, self.modes.clone());
        std::iter::from_fn(move || {
            let up_ms = rng.random_range(up.0..=up.1);
            let mode = modes[rng.random_range(0..modes.len())];
            let down_ms = rng.random_range(down.0..=down.1);
            Some(Period {
                up_ms,
                mode,
                down_ms,
            })
        })
    }
}

/// Flaps the link for ever (the task is aborted to stop it).
pub(super) async fn run(shared: Arc<ProxyShared>, flap: Flap) {
    for period in flap.periods() {
        tokio::time::sleep(Duration::from_millis(period.up_ms)).await;
        shared.set_link(LinkState::Down(period.mode));
        tokio::time::sleep(Duration::from_millis(period.down_ms)).await;
        shared.set_link(LinkState::Up);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_checked() {
        let good = Flap {
            up_ms: (100, 200),
            down_ms: (50, 50),
            modes: vec![DownMode::Reset],
            seed: 1,
        };
        assert!(good.validate().is_ok());
        let periods: Vec<Period> = good.periods().take(50).collect();
        assert!(
            periods
                .iter()
                .all(|p| (100..=200).contains(&p.up_ms) && p.down_ms == 50)
        );
        assert_eq!(periods, good.periods().take(50).collect::<Vec<_>>());
        assert!(
            Flap {
                up_ms: (0, 5),
                ..good.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            Flap {
                down_ms: (9, 5),
                ..good.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            Flap {
                modes: vec![],
                ..good
            }
            .validate()
            .is_err()
        );
    }
}
