//! HyperLogLog sketches for approximate distinct counts that merge across minutes, hours and days.
//!
//! A sketch keeps, for each of 2^12 registers, the longest run of leading zeros seen among the 64-bit
//! xxh3 hashes routed to it; merging two sketches takes the larger register of each. The estimate has
//! a relative standard error of about 1.6% (1.04 / sqrt(4096)), with linear counting for small
//! counts, where it is near exact.
//!
//! A sketch of few values is stored sparse, as HyperLogLog++ does: set registers of a much finer
//! register space (2^25, the hash's top 25 bits), which linear counting turns into a near exact
//! count; it turns dense (4096 one-byte registers) once that is smaller, 1024 entries. A fine entry
//! maps to exactly the dense register and rank its hash would have set, so the two forms merge.
//!
//! The byte layout is stable, so sketches written by one version of tidelake merge with sketches
//! written by another: `[1 (format), 12 (precision), 0 sparse | 1 dense, payload]`. A sparse payload
//! is big-endian u32 words `register << 6 | rank` in register order (25-bit register, rank 1..=40 =
//! leading zeros of the hash's remaining 39 bits + 1); a dense one is the 4096 ranks (leading zeros
//! of the remaining 52 bits + 1, 0 for an empty register).
//!
//! ```
//! use tidelake_lake::sketch::Sketch;
//! let (mut a, mut b) = (Sketch::default(), Sketch::default());
//! for user in 0..600 { a.insert(format!("user-{user}").as_bytes()); }
//! for user in 400..1000 { b.insert(format!("user-{user}").as_bytes()); }
//! a.merge(&Sketch::from_bytes(&b.to_bytes()).unwrap());
//! let estimate = a.estimate() as f64;
//! assert!((estimate - 1000.0).abs() < 50.0, "{estimate}");
//! ```

/// Bits of the hash that pick the register.
const PRECISION: u8 = 12;
/// Number of registers.
const REGISTERS: usize = 1 << PRECISION;
/// Bits of the hash that pick the register of the sparse form: with 2^25 registers, small counts
/// are near exact (HyperLogLog++).
const SPARSE_PRECISION: u8 = 25;
const FORMAT: u8 = 1;
const SPARSE: u8 = 0;
const DENSE: u8 = 1;
/// Bytes per entry of the sparse form.
const SPARSE_ENTRY: usize = 4;

/// A mergeable approximate distinct count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sketch {
    /// Set registers of the fine (2^25) register space only, sorted: `(register, rank)`.
    Sparse(Vec<(u32, u8)>),
    /// Every register's rank.
    Dense(Box<[u8; REGISTERS]>),
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch::Sparse(Vec::new())
    }
}

/// The register and rank of `hash` with `precision` register bits.
fn register_and_rank(hash: u64, precision: u8) -> (u64, u8) {
    let register = hash >> (64 - precision);
    let rank = ((hash << precision).leading_zeros() as u8).min(64 - precision) + 1;
    (register, rank)
}

/// The dense register and rank a sparse entry stands for: the same as hashing into the dense form.
fn coarse(register: u32, rank: u8) -> (usize, u8) {
    let shift = SPARSE_PRECISION - PRECISION;
    let low = register & ((1 << shift) - 1);
    let coarse_rank = match low {
        0 => shift + rank,
        _ => (low.leading_zeros() - (32 - shift as u32)) as u8 + 1,
    };
    ((register >> shift) as usize, coarse_rank)
}

impl Sketch {
    /// Adds a value given as its bytes.
    pub fn insert(&mut self, value: &[u8]) {
        self.insert_hash(twox_hash::XxHash3_64::oneshot(value));
    }

    /// Adds a value given as its 64-bit hash.
    pub fn insert_hash(&mut self, hash: u64) {
        match self {
            Sketch::Dense(ranks) => {
                let (register, rank) = register_and_rank(hash, PRECISION);
                let slot = &mut ranks[register as usize];
                *slot = (*slot).max(rank);
            }
            Sketch::Sparse(_) => {
                let (register, rank) = register_and_rank(hash, SPARSE_PRECISION);
                self.raise_sparse(register as u32, rank);
            }
        }
    }

