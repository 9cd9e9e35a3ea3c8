//! Choosing the next token from the model's logits: greedy, or temperature and nucleus
//! (top-p) sampling driven by our own seeded generator, so a seed gives the same text on any
//! machine and whatever else uses libtorch's global generator in the process.

/// How each next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token (the first one on a tie, as `argmax` picks).
    Greedy,
    /// A draw from the distribution `softmax(logits / temperature)`, cut to the smallest set
    /// of most likely tokens whose probability reaches `top_p` (1.0 keeps all), from a
    /// generator seeded with `seed`.
    Sample {
        temperature: f64,
        top_p: f64,
        seed: u64,
    },
}

/// SplitMix64: tiny, fast, and statistically sound for drawing one number per token.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// Index of the largest logit; the first of equals.
pub(super) fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &value) in logits.iter().enumerate() {
        if value > logits[best] {
            best = i;
        }
    }
    best
}

/// A token drawn from the tempered, top-p-truncated distribution over `logits`.
pub(super) fn sample(logits: &[f32], temperature: f64, top_p: f64, rng: &mut Rng) -> usize {
    let max = f64::from(logits[argmax(logits)]);
    let mut weighted: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &logit)| (i, ((f64::from(logit) - max) / temperature).exp()))
        .collect();
    let total: f64 = weighted.iter().map(|(_, w)| w).sum();
    // Most likely first; ties by index so the order never depends on the sort algorithm.
    weighted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0;
    let mut cumulative = 0.0;
    for (_, weight) in &weighted {
        kept += 1;
        cumulative += weight / total;
        if cumulative >= top_p {
            break;
        }
    }
    let nucleus = &weighted[..kept];
    let mass: f64 = nucleus.iter().map(|(_, w)| w).sum();
    let mut target = rng.uniform() * mass;
    for &(index, weight) in nucleus {
        if target < weight {
            return index;
        }
        target -= weight;
    }
    // Rounding left a sliver past the last weight: it belongs to the last token.
    nucleus[kept - 1].0
}
