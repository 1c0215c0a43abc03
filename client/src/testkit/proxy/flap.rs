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

/// Flaps the link for ever (the task is aborted to stop it).
pub(super) async fn run(shared: Arc<ProxyShared>, flap: Flap) {
    let mut rng = ChaCha8Rng::seed_from_u64(flap.seed);
    loop {
        let up = rng.random_range(flap.up_ms.0..=flap.up_ms.1);
        tokio::time::sleep(Duration::from_millis(up)).await;
        let mode = flap.modes[rng.random_range(0..flap.modes.len())];
        shared.set_link(LinkState::Down(mode));
        let down = rng.random_range(flap.down_ms.0..=flap.down_ms.1);
        tokio::time::sleep(Duration::from_millis(down)).await;
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
