/// Seeded randomness of the algebra (DARE's drop masks, shuffled controls, random adapters): SplitMix64 (Steele, Lea
/// and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014), so that the same seed gives the same
/// result on every machine.
module LLGBM.Algebra.Seeds

open LLGBM

/// SplitMix64: advances `state` and returns the next 64 random bits.
let private next (state: uint64 byref) : uint64 =
    state <- state + 0x9E3779B97F4A7C15UL
    let mutable z = state
    z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
    z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
    z ^^^ (z >>> 31)

/// A uniform integer in [0, bound): redraws values among the top 2^64 mod bound, so that none is favoured.
let private below (state: uint64 byref) (bound: uint64) : uint64 =
    let rejected = (0UL - bound) % bound
    let mutable value = next &state

    while value > System.UInt64.MaxValue - rejected do
        value <- next &state

    value % bound

/// The seed of item `index` derived from `seed` (a SplitMix64 mix of both), for independent streams per item.
[<CompiledName("Derive")>]
let derive (seed: int64) (index: int) : int64 =
    let mutable state = uint64 seed ^^^ (0xD1B54A32D192ED03UL * (uint64 index + 1UL))
    int64 (next &state)

/// `count` independent uniform integers in [0, n) from SplitMix64 seeded with `seed` (e.g. a bootstrap resample's
/// indices).
[<CompiledName("Uniform")>]
let uniform (seed: int64) (n: int) (count: int) : int[] =
    if n <= 0 || count < 0 then
        raise (LlgbmException $"Seeds.uniform: need n > 0 and count >= 0, found n = {n}, count = {count}.")

    let result = Array.zeroCreate count
    let mutable state = uint64 seed

    for i in 0 .. count - 1 do
        result[i] <- int (below &state (uint64 n))

    result

/// A uniformly random permutation of 0..n−1 (Fisher–Yates driven by SplitMix64 seeded with `seed`):
/// `result[i]` is the index whose item lands at position i.
[<CompiledName("Permutation")>]
let permutation (seed: int64) (n: int) : int[] =
    if n < 0 then
        raise (LlgbmException $"Permutation of {n} items: the count cannot be negative.")

    let order = Array.init n id
    let mutable state = uint64 seed

    for i in n - 1 .. -1 .. 1 do
        let j = int (below &state (uint64 (i + 1)))
        let t = order[i]
        order[i] <- order[j]
        order[j] <- t

    order

/// A uniformly random cyclic permutation of 0..n−1 (Sattolo's algorithm, SplitMix64 seeded with `seed`): one cycle
/// through every index, so for n ≥ 2 no index maps to itself (`result[i] <> i`).
[<CompiledName("Cycle")>]
let cycle (seed: int64) (n: int) : int[] =
    if n < 0 then
        raise (LlgbmException $"Cycle of {n} items: the count cannot be negative.")

    let order = Array.init n id
    let mutable state = uint64 seed

    for i in n - 1 .. -1 .. 1 do
        let j = int (below &state (uint64 i))
        let t = order[i]
        order[i] <- order[j]
        order[j] <- t

    order
