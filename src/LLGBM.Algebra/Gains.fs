/// Reporting methods on unseen tasks: the normalised gain of a method between the base model and the oracle teacher,
/// and percentile-bootstrap confidence intervals of a mean over tasks (Efron and Tibshirani, "An Introduction to the
/// Bootstrap", 1993, ch. 13), so that a table says how far a method closes the gap and how sure that is.
module LLGBM.Algebra.Gains

open System
open LLGBM

/// (accuracy − base) / (oracle − base): 0 at the base model, 1 at the oracle teacher, negative below the base; None when
/// the oracle is not above the base (no gap to normalise by).
[<CompiledName("Normalised")>]
let normalised (baseAccuracy: float) (oracleAccuracy: float) (accuracy: float) : float option =
    if oracleAccuracy > baseAccuracy then
        Some((accuracy - baseAccuracy) / (oracleAccuracy - baseAccuracy))
    else
        None

/// The q-quantile of `values` by linear interpolation between order statistics (NumPy's default, "linear"): with the
/// sorted values a[0..m−1], h = (m − 1) q and the result a[⌊h⌋] + (h − ⌊h⌋)(a[⌊h⌋ + 1] − a[⌊h⌋]).
[<CompiledName("Quantile")>]
let quantile (q: float) (values: float[]) : float =
    if values.Length = 0 then
        raise (LlgbmException "Gains.quantile: no values.")

    if not (q >= 0.0 && q <= 1.0) then
        raise (LlgbmException $"Gains.quantile: q must be in [0, 1], found {q}.")

    let sorted = Array.sort values
    let h = float (sorted.Length - 1) * q
    let lo = int (floor h)
    let hi = min (lo + 1) (sorted.Length - 1)
    sorted[lo] + (h - float lo) * (sorted[hi] - sorted[lo])

/// A mean with its bootstrap confidence interval.
type Interval = {
    /// The mean of the values.
    Mean: float
    /// The lower end: the (1 − level)/2 quantile of the resampled means.
    Low: float
    /// The upper end: the (1 + level)/2 quantile of the resampled means.
    High: float
    /// The confidence level, e.g. 0.95.
    Level: float
    /// The number of values (tasks) the mean is over.
    Count: int
}

/// The mean of `values` with its percentile-bootstrap interval at `level`: `resamples` resamples of the values with
/// replacement (indices from `Seeds.uniform`, resample r seeded with `Seeds.derive seed r`), each resample's mean, and
/// their quantiles. The same seed gives the same interval on every machine.
[<CompiledName("BootstrapMean")>]
let bootstrapMean (seed: int64) (resamples: int) (level: float) (values: float[]) : Interval =
    if values.Length = 0 then
        raise (LlgbmException "Gains.bootstrapMean: no values.")

    if values |> Array.exists (fun v -> Double.IsNaN v || Double.IsInfinity v) then
        raise (LlgbmException $"Gains.bootstrapMean: the values must be finite, found {Listing.joined values}.")

    if resamples < 1 then
        raise (LlgbmException $"Gains.bootstrapMean: at least one resample is needed, found {resamples}.")

    if not (level > 0.0 && level < 1.0) then
        raise (LlgbmException $"Gains.bootstrapMean: the level must be in (0, 1), found {level}.")

    let n = values.Length

    let means =
        Array.init resamples (fun r -> Seeds.uniform (Seeds.derive seed r) n n |> Array.averageBy (fun i -> values[i]))

    {
        Mean = Array.average values
        Low = quantile ((1.0 - level) / 2.0) means
        High = quantile ((1.0 + level) / 2.0) means
        Level = level
        Count = n
    }
