/// Plain-array reference implementations of the merges (TIES-Merging's reference recipe, arXiv 2306.01708), written
/// independently of LLGBM.Algebra as loops over float64 values, for the algebra's tests to compare against.
module LLGBM.Tests.NaiveAlgebra

open Expecto
open LLGBM.Algebra

/// Entries a trim at `density` keeps of n: ⌈density · n⌉, the product nudged down by 1e-9 against rounding.
let keep (density: float) (n: int) = int (ceil (density * float n - 1e-9))

/// The vector with only its `k` largest-magnitude entries left (earlier index first among equal magnitudes).
let trimK (k: int) (x: float[]) =
    let kept =
        [| 0 .. x.Length - 1 |]
        |> Array.sortBy (fun i -> -abs x[i], i)
        |> Array.truncate k
        |> Set.ofArray

    x |> Array.mapi (fun i v -> if kept.Contains i then v else 0.0)

/// TIES's trim at `density`.
let trim (density: float) (x: float[]) = trimK (keep density x.Length) x

/// The sign as −1, 0 or +1.
let sign (v: float) =
    if v > 0.0 then 1.0
    elif v < 0.0 then -1.0
    else 0.0

/// TIES's elected sign: the sign of each coordinate's sum; zero sums take the sign of the sum of the elected signs
/// (+1 when that is zero too).
let elect (xs: float[][]) =
    let n = xs[0].Length
    let s = Array.init n (fun i -> sign (xs |> Array.sumBy (fun x -> x[i])))
    let majority = sign (Array.sum s)
    let majority = if majority = 0.0 then 1.0 else majority
    s |> Array.map (fun v -> if v = 0.0 then majority else v)

/// TIES's disjoint mean: per coordinate the mean of the non-zero entries whose sign is γ's, 0 when there are none.
let disjointMean (gamma: float[]) (xs: float[][]) =
    Array.init gamma.Length (fun i ->
        let agreeing =
            xs
            |> Array.map (fun x -> x[i])
            |> Array.filter (fun v -> v <> 0.0 && sign v = gamma[i])

        if agreeing.Length = 0 then 0.0 else Array.average agreeing)

/// TIES-Merging: trim, elect, disjoint mean.
let ties (density: float) (xs: float[][]) =
    let trimmed = xs |> Array.map (trim density)
    disjointMean (elect trimmed) trimmed

/// The weighted average Σ w x / Σ w.
let weightedAverage (weights: float[]) (xs: float[][]) =
    let total = Array.sum weights
    Array.init xs[0].Length (fun i -> Array.fold2 (fun acc w (x: float[]) -> acc + w * x[i]) 0.0 weights xs / total)

/// The matrix product of row-major [m, k] and [k, n] arrays.
let matmul (m: int) (k: int) (n: int) (a: float[]) (b: float[]) =
    Array.init (m * n) (fun idx ->
        let i, j = idx / n, idx % n
        Seq.sum (seq { for l in 0 .. k - 1 -> a[i * k + l] * b[l * n + j] }))

/// float32 → float64.
let wide (x: float32[]) = Array.map float x

/// The single-module task vector of a float64 array (exact for the tests' grid values).
let vectorOf (x: float[]) =
    TaskVector.ofVector (Array.map float32 x)

/// A task vector's entries as float64.
let entries (tau: TaskVector) = TaskVector.toArray tau |> wide

/// Expects every entry within `tolerance` (absolute) of the expected one.
let expectClose (tolerance: float) (actual: float[]) (expected: float[]) (message: string) =
    Expect.equal actual.Length expected.Length $"{message}: length"

    for i in 0 .. actual.Length - 1 do
        if abs (actual[i] - expected[i]) > tolerance then
            failtestf "%s: entry %d is %g, expected %g (tolerance %g)" message i actual[i] expected[i] tolerance
