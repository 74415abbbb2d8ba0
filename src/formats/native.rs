//! Native histograms as Prometheus holds them (sparse buckets on an exponential schema, or
//! custom bounds), and their expansion, at decode time, into the classic form every rule reads:
//! `<name>_bucket{le}` with the cumulative count at each upper bound (`le="+Inf"` holds the
//! total count), `<name>_count` and `<name>_sum`. Pure; remote write 1.0 and 2.0
//! (`formats::remote_write`) and query answers (`formats::prom_api`) build a
//! [`NativeHistogram`] or bucket list and call [`expand`] / [`expand_cumulative`].
//!
//! Bucket boundaries are Prometheus's (`model/histogram/generic.go`, `getBound`): at schema
//! `s` (−4 to 8), the positive bucket of index `i` is `(2^((i−1)·2^−s), 2^(i·2^−s)]`, the
//! bounds for schemas 0 to 8 taken from the same table Prometheus uses (so `le` values are
//! bit for bit those of Prometheus's query API); the last finite bucket ends at
//! `f64::MAX`, the one after it at `+Inf`. Negative buckets mirror the positive ones
//! (index `i` is `[−2^(i·2^−s), −2^((i−1)·2^−s))`), and the zero bucket is
//! `[−zero_threshold, zero_threshold]`. With schema −53 (custom buckets) bucket `i` ends at
//! `custom_values[i]`, and the one past the last value at `+Inf`.
//!
//! The classic form only lists upper bounds where the histogram has a non-empty bucket (a
//! query answer lists only those, so both sources give the same series); the count at an
//! empty bucket's bound is the one at the bound before it. A negative bucket's bound is
//! open (`< le` rather than `≤ le`), which only matters for a value exactly on it.

use crate::labels::{Labels, SeriesSamples};

/// Custom bucket bounds (`custom_values`) instead of an exponential schema.
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// The exponential schemas Prometheus defines.
pub const MIN_SCHEMA: i32 = -4;
pub const MAX_SCHEMA: i32 = 8;

/// The label of a classic bucket's upper bound.
pub const LE: &str = "le";

/// A run of consecutive buckets: `offset` is the gap to the previous span's end (for the
/// first span, the index of its first bucket, which may be negative); later offsets are
/// never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// One native histogram sample, counts absolute. Integer histograms (remote write's
/// `count_int`, `zero_count_int` and delta-encoded buckets) and float histograms (`counts`)
/// are the same type: integer counts are exact as `f64` up to 2^53, and [`absolute_counts`]
/// turns deltas into counts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NativeHistogram {
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub positive: Vec<f64>,
    pub negative_spans: Vec<Span>,
    pub negative: Vec<f64>,
    /// The bucket bounds of schema −53; empty for exponential schemas.
    pub custom_values: Vec<f64>,
}

/// Why a native histogram cannot be expanded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NativeError {
    #[error(
        "native histogram schema {0} is not supported (exponential schemas are -4 to 8, custom buckets -53)"
    )]
    Schema(i32),
    #[error("native histogram {side} spans need {spans} buckets, {buckets} given")]
    SpansMismatch {
        side: &'static str,
        spans: u64,
        buckets: usize,
    },
    #[error("native histogram {side} span {number} has a negative offset {offset}")]
    NegativeOffset {
        side: &'static str,
        number: usize,
        offset: i32,
    },
    #[error("native histogram {side} bucket {number} has the count {count}")]
    BadBucketCount {
        side: &'static str,
        number: usize,
        count: f64,
    },
    #[error("native histogram {what} is {value}, not a finite count >= 0")]
    BadCount { what: &'static str, value: f64 },
    #[error("native histogram zero threshold {0} is not a finite number >= 0")]
    ZeroThreshold(f64),
    #[error(
        "native histogram count {count} is below the {in_buckets} observations in its buckets"
    )]
    CountTooSmall { count: f64, in_buckets: f64 },
    #[error("native histogram bucket index {0} is out of range")]
    IndexRange(i64),
    #[error("native histogram with custom buckets: {0}")]
    Custom(&'static str),
    #[error(
        "native histogram with custom buckets: {bounds} bounds cannot hold bucket index {index}"
    )]
    CustomTooFew { bounds: usize, index: i64 },
    #[error("an exponential native histogram must not carry custom bounds")]
    CustomValuesOnExponential,
    #[error("native histogram buckets: bound {0} is not a number")]
    BoundNaN(f64),
    #[error("a native histogram series must not have an \"le\" label")]
    LeLabel,
}

