//! Keeping a rate over frames whose timestamps jitter: a 10 fps recording sampled at 4 fps
//! gives frames 0.2 s and 0.3 s apart, and a stage that wants 4 fps must take them all.

use chrono::{DateTime, Duration, Utc};

/// Says which frames are due for a stage that runs at `fps`.
#[derive(Debug, Clone)]
pub struct Pace {
    period: Duration,
    /// A frame this much before its slot still takes it: half the frames' own period.
    slack: Duration,
    next: Option<DateTime<Utc>>,
}

impl Pace {
    /// A stage at `fps` over frames that come `frames_fps` times a second (at least `fps`).
    pub fn new(fps: f64, frames_fps: f64) -> Self {
        Self {
            period: Duration::microseconds((1e6 / fps) as i64),
            slack: Duration::microseconds((0.5e6 / frames_fps.max(fps)) as i64),
            next: None,
        }
    }

    /// Whether the frame at `at` is due; if so, it takes its slot. Slots keep to a grid, so
    /// jitter does not make the rate drift; after a jump (a gap, a reconnect) the grid
    /// restarts at the frame.
    pub fn due(&mut self, at: DateTime<Utc>) -> bool {
        match self.next {
            Some(next) if at + self.slack < next => false,
            Some(next) if at - next < self.period => {
                self.next = Some(next + self.period);
                true
            }
            _ => {
                self.next = Some(at + self.period);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(pace: &mut Pace, times_ms: &[i64]) -> Vec<bool> {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        (times_ms.iter())
            .map(|&ms| pace.due(start + Duration::milliseconds(ms)))
            .collect()
    }

    #[test]
    fn jittered_frames_at_the_rate_are_all_due() {
        // A 10 fps recording sampled at 4 fps.
        let mut pace = Pace::new(4.0, 4.0);
        assert!(due(&mut pace, &[0, 300, 500, 800, 1000, 1300, 1500])
            .iter()
            .all(|&d| d));
    }

    #[test]
    fn faster_frames_are_thinned_to_the_rate_without_drift() {
        let mut pace = Pace::new(1.0, 4.0);
        let times: Vec<i64> = (0..=20).map(|i| i * 250).collect();
        let taken_or_not = due(&mut pace, &times);
        let taken: Vec<i64> = (times.iter().zip(&taken_or_not))
            .filter(|(_, &d)| d)
            .map(|(&t, _)| t)
            .collect();
        assert_eq!(taken, vec![0, 1000, 2000, 3000, 4000, 5000]);
        // Frames a little early for their slot still take it; a jump restarts the grid.
        let mut pace = Pace::new(1.0, 4.0);
        assert_eq!(
            due(&mut pace, &[0, 990, 1500, 60_000, 60_600, 61_000]),
            [true, true, false, true, false, true]
        );
    }
}