    fn raise_sparse(&mut self, register: u32, rank: u8) {
        match self {
            Sketch::Dense(ranks) => {
                let (register, rank) = coarse(register, rank);
                ranks[register] = ranks[register].max(rank);
            }
            Sketch::Sparse(entries) => {
                match entries.binary_search_by_key(&register, |e| e.0) {
                    Ok(i) => entries[i].1 = entries[i].1.max(rank),
                    Err(i) => entries.insert(i, (register, rank)),
                }
                if entries.len() * SPARSE_ENTRY > REGISTERS {
                    self.densify();
                }
            }
        }
    }

    fn densify(&mut self) {
        if let Sketch::Sparse(entries) = self {
            let mut ranks = Box::new([0u8; REGISTERS]);
            for (register, rank) in entries.iter() {
                let (register, rank) = coarse(*register, *rank);
                ranks[register] = ranks[register].max(rank);
            }
            *self = Sketch::Dense(ranks);
        }
    }

    /// Folds `other` into this sketch: the result estimates the distinct count of both inputs together.
    pub fn merge(&mut self, other: &Sketch) {
        match other {
            Sketch::Sparse(entries) => {
                for (register, rank) in entries {
                    self.raise_sparse(*register, *rank);
                }
            }
            Sketch::Dense(theirs) => {
                self.densify();
                if let Sketch::Dense(ours) = self {
                    for (o, t) in ours.iter_mut().zip(theirs.iter()) {
                        *o = (*o).max(*t);
                    }
                }
            }
        }
    }

    /// The estimated number of distinct values added.
    pub fn estimate(&self) -> u64 {
        match self {
            Sketch::Sparse(entries) => {
                // Linear counting over the fine registers.
                let m = (1u64 << SPARSE_PRECISION) as f64;
                let empty = m - entries.len() as f64;
                (m * (m / empty).ln()).round() as u64
            }
            Sketch::Dense(ranks) => {
                let m = REGISTERS as f64;
                let zeros = ranks.iter().filter(|r| **r == 0).count();
                let sum: f64 = ranks.iter().map(|r| 2f64.powi(-(*r as i32))).sum();
                let alpha = 0.7213 / (1.0 + 1.079 / m);
                let raw = alpha * m * m / sum;
                let estimate = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
                estimate.round() as u64
            }
        }
    }