/// Absolute bucket counts from the deltas of an integer histogram (each bucket's count minus
/// the previous one's, the first against 0). A count below zero is refused, as Prometheus
/// refuses it.
pub fn absolute_counts(side: &'static str, deltas: &[i64]) -> Result<Vec<f64>, NativeError> {
    let mut last: i64 = 0;
    let mut out = Vec::with_capacity(deltas.len());
    for (i, &d) in deltas.iter().enumerate() {
        let bad = |count: f64| NativeError::BadBucketCount {
            side,
            number: i + 1,
            count,
        };
        last = last
            .checked_add(d)
            .ok_or_else(|| bad(last as f64 + d as f64))?;
        if last < 0 {
            return Err(bad(last as f64));
        }
        out.push(last as f64);
    }
    Ok(out)
}

/// `frac · 2^exp`, exactly (as Go's `math.Ldexp`), saturating to `+Inf` or 0.
fn ldexp(frac: f64, exp: i64) -> f64 {
    let mut x = frac;
    let mut e = exp.clamp(-2200, 2200);
    // Steps of at most 2^±1000: each multiplication by a power of two is exact until the
    // result overflows or goes subnormal.
    while e != 0 {
        let step = e.clamp(-1000, 1000);
        x *= f64::from_bits(((step + 1023) as u64) << 52);
        e -= step;
    }
    x
}

/// The upper bound of bucket `index` at `schema` (Prometheus's `getBound`); for the custom
/// schema, `custom_values[index]`, `+Inf` past the last one.
pub fn upper_bound(schema: i32, index: i64, custom_values: &[f64]) -> Result<f64, NativeError> {
    if schema == CUSTOM_BUCKETS_SCHEMA {
        let len = custom_values.len() as i64;
        return match index {
            i if i == len => Ok(f64::INFINITY),
            -1 => Ok(f64::NEG_INFINITY),
            i if (0..len).contains(&i) => Ok(custom_values[i as usize]),
            _ => Err(NativeError::CustomTooFew {
                bounds: custom_values.len(),
                index,
            }),
        };
    }
    if !(MIN_SCHEMA..=MAX_SCHEMA).contains(&schema) {
        return Err(NativeError::Schema(schema));
    }
    // Far past the largest and smallest float either way: the bound saturates.
    let index = index.clamp(-(1 << 30), 1 << 30);
    if schema < 0 {
        let exp = index << -schema;
        if exp == 1024 {
            // The last bucket of finite values (the next one counts ±Inf observations).
            return Ok(f64::MAX);
        }
        return Ok(ldexp(1.0, exp));
    }
    let frac_index = (index & ((1 << schema) - 1)) as usize;
    let frac = EXPONENTIAL_BOUNDS[schema as usize][frac_index];
    let exp = (index >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return Ok(f64::MAX);
    }
    Ok(ldexp(frac, exp))
}

/// A float as Prometheus writes it in a label (`formatFloat`: Go's
/// `strconv.FormatFloat(f, 'g', -1, 64)`, with `+Inf`, `-Inf`, `NaN`): the shortest digits
/// that read back as `f`, in exponent form (`1e-05`, `1.5e+06`) below 1e-4 and from 1e6 on.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.5e6", "-1e-5".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        // Shortest digits in positional form.
        format!("{f}")
    }
}

impl NativeHistogram {
    /// Checks the histogram as Prometheus validates one: a known schema, spans that hold
    /// exactly the buckets given (later offsets not negative), counts finite and not
    /// negative, and a count not below what the buckets hold.
    pub fn validate(&self) -> Result<(), NativeError> {
        let custom = self.schema == CUSTOM_BUCKETS_SCHEMA;
        if !custom && !(MIN_SCHEMA..=MAX_SCHEMA).contains(&self.schema) {
            return Err(NativeError::Schema(self.schema));
        }
        if !(self.zero_threshold >= 0.0 && self.zero_threshold.is_finite()) {
            return Err(NativeError::ZeroThreshold(self.zero_threshold));
        }
        for (what, value) in [
            ("count", self.count),
            ("zero bucket count", self.zero_count),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(NativeError::BadCount { what, value });
            }
        }
        check_spans("positive", &self.positive_spans, &self.positive)?;
        check_spans("negative", &self.negative_spans, &self.negative)?;
        if custom {
            if !self.negative.is_empty() || !self.negative_spans.is_empty() {
                return Err(NativeError::Custom("negative buckets are not allowed"));
            }
            if self.zero_count != 0.0 {
                return Err(NativeError::Custom("the zero bucket must be empty"));
            }
            if self.positive_spans.iter().any(|s| s.offset < 0) {
                return Err(NativeError::Custom("span offsets must not be negative"));
            }
            let mut prev = f64::NEG_INFINITY;
            for (i, &b) in self.custom_values.iter().enumerate() {
                if b.is_nan() {
                    return Err(NativeError::BoundNaN(b));
                }
                if i > 0 && b <= prev {
                    return Err(NativeError::Custom("bounds must increase strictly"));
                }
                prev = b;
            }
            if prev == f64::INFINITY {
                return Err(NativeError::Custom("the +Inf bound must not be given"));
            }
        } else if !self.custom_values.is_empty() {
            return Err(NativeError::CustomValuesOnExponential);
        }
        Ok(())
    }

    /// The cumulative count at each upper bound where the histogram has a non-empty bucket,
    /// ascending, then `(+Inf, count)`.
    pub fn cumulative(&self) -> Result<Vec<(f64, f64)>, NativeError> {
        self.validate()?;
        let mut buckets: Vec<(f64, f64)> =
            Vec::with_capacity(self.positive.len() + self.negative.len() + 1);
        for (index, c) in indexed(&self.negative_spans, &self.negative) {
            if c > 0.0 {
                // Mirrored: the bucket ends where its positive twin begins.
                let lower = upper_bound(self.schema, index - 1, &self.custom_values)?;
                buckets.push((-lower, c));
            }
        }
        if self.zero_count > 0.0 {
            buckets.push((self.zero_threshold, self.zero_count));
        }
        for (index, c) in indexed(&self.positive_spans, &self.positive) {
            if c > 0.0 {
                let upper = upper_bound(self.schema, index, &self.custom_values)?;
                buckets.push((upper, c));
            }
        }
        cumulate(buckets, self.count)
    }
}

/// Each bucket with its index, following the spans (already checked to hold them all).
fn indexed(spans: &[Span], counts: &[f64]) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(counts.len());
    let mut counts = counts.iter();
    let mut index: i64 = 0;
    for s in spans {
        index += i64::from(s.offset);
        for &c in counts.by_ref().take(s.length as usize) {
            out.push((index, c));
            index += 1;
        }
    }
    out
}

fn check_spans(side: &'static str, spans: &[Span], counts: &[f64]) -> Result<(), NativeError> {
    let mut total: u64 = 0;
    for (n, s) in spans.iter().enumerate() {
        if n > 0 && s.offset < 0 {
            return Err(NativeError::NegativeOffset {
                side,
                number: n + 1,
                offset: s.offset,
            });
        }
        total += u64::from(s.length);
    }
    if total != counts.len() as u64 {
        return Err(NativeError::SpansMismatch {
            side,
            spans: total,
            buckets: counts.len(),
        });
    }
    for (i, &count) in counts.iter().enumerate() {
        if !(count >= 0.0 && count.is_finite()) {
            return Err(NativeError::BadBucketCount {
                side,
                number: i + 1,
                count,
            });
        }
    }
    Ok(())
}

/// `(upper bound, count in the bucket)` pairs in any order → the cumulative count at each
/// bound, ascending and merged where bounds are equal, then `(+Inf, total)`. Buckets
/// ending at `+Inf` join the last entry. The total may exceed what the buckets hold (NaN
/// observations count in it and in no bucket), never fall below it.
pub fn cumulate(mut buckets: Vec<(f64, f64)>, total: f64) -> Result<Vec<(f64, f64)>, NativeError> {
    if let Some(&(b, _)) = buckets.iter().find(|(b, _)| b.is_nan()) {
        return Err(NativeError::BoundNaN(b));
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(buckets.len() + 1);
    let mut running = 0.0;
    for (bound, c) in buckets {
        running += c;
        if bound == f64::INFINITY {
            continue;
        }
        // -0 and 0 are one bound, written "0".
        let bound = if bound == 0.0 { 0.0 } else { bound };
        match out.last_mut() {
            Some(last) if last.0 == bound => last.1 = running,
            _ => out.push((bound, running)),
        }
    }
    // Sums of float counts may round differently from the sender's total.
    if running > total * (1.0 + 1e-12) + 1e-9 {
        return Err(NativeError::CountTooSmall {
            count: total,
            in_buckets: running,
        });
    }
    out.push((f64::INFINITY, total));
    Ok(out)
}

/// A native histogram of series `name{labels}` as classic series: `<name>_bucket{le}` for
/// each bound of [`NativeHistogram::cumulative`], `<name>_count`, and `<name>_sum` (left
/// out when the sum is not finite), one value each. The names are not validated here.
pub fn expand(
    name: &str,
    labels: &Labels,
    h: &NativeHistogram,
) -> Result<Vec<SeriesSamples>, NativeError> {
    let cumulative = h.cumulative()?;
    expand_cumulative(name, labels, &cumulative, h.count, h.sum)
}

/// [`expand`] from cumulative counts already computed (a query answer's buckets through
/// [`cumulate`]).
pub fn expand_cumulative(
    name: &str,
    labels: &Labels,
    cumulative: &[(f64, f64)],
    count: f64,
    sum: f64,
) -> Result<Vec<SeriesSamples>, NativeError> {
    if labels.contains_key(LE) {
        return Err(NativeError::LeLabel);
    }
    let mut out = Vec::with_capacity(cumulative.len() + 2);
    let bucket = format!("{name}_bucket");
    for &(le, c) in cumulative {
        let mut l = labels.clone();
        l.insert(LE.to_string(), format_float(le));
        out.push(SeriesSamples {
            metric: bucket.clone(),
            labels: l,
            values: vec![c],
        });
    }
    out.push(SeriesSamples {
        metric: format!("{name}_count"),
        labels: labels.clone(),
        values: vec![count],
    });
    if sum.is_finite() {
        out.push(SeriesSamples {
            metric: format!("{name}_sum"),
            labels: labels.clone(),
            values: vec![sum],
        });
    }
    Ok(out)
}

/// The bounds of schemas 0 to 8 between 0.5 and 1 (bucket `k` of a power of two ends at
/// `EXPONENTIAL_BOUNDS[schema][k] · 2^e`), exactly as Prometheus's `exponentialBounds`
/// table holds them (`model/histogram/generic.go`): some differ from the correctly rounded
/// `2^(k/2^schema − 1)` in the last bit, and an `le` value must match Prometheus's.
#[rustfmt::skip]
static EXPONENTIAL_BOUNDS: [&[f64]; 9] = [
    &[
        0.5,
    ],
    &[
        0.5, 0.7071067811865475,
    ],
    &[
        0.5, 0.5946035575013605, 0.7071067811865475, 0.8408964152537144,
    ],
    &[
        0.5, 0.5452538663326288, 0.5946035575013605, 0.6484197773255048,
        0.7071067811865475, 0.7711054127039704, 0.8408964152537144, 0.9170040432046711,
    ],
    &[
        0.5, 0.5221368912137069, 0.5452538663326288, 0.5693943173783458,
        0.5946035575013605, 0.620928906036742, 0.6484197773255048, 0.6771277734684463,
        0.7071067811865475, 0.7384130729697496, 0.7711054127039704, 0.805245165974627,
        0.8408964152537144, 0.8781260801866495, 0.9170040432046711, 0.9576032806985735,
    ],
    &[
        0.5, 0.5109485743270583, 0.5221368912137069, 0.5335702003384117,
        0.5452538663326288, 0.5571933712979462, 0.5693943173783458, 0.5818624293887887,
        0.5946035575013605, 0.6076236799902344, 0.620928906036742, 0.6345254785958666,
        0.6484197773255048, 0.6626183215798706, 0.6771277734684463, 0.6919549409819159,
        0.7071067811865475, 0.7225904034885232, 0.7384130729697496, 0.7545822137967112,
        0.7711054127039704, 0.7879904225539431, 0.805245165974627, 0.8228777390769823,
        0.8408964152537144, 0.8593096490612387, 0.8781260801866495, 0.8973545375015533,
        0.9170040432046711, 0.9370838170551498, 0.9576032806985735, 0.9785720620876999,
    ],
    &[
        0.5, 0.5054446430258502, 0.5109485743270583, 0.5165124395106142,
        0.5221368912137069, 0.5278225891802786, 0.5335702003384117, 0.5393803988785598,
        0.5452538663326288, 0.5511912916539204, 0.5571933712979462, 0.5632608093041209,
        0.5693943173783458, 0.5755946149764913, 0.5818624293887887, 0.5881984958251406,
        0.5946035575013605, 0.6010783657263515, 0.6076236799902344, 0.6142402680534349,
        0.620928906036742, 0.6276903785123455, 0.6345254785958666, 0.6414350080393891,
        0.6484197773255048, 0.6554806057623822, 0.6626183215798706, 0.6698337620266515,
        0.6771277734684463, 0.6845012114872953, 0.6919549409819159, 0.6994898362691555,
        0.7071067811865475, 0.7148066691959849, 0.7225904034885232, 0.7304588970903234,
        0.7384130729697496, 0.7464538641456323, 0.7545822137967112, 0.762799075372269,
        0.7711054127039704, 0.7795022001189185, 0.7879904225539431, 0.7965710756711334,
        0.805245165974627, 0.8140137109286738, 0.8228777390769823, 0.8318382901633681,
        0.8408964152537144, 0.8500531768592616, 0.8593096490612387, 0.8686669176368529,
        0.8781260801866495, 0.8876882462632604, 0.8973545375015533, 0.9071260877501991,
        0.9170040432046711, 0.9269895625416926, 0.9370838170551498, 0.9472879907934827,
        0.9576032806985735, 0.9680308967461471, 0.9785720620876999, 0.9892280131939752,
    ],
    &[
        0.5, 0.5027149505564014, 0.5054446430258502, 0.5081891574554764,
        0.5109485743270583, 0.5137229745593818, 0.5165124395106142, 0.5193170509806894,
        0.5221368912137069, 0.5249720429003435, 0.5278225891802786, 0.5306886136446309,
        0.5335702003384117, 0.5364674337629877, 0.5393803988785598, 0.5423091811066545,
        0.5452538663326288, 0.5482145409081883, 0.5511912916539204, 0.5541842058618393,
        0.5571933712979462, 0.5602188762048033, 0.5632608093041209, 0.5663192597993595,
        0.5693943173783458, 0.572486072215902, 0.5755946149764913, 0.5787200368168754,
        0.5818624293887887, 0.585021884841625, 0.5881984958251406, 0.5913923554921704,
        0.5946035575013605, 0.5978321960199137, 0.6010783657263515, 0.6043421618132907,
        0.6076236799902344, 0.6109230164863786, 0.6142402680534349, 0.6175755319684665,
        0.620928906036742, 0.6243004885946023, 0.6276903785123455, 0.6310986751971253,
        0.6345254785958666, 0.637970889198196, 0.6414350080393891, 0.6449179367033329,
        0.6484197773255048, 0.6519406325959679, 0.6554806057623822, 0.659039800633032,
        0.6626183215798706, 0.6662162735415805, 0.6698337620266515, 0.6734708931164728,
        0.6771277734684463, 0.6808045103191123, 0.6845012114872953, 0.688217985377265,
        0.6919549409819159, 0.6957121878859629, 0.6994898362691555, 0.7032879969095076,
        0.7071067811865475, 0.7109463010845827, 0.7148066691959849, 0.718687998724491,
        0.7225904034885232, 0.7265139979245261, 0.7304588970903234, 0.7344252166684908,
        0.7384130729697496, 0.7424225829363761, 0.7464538641456323, 0.7505070348132126,
        0.7545822137967112, 0.7586795205991071, 0.762799075372269, 0.7669409989204777,
        0.7711054127039704, 0.7752924388424999, 0.7795022001189185, 0.7837348199827764,
        0.7879904225539431, 0.7922691326262467, 0.7965710756711334, 0.8008963778413465,
        0.805245165974627, 0.8096175675974316, 0.8140137109286738, 0.8184337248834821,
        0.8228777390769823, 0.8273458838280969, 0.8318382901633681, 0.8363550898207981,
        0.8408964152537144, 0.8454623996346523, 0.8500531768592616, 0.8546688815502312,
        0.8593096490612387, 0.8639756154809185, 0.8686669176368529, 0.8733836930995842,
        0.8781260801866495, 0.8828942179666361, 0.8876882462632604, 0.8925083056594671,
        0.8973545375015533, 0.9022270839033115, 0.9071260877501991, 0.9120516927035263,
        0.9170040432046711, 0.9219832844793128, 0.9269895625416926, 0.9320230241988943,
        0.9370838170551498, 0.9421720895161669, 0.9472879907934827, 0.9524316709088368,
        0.9576032806985735, 0.9628029718180622, 0.9680308967461471, 0.9732872087896164,
        0.9785720620876999, 0.9838856116165875, 0.9892280131939752, 0.9945994234836328,
    ],
    &[
        0.5, 0.5013556375251013, 0.5027149505564014, 0.5040779490592088,
        0.5054446430258502, 0.5068150424757447, 0.5081891574554764, 0.509566998038869,
        0.5109485743270583, 0.5123338964485679, 0.5137229745593818, 0.5151158188430205,
        0.5165124395106142, 0.5179128468009786, 0.5193170509806894, 0.520725062344158,
        0.5221368912137069, 0.5235525479396449, 0.5249720429003435, 0.526395386502313,
        0.5278225891802786, 0.5292536613972564, 0.5306886136446309, 0.5321274564422321,
        0.5335702003384117, 0.5350168559101208, 0.5364674337629877, 0.5379219445313954,
        0.5393803988785598, 0.5408428074966075, 0.5423091811066545, 0.5437795304588847,
        0.5452538663326288, 0.5467321995364429, 0.5482145409081883, 0.549700901315111,
        0.5511912916539204, 0.5526857228508706, 0.5541842058618393, 0.5556867516724088,
        0.5571933712979462, 0.5587040757836845, 0.5602188762048033, 0.5617377836665098,
        0.5632608093041209, 0.564787964283144, 0.5663192597993595, 0.5678547070789026,
        0.5693943173783458, 0.5709381019847808, 0.572486072215902, 0.5740382394200894,
        0.5755946149764913, 0.5771552102951081, 0.5787200368168754, 0.5802891060137493,
        0.5818624293887887, 0.5834400184762408, 0.585021884841625, 0.5866080400818185,
        0.5881984958251406, 0.5897932637314379, 0.5913923554921704, 0.5929957828304968,
        0.5946035575013605, 0.5962156912915756, 0.5978321960199137, 0.5994530835371903,
        0.6010783657263515, 0.6027080545025619, 0.6043421618132907, 0.6059806996384005,
        0.6076236799902344, 0.6092711149137041, 0.6109230164863786, 0.6125793968185725,
        0.6142402680534349, 0.6159056423670379, 0.6175755319684665, 0.6192499490999082,
        0.620928906036742, 0.622612415087629, 0.6243004885946023, 0.6259931389331581,
        0.6276903785123455, 0.6293922197748583, 0.6310986751971253, 0.6328097572894031,
        0.6345254785958666, 0.6362458516947014, 0.637970889198196, 0.6397006037528346,
        0.6414350080393891, 0.6431741147730128, 0.6449179367033329, 0.6466664866145447,
        0.6484197773255048, 0.6501778216898253, 0.6519406325959679, 0.6537082229673385,
        0.6554806057623822, 0.6572577939746774, 0.659039800633032, 0.6608266388015788,
        0.6626183215798706, 0.6644148621029772, 0.6662162735415805, 0.6680225691020727,
        0.6698337620266515, 0.6716498655934177, 0.6734708931164728, 0.6752968579460171,
        0.6771277734684463, 0.6789636531064505, 0.6808045103191123, 0.6826503586020058,
        0.6845012114872953, 0.6863570825438342, 0.688217985377265, 0.690083933630119,
        0.6919549409819159, 0.6938310211492645, 0.6957121878859629, 0.6975984549830999,
        0.6994898362691555, 0.7013863456101023, 0.7032879969095076, 0.7051948041086352,
        0.7071067811865475, 0.7090239421602076, 0.7109463010845827, 0.7128738720527471,
        0.7148066691959849, 0.7167447066838943, 0.718687998724491, 0.7206365595643126,
        0.7225904034885232, 0.7245495448210174, 0.7265139979245261, 0.7284837772007218,
        0.7304588970903234, 0.7324393720732029, 0.7344252166684908, 0.7364164454346837,
        0.7384130729697496, 0.7404151139112358, 0.7424225829363761, 0.7444354947621984,
        0.7464538641456323, 0.7484777058836176, 0.7505070348132126, 0.7525418658117031,
        0.7545822137967112, 0.7566280937263048, 0.7586795205991071, 0.7607365094544071,
        0.762799075372269, 0.7648672334736434, 0.7669409989204777, 0.7690203869158282,
        0.7711054127039704, 0.7731960915705107, 0.7752924388424999, 0.7773944698885442,
        0.7795022001189185, 0.7816156449856788, 0.7837348199827764, 0.7858597406461707,
        0.7879904225539431, 0.7901268813264122, 0.7922691326262467, 0.7944171921585818,
        0.7965710756711334, 0.7987307989543135, 0.8008963778413465, 0.8030678282083853,
        0.805245165974627, 0.8074284071024302, 0.8096175675974316, 0.8118126635086642,
        0.8140137109286738, 0.8162207259936375, 0.8184337248834821, 0.820652723822003,
        0.8228777390769823, 0.8251087869603088, 0.8273458838280969, 0.8295890460808079,
        0.8318382901633681, 0.8340936325652911, 0.8363550898207981, 0.8386226785089391,
        0.8408964152537144, 0.8431763167241966, 0.8454623996346523, 0.8477546807446661,
        0.8500531768592616, 0.8523579048290255, 0.8546688815502312, 0.8569861239649629,
        0.8593096490612387, 0.8616394738731368, 0.8639756154809185, 0.8663180910111553,
        0.8686669176368529, 0.871022112577578, 0.8733836930995842, 0.8757516765159389,
        0.8781260801866495, 0.8805069215187917, 0.8828942179666361, 0.8852879870317771,
        0.8876882462632604, 0.890095013257712, 0.8925083056594671, 0.8949281411607002,
        0.8973545375015533, 0.8997875124702672, 0.9022270839033115, 0.9046732696855155,
        0.9071260877501991, 0.909585556079304, 0.9120516927035263, 0.9145245157024483,
        0.9170040432046711, 0.9194902933879467, 0.9219832844793128, 0.9244830347552253,
        0.9269895625416926, 0.92950288621441, 0.9320230241988943, 0.9345499949706191,
        0.9370838170551498, 0.93962450902828, 0.9421720895161669, 0.9447265771954693,
        0.9472879907934827, 0.9498563490882775, 0.9524316709088368, 0.9550139751351947,
        0.9576032806985735, 0.9601996065815236, 0.9628029718180622, 0.9654133954938133,
        0.9680308967461471, 0.9706554947643201, 0.9732872087896164, 0.9759260581154889,
        0.9785720620876999, 0.9812252401044634, 0.9838856116165875, 0.9865531961276168,
        0.9892280131939752, 0.9919100824251095, 0.9945994234836328, 0.9972960560854698,
    ],
];

#[cfg(test)]
mod tests {
    use super::*;

    fn span(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    /// Every figure worked out by hand from the bucket definition (schema 0: bucket `i` is
    /// `(2^(i-1), 2^i]`).
    #[test]
    fn an_integer_histogram_with_deltas_negative_and_zero_buckets() {
        let h = NativeHistogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 2.0,
            count: 9.0,
            sum: 10.5,
            // Indices 0, 1, then (one empty index skipped) 3, 4.
            positive_spans: vec![span(0, 2), span(1, 2)],
            positive: absolute_counts("positive", &[1, 1, -1, 0]).unwrap(),
            // Index 0: the values in [-1, -0.5).
            negative_spans: vec![span(0, 1)],
            negative: absolute_counts("negative", &[2]).unwrap(),
            custom_values: vec![],
        };
        assert_eq!(h.positive, vec![1.0, 2.0, 1.0, 1.0]);
        assert_eq!(
            h.cumulative().unwrap(),
            vec![
                (-0.5, 2.0),
                (0.001, 4.0),
                (1.0, 5.0),
                (2.0, 7.0),
                (8.0, 8.0),
                (16.0, 9.0),
                (f64::INFINITY, 9.0)
            ]
        );
        let labels = Labels::from([("model".to_string(), "fraud".to_string())]);
        let got = expand("score", &labels, &h).unwrap();
        let les: Vec<(&str, &str, f64)> = got
            .iter()
            .map(|s| {
                (
                    s.metric.as_str(),
                    s.labels.get("le").map_or("", String::as_str),
                    s.values[0],
                )
            })
            .collect();
        assert_eq!(
            les,
            vec![
                ("score_bucket", "-0.5", 2.0),
                ("score_bucket", "0.001", 4.0),
                ("score_bucket", "1", 5.0),
                ("score_bucket", "2", 7.0),
                ("score_bucket", "8", 8.0),
                ("score_bucket", "16", 9.0),
                ("score_bucket", "+Inf", 9.0),
                ("score_count", "", 9.0),
                ("score_sum", "", 10.5),
            ]
        );
        assert!(got.iter().all(|s| s.labels["model"] == "fraud"));
    }

    #[test]
    fn a_float_histogram_at_schema_1_skips_empty_buckets_and_a_nan_sum() {
        // Schema 1: bounds 2^(i/2); indices -2, -1, 0 end at 0.5, 0.7071..., 1.
        let h = NativeHistogram {
            schema: 1,
            count: 2.5, // one NaN observation, in no bucket
            sum: f64::NAN,
            positive_spans: vec![span(-2, 3)],
            positive: vec![0.5, 0.0, 1.5],
            ..NativeHistogram::default()
        };
        assert_eq!(
            h.cumulative().unwrap(),
            vec![(0.5, 0.5), (1.0, 2.0), (f64::INFINITY, 2.5)]
        );
        let got = expand("m", &Labels::new(), &h).unwrap();
        let names: Vec<&str> = got.iter().map(|s| s.metric.as_str()).collect();
        assert_eq!(names, ["m_bucket", "m_bucket", "m_bucket", "m_count"]);
        assert_eq!(
            upper_bound(1, -1, &[]).unwrap(),
            0.7071067811865475,
            "Prometheus's table value, one bit below the correctly rounded 2^-0.5"
        );
    }

    #[test]
    fn bounds_at_the_extreme_schemas() {
        // Schema -4: bucket i ends at 2^(16 i).
        assert_eq!(upper_bound(-4, -1, &[]).unwrap(), 2f64.powi(-16));
        assert_eq!(format_float(2f64.powi(-16)), "1.52587890625e-05");
        assert_eq!(upper_bound(-4, 0, &[]).unwrap(), 1.0);
        assert_eq!(upper_bound(-4, 1, &[]).unwrap(), 65536.0);
        assert_eq!(upper_bound(-4, 63, &[]).unwrap(), 2f64.powi(1008));
        // The last bucket of finite values ends at the largest float, the next at +Inf.
        assert_eq!(upper_bound(-4, 64, &[]).unwrap(), f64::MAX);
        assert_eq!(upper_bound(-4, 65, &[]).unwrap(), f64::INFINITY);
        assert_eq!(upper_bound(-4, -70, &[]).unwrap(), 0.0);
        // Schema 8: 256 buckets a power of two.
        assert_eq!(upper_bound(8, 0, &[]).unwrap(), 1.0);
        assert_eq!(upper_bound(8, 256, &[]).unwrap(), 2.0);
        assert_eq!(upper_bound(8, -256, &[]).unwrap(), 0.5);
        let b1 = upper_bound(8, 1, &[]).unwrap();
        assert!(
            (b1 - 2f64.powf(1.0 / 256.0)).abs() <= 4.0 * f64::EPSILON,
            "{b1}"
        );
        let bm1 = upper_bound(8, -1, &[]).unwrap();
        assert!(
            (bm1 - 2f64.powf(-1.0 / 256.0)).abs() <= 4.0 * f64::EPSILON,
            "{bm1}"
        );
        assert_eq!(upper_bound(8, 1024 * 256, &[]).unwrap(), f64::MAX);
        assert_eq!(upper_bound(8, 1024 * 256 + 1, &[]).unwrap(), f64::INFINITY);
        // Every table bound lies in [0.5, 1) and grows.
        for (schema, table) in EXPONENTIAL_BOUNDS.iter().enumerate() {
            assert_eq!(table.len(), 1 << schema);
            assert!(table.windows(2).all(|w| w[0] < w[1] && w[1] < 1.0));
        }
        assert_eq!(upper_bound(9, 0, &[]), Err(NativeError::Schema(9)));
        assert_eq!(upper_bound(-5, 0, &[]), Err(NativeError::Schema(-5)));
        // A schema -4 histogram, a bucket on each side of 1.
        let h = NativeHistogram {
            schema: -4,
            count: 3.0,
            sum: 70000.0,
            positive_spans: vec![span(0, 2)],
            positive: absolute_counts("positive", &[1, 1]).unwrap(),
            ..NativeHistogram::default()
        };
        let got = expand("m", &Labels::new(), &h).unwrap();
        let les: Vec<&str> = got
            .iter()
            .filter_map(|s| s.labels.get("le"))
            .map(String::as_str)
            .collect();
        assert_eq!(les, ["1", "65536", "+Inf"]);
    }

    #[test]
    fn custom_buckets_end_at_their_values() {
        let h = NativeHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 6.0,
            sum: 3.0,
            // Indices 0, 1 and 3: 3 is past the last value, the +Inf bucket.
            positive_spans: vec![span(0, 2), span(1, 1)],
            positive: vec![3.0, 1.0, 2.0],
            custom_values: vec![0.1, 0.5, 1.0],
            ..NativeHistogram::default()
        };
        assert_eq!(
            h.cumulative().unwrap(),
            vec![(0.1, 3.0), (0.5, 4.0), (f64::INFINITY, 6.0)]
        );
        let mut bad = h.clone();
        bad.positive_spans = vec![span(0, 2), span(2, 1)];
        assert_eq!(
            bad.cumulative(),
            Err(NativeError::CustomTooFew {
                bounds: 3,
                index: 4
            })
        );
        let mut bad = h.clone();
        bad.custom_values = vec![0.5, 0.1, 1.0];
        assert!(bad.cumulative().is_err());
        let mut bad = h.clone();
        bad.negative_spans = vec![span(0, 1)];
        bad.negative = vec![1.0];
        assert!(bad.cumulative().is_err());
    }

    #[test]
    fn bad_histograms_are_refused_with_what_is_wrong() {
        let good = NativeHistogram {
            schema: 0,
            count: 2.0,
            positive_spans: vec![span(0, 2)],
            positive: vec![1.0, 1.0],
            ..NativeHistogram::default()
        };
        assert!(good.cumulative().is_ok());
        let check = |h: NativeHistogram, want: &str| {
            let e = h.cumulative().expect_err("refused").to_string();
            assert!(e.contains(want), "{e}");
        };
        check(
            NativeHistogram {
                positive: vec![1.0],
                ..good.clone()
            },
            "positive spans need 2 buckets, 1 given",
        );
        check(
            NativeHistogram {
                positive_spans: vec![span(0, 1), span(-1, 1)],
                ..good.clone()
            },
            "positive span 2 has a negative offset -1",
        );
        check(
            NativeHistogram {
                count: 1.0,
                ..good.clone()
            },
            "count 1 is below the 2 observations",
        );
        check(
            NativeHistogram {
                zero_threshold: -1.0,
                ..good.clone()
            },
            "zero threshold -1",
        );
        check(
            NativeHistogram {
                positive: vec![1.0, f64::NAN],
                ..good.clone()
            },
            "positive bucket 2 has the count NaN",
        );
        assert_eq!(
            absolute_counts("negative", &[2, -3]),
            Err(NativeError::BadBucketCount {
                side: "negative",
                number: 2,
                count: -1.0
            })
        );
        assert!(absolute_counts("positive", &[i64::MAX, 1]).is_err());
        let le = Labels::from([("le".to_string(), "1".to_string())]);
        assert_eq!(expand("m", &le, &good), Err(NativeError::LeLabel));
    }

    #[test]
    fn floats_are_written_as_prometheus_writes_them() {
        for (f, want) in [
            (0.5, "0.5"),
            (1.0, "1"),
            (-0.5, "-0.5"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-05"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (0.7071067811865475, "0.7071067811865475"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.0, "0"),
        ] {
            assert_eq!(format_float(f), want, "{f}");
        }
    }

    #[test]
    fn cumulate_merges_equal_bounds_and_keeps_the_total() {
        // Query answers: (right bound, count); unordered, a zero bucket [-0, 0].
        let got = cumulate(vec![(1.0, 2.0), (-0.0, 1.0), (0.0, 0.5), (-2.0, 1.0)], 4.5).unwrap();
        assert_eq!(
            got,
            vec![(-2.0, 1.0), (0.0, 2.5), (1.0, 4.5), (f64::INFINITY, 4.5)]
        );
        assert_eq!(format_float(got[1].0), "0");
        assert!(cumulate(vec![(f64::NAN, 1.0)], 1.0).is_err());
    }
}