    /// The stable byte form (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Sketch::Sparse(entries) => {
                let mut out = Vec::with_capacity(3 + entries.len() * SPARSE_ENTRY);
                out.extend([FORMAT, PRECISION, SPARSE]);
                for (register, rank) in entries {
                    out.extend(((register << 6) | u32::from(*rank)).to_be_bytes());
                }
                out
            }
            Sketch::Dense(ranks) => {
                let mut out = Vec::with_capacity(3 + REGISTERS);
                out.extend([FORMAT, PRECISION, DENSE]);
                out.extend(ranks.iter());
                out
            }
        }
    }

    /// Reads the byte form back; the error says what is wrong with the bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Sketch, String> {
        let [format, precision, form, payload @ ..] = bytes else {
            return Err(format!("a sketch is at least 3 bytes, got {}", bytes.len()));
        };
        if *format != FORMAT || *precision != PRECISION {
            return Err(format!(
                "sketch format {format} precision {precision} is not format {FORMAT} precision {PRECISION}"
            ));
        }
        match *form {
            SPARSE if payload.len() % SPARSE_ENTRY == 0 => {
                let mut entries: Vec<(u32, u8)> = Vec::with_capacity(payload.len() / SPARSE_ENTRY);
                for chunk in payload.chunks_exact(SPARSE_ENTRY) {
                    let word = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    let (register, rank) = (word >> 6, (word & 0x3f) as u8);
                    if rank == 0 || rank > 64 - SPARSE_PRECISION + 1 {
                        return Err(format!("sparse sketch rank {rank} of register {register} is out of range"));
                    }
                    if register >= 1 << SPARSE_PRECISION {
                        return Err(format!("sparse sketch register {register} is beyond 2^{SPARSE_PRECISION}"));
                    }
                    if entries.last().is_some_and(|(r, _)| *r >= register) {
                        return Err(format!("sparse sketch register {register} is out of order"));
                    }
                    entries.push((register, rank));
                }
                Ok(Sketch::Sparse(entries))
            }
            DENSE if payload.len() == REGISTERS => {
                if let Some((register, rank)) = payload.iter().enumerate().find(|(_, r)| **r > 64 - PRECISION + 1) {
                    return Err(format!("dense sketch rank {rank} of register {register} is out of range"));
                }
                let mut ranks = Box::new([0u8; REGISTERS]);
                ranks.copy_from_slice(payload);
                Ok(Sketch::Dense(ranks))
            }
            _ => Err(format!("sketch form {form} with a payload of {} bytes is not valid", payload.len())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(range: std::ops::Range<u64>) -> Sketch {
        let mut s = Sketch::default();
        for i in range {
            s.insert(format!("user-{i}").as_bytes());
        }
        s
    }

    #[test]
    fn crafted_bytes_are_refused_not_merged() {
        let sparse = |word: u32| [&[FORMAT, PRECISION, SPARSE][..], &word.to_be_bytes()].concat();
        let beyond = ((1u32 << SPARSE_PRECISION) << 6) | 1;
        assert!(Sketch::from_bytes(&sparse(beyond)).unwrap_err().contains("beyond"));
        let mut merged = Sketch::default();
        merged.merge(&Sketch::from_bytes(&sparse((((1 << SPARSE_PRECISION) - 1) << 6) | 1)).unwrap());
        merged.densify();
        assert_eq!(merged.estimate(), 1);
        let mut dense = vec![FORMAT, PRECISION, DENSE];
        dense.extend(std::iter::repeat_n(0u8, REGISTERS));
        dense[3 + 7] = 200;
        assert!(Sketch::from_bytes(&dense).unwrap_err().contains("rank 200"));
    }

    #[test]
    fn estimates_within_a_few_percent_at_every_size() {
        for n in [1u64, 10, 100, 1_000, 10_000, 100_000, 1_000_000] {
            let estimate = of(0..n).estimate() as f64;
            let error = (estimate - n as f64).abs() / n as f64;
            assert!(error < 0.05, "{n} values estimated as {estimate} ({:.1}% off)", error * 100.0);
        }
        assert_eq!(Sketch::default().estimate(), 0);
    }

    #[test]
    fn merging_equals_sketching_the_union_and_ignores_repeats() {
        let mut merged = of(0..3_000);
        merged.merge(&of(2_000..9_000));
        merged.merge(&of(0..100));
        assert_eq!(merged, {
            let mut all = of(0..9_000);
            all.densify();
            all
        });
    }

    #[test]
    fn small_counts_are_exact_and_forms_agree() {
        for n in [1u64, 2, 3, 17, 300, 1000] {
            assert_eq!(of(0..n).estimate(), n);
        }
        // A sparse sketch turned dense sets the same registers as hashing straight into dense.
        let mut sparse = of(0..500);
        sparse.densify();
        let mut dense = Sketch::Dense(Box::new([0; REGISTERS]));
        for i in 0..500 {
            dense.insert(format!("user-{i}").as_bytes());
        }
        assert_eq!(sparse, dense);
    }

    #[test]
    fn bytes_round_trip_in_both_forms() {
        for sketch in [of(0..5), of(0..50_000)] {
            let bytes = sketch.to_bytes();
            assert_eq!(Sketch::from_bytes(&bytes).unwrap(), sketch);
        }
        assert_eq!(of(0..5).to_bytes().len(), 3 + 5 * 4);
        assert!(Sketch::from_bytes(&[1, 12, 0, 0, 0, 0, 63]).unwrap_err().contains("out of range"));
        assert!(Sketch::from_bytes(&[2, 12, 0]).unwrap_err().contains("format"));
    }
}
